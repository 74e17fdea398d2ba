"""The tamper-evident audit trail: events in an RFC 6962 Merkle tree, signed checkpoints, verification,
and the evidence pack."""
