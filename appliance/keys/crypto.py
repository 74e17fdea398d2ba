"""Key cryptography, with no knowledge of who may use it: the key record, the install's passphrase, decrypting
a private key, signing and verifying. A leaf: the audit trail signs with it, and key administration
(`keys/store.py`) sits above both."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from appliance.config import Settings
from appliance.errors import ConfigError, IntegrityError

MIN_PASSPHRASE = 12


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    purpose: str
    status: str  # active, retired, revoked
    public_pem: str
    private_file: str
    created_at: str
    retired_at: str | None
    revoked_at: str | None
    revoked_reason: str | None

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return serialization.load_pem_public_key(self.public_pem.encode())


def key_id_of(public_key: ec.EllipticCurvePublicKey) -> str:
    """sha256 of the DER SubjectPublicKeyInfo: the same id any tool computes from the PEM."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def pem_of(public_key) -> str:
    """A public key as PEM SubjectPublicKeyInfo text."""
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def passphrase(settings: Settings) -> bytes:
    """The passphrase that encrypts private keys: APPLIANCE_KEY_PASSPHRASE, or a file named by
    APPLIANCE_KEY_PASSPHRASE_FILE, or the systemd credential `key-passphrase` (an install gives it to the signer
    units alone: `LoadCredential=`), or [keys] passphrase_file. Never from the command line."""
    env = settings.env
    value = env.get("APPLIANCE_KEY_PASSPHRASE")
    source = "APPLIANCE_KEY_PASSPHRASE"
    if not value:
        credential = Path(env["CREDENTIALS_DIRECTORY"]) / "key-passphrase" if env.get("CREDENTIALS_DIRECTORY") \
            else None
        path = env.get("APPLIANCE_KEY_PASSPHRASE_FILE") or (
            str(credential) if credential and credential.is_file() else None) or settings.file.keys.passphrase_file
        if not path:
            raise ConfigError("no key passphrase: set APPLIANCE_KEY_PASSPHRASE_FILE (or [keys] passphrase_file "
                              "in appliance.toml, or APPLIANCE_KEY_PASSPHRASE)")
        source = path
        try:
            value = Path(path).read_text("utf-8").splitlines()[0] if Path(path).stat().st_size else ""
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the key passphrase: {getattr(exc, 'strerror', exc)}") from None
    if len(value) < MIN_PASSPHRASE:
        raise ConfigError(f"{source}: the key passphrase must be at least {MIN_PASSPHRASE} characters")
    return value.encode("utf-8")


_loaded: dict[tuple[str, str], ec.EllipticCurvePrivateKey] = {}


def private_key(settings: Settings, key: KeyRecord) -> ec.EllipticCurvePrivateKey:
    """Decrypt a private key with the install's passphrase (cached per process)."""
    cache_key = (str(settings.keys_dir), key.key_id)
    if cache_key not in _loaded:
        path = settings.keys_dir / key.private_file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise IntegrityError(f"{path}: cannot read private key: {exc.strerror}") from None
        try:
            loaded = serialization.load_pem_private_key(data, password=passphrase(settings))
        except (ValueError, TypeError):
            raise IntegrityError(f"{path}: cannot decrypt the private key: wrong passphrase or damaged file") from None
        if key_id_of(loaded.public_key()) != key.key_id:
            raise IntegrityError(f"{path}: private key does not match key {key.key_id[:16]}")
        _loaded[cache_key] = loaded
    return _loaded[cache_key]


def sign(settings: Settings, key: KeyRecord, data: bytes) -> bytes:
    return private_key(settings, key).sign(data, ec.ECDSA(hashes.SHA256()))


def verify_signature(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def local_key(settings: Settings, name: str) -> bytes:
    """A random 32-byte key kept in the keys folder (0600), made on first use: the key of keyed hashes that a
    process without the passphrase computes (the gateway's audit text), so a digest in the trail cannot be
    reversed by hashing a dictionary of likely prompts."""
    import os

    from appliance.fsutil import atomic_write_bytes, ensure_private_dir

    ensure_private_dir(settings.keys_dir)
    path = settings.keys_dir / f"{name}.key"
    if not path.exists():
        atomic_write_bytes(path, os.urandom(32))
    data = path.read_bytes()
    if len(data) != 32:
        raise IntegrityError(f"{path}: not a 32-byte key")
    return data
