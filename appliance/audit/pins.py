"""The audit public keys verification may trust, pinned outside the database.

`[audit] pinned_keys` names a PEM file of public keys (an install: /etc/appliance/audit-keys.pem, written by
root from the keys the appliance created; in development the home's keys folder). A checkpoint signed by a
key that is only in the database is refused: someone who can write the database cannot add a key of their own.
`keys init` and `keys rotate --purpose audit` pin the new key where the pin file is writable; otherwise they
say that root must pin it (the Ansible role does on its next run).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from appliance.fsutil import atomic_write_bytes

_PEM = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


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


def read(settings) -> tuple[dict[str, object], str | None]:
    """(pinned keys, a problem when the pin file is missing, unreadable or holds no key)."""
    path: Path = settings.pinned_keys_path
    try:
        keys = parse(path.read_bytes())
    except FileNotFoundError:
        return {}, f"no pinned audit keys: {path} does not exist (keys init writes it; on an install the role)"
    except OSError as exc:
        return {}, f"{path}: cannot read the pinned audit keys: {exc.strerror}"
    if not keys:
        return {}, f"{path}: holds no audit public key"
    return keys, None


def pin(settings, public_pem: str) -> bool:
    """Add a public key to the pin file; False when the file is not this process's to write (an install)."""
    path: Path = settings.pinned_keys_path
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
