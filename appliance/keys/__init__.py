"""Signing keys: ECDSA P-256 for artifacts and for audit checkpoints, encrypted at rest, rotated into a
trust store, revocable."""
