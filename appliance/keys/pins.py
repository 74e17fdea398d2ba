"""The appliance's own public keys that verification may trust, pinned outside the database: the audit keys (the
checkpoints they sign) and the artifact keys (the adapters they sign).

Each purpose has a PEM file of public keys: an install's /etc/appliance/audit-keys.pem and artifact-keys.pem,
written by root from the keys the appliance created (APPLIANCE_TRUST_DIR); in development the home's keys folder.
A signature by a key that is only in the database is refused: someone who can write the database cannot add a
key of their own. `keys init` and `keys rotate` pin the new key where the pin file is writable; otherwise they
say that root must pin it (the Ansible role pins the keys its own `init` created).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from appliance.fsutil import atomic_write_bytes

_PEM = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)
PURPOSES = ("audit", "artifact")


def path_of(settings, purpose: str) -> Path:
    return settings.pinned_keys_path if purpose == "audit" else settings.pinned_artifact_keys_path


def parse(raw: bytes) -> dict[str, object]:
    """key_id (sha256 of the DER SubjectPublicKeyInfo) -> public key, for every PEM public key in `raw`."""
    keys = {}
    for block in _PEM.findall(raw):
        try:
            key = serialization.load_pem_public_key(block)
        except ValueError:
            continue
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        keys[hashlib.sha256(der).hexdigest()] = key
    return keys


def read(settings, purpose: str = "audit") -> tuple[dict[str, object], str | None]:
    """(pinned keys, a problem when the pin file is missing, unreadable or holds no key)."""
    path = path_of(settings, purpose)
    try:
        keys = parse(path.read_bytes())
    except FileNotFoundError:
        return {}, f"no pinned {purpose} keys: {path} does not exist (keys init writes it; on an install the role)"
    except OSError as exc:
        return {}, f"{path}: cannot read the pinned {purpose} keys: {exc.strerror}"
    if not keys:
        return {}, f"{path}: holds no {purpose} public key"
    return keys, None


def pin(settings, public_pem: str, purpose: str = "audit") -> bool:
    """Add a public key to the pin file; False when the file is not this process's to write (an install)."""
    path = path_of(settings, purpose)
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        current = b""
    except OSError:
        return False
    if any(key == public_pem.encode().strip() for key in _PEM.findall(current)):
        return True
    try:
        atomic_write_bytes(path, current + public_pem.encode().strip() + b"\n", mode=0o644)
    except OSError:
        return False
    return True
