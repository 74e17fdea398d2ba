"""Key management. Private keys are PKCS#8 PEM encrypted with the install's passphrase (mode 0600);
public keys stay in the database forever, so signatures made before a rotation still verify."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

from appliance.audit.events import Event
from appliance.config import Settings
from appliance.context import Context
from appliance.errors import ConfigError, InputError, IntegrityError, NotFound
from appliance.fsutil import atomic_write_bytes, ensure_private_dir

PURPOSES = ("artifact", "audit")
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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def key_id_of(public_key: ec.EllipticCurvePublicKey) -> str:
    """sha256 of the DER SubjectPublicKeyInfo: the same id any tool computes from the PEM."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def passphrase(settings: Settings) -> bytes:
    """The passphrase that encrypts private keys: APPLIANCE_KEY_PASSPHRASE, or a file named by
    APPLIANCE_KEY_PASSPHRASE_FILE or [keys] passphrase_file. Never from the command line."""
    env = settings.env
    value = env.get("APPLIANCE_KEY_PASSPHRASE")
    source = "APPLIANCE_KEY_PASSPHRASE"
    if not value:
        path = env.get("APPLIANCE_KEY_PASSPHRASE_FILE") or settings.file.keys.passphrase_file
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


def _rows(conn, where: str = "", params: dict | None = None) -> list[KeyRecord]:
    sql = ("SELECT key_id, purpose, status, public_pem, private_file, created_at, retired_at, revoked_at, "
           f"revoked_reason FROM signing_key {where} ORDER BY created_at, key_id")
    return [KeyRecord(*row) for row in conn.execute(text(sql), params or {}).all()]


def list_keys(engine) -> list[KeyRecord]:
    with engine.connect() as conn:
        return _rows(conn)


def get_key(engine, key_id: str) -> KeyRecord:
    with engine.connect() as conn:
        found = _rows(conn, "WHERE key_id LIKE :k", {"k": f"{key_id}%"}) if len(key_id) >= 8 else []
    if len(found) != 1:
        raise NotFound(f"no key with id {key_id!r}" if not found else f"key id {key_id!r} is ambiguous")
    return found[0]


def active_key(engine, purpose: str) -> KeyRecord | None:
    with engine.connect() as conn:
        found = _rows(conn, "WHERE purpose = :p AND status = 'active'", {"p": purpose})
    return found[-1] if found else None


def _create(ctx: Context, session, purpose: str, pw: bytes) -> KeyRecord:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key()
    key_id = key_id_of(public)
    keys_dir = ctx.settings.keys_dir
    ensure_private_dir(keys_dir)
    private_file = f"{purpose}-{key_id[:16]}.key.pem"
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(pw))
    public_pem = public.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    atomic_write_bytes(keys_dir / private_file, pem)
    atomic_write_bytes(keys_dir / f"{purpose}-{key_id[:16]}.pub.pem", public_pem.encode())
    record = KeyRecord(key_id, purpose, "active", public_pem, private_file, _now(), None, None, None)
    session.execute(text(
        "INSERT INTO signing_key (key_id, purpose, status, public_pem, private_file, created_at) "
        "VALUES (:key_id, :purpose, :status, :public_pem, :private_file, :created_at)"),
        {k: getattr(record, k) for k in ("key_id", "purpose", "status", "public_pem", "private_file",
                                          "created_at")})
    return record


def init_keys(ctx: Context) -> list[KeyRecord]:
    """Create an active key for each purpose that has none; returns the keys created."""
    from appliance.audit.log import record
    from appliance.db import session_scope
    from appliance.identity.roles import require

    require(ctx, "keys.manage", "key", "init")
    pw = passphrase(ctx.settings)
    created = []
    for purpose in PURPOSES:
        if active_key(ctx.engine, purpose) is not None:
            continue
        with session_scope(ctx.engine) as s:
            key = _create(ctx, s, purpose, pw)
            record(ctx, s, Event("key.create", "key", key.key_id, details={"purpose": purpose}))
        created.append(key)
    return created


def rotate(ctx: Context, purpose: str) -> KeyRecord:
    """A new active key; the old one is retired but stays trusted for what it signed."""
    from appliance.audit.log import record
    from appliance.db import session_scope
    from appliance.identity.roles import require

    if purpose not in PURPOSES:
        raise InputError(f"key purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}")
    require(ctx, "keys.manage", "key", purpose)
    pw = passphrase(ctx.settings)
    old = active_key(ctx.engine, purpose)
    with session_scope(ctx.engine) as s:
        if old is not None:
            s.execute(text("UPDATE signing_key SET status = 'retired', retired_at = :t WHERE key_id = :k"),
                      {"t": _now(), "k": old.key_id})
        key = _create(ctx, s, purpose, pw)
        record(ctx, s, Event("key.rotate", "key", key.key_id,
                             details={"purpose": purpose, "retired": old.key_id if old else None}))
    return key


def revoke(ctx: Context, key_id: str, reason: str) -> KeyRecord:
    """Put a key on the revocation list: nothing it signed verifies any more."""
    from appliance.audit.log import record
    from appliance.db import session_scope
    from appliance.identity.roles import require

    require(ctx, "keys.manage", "key", key_id)
    if not reason.strip():
        raise InputError("--reason: a revocation needs a reason")
    key = get_key(ctx.engine, key_id)
    if key.status == "revoked":
        raise InputError(f"key {key.key_id[:16]} is already revoked")
    with session_scope(ctx.engine) as s:
        s.execute(text("UPDATE signing_key SET status = 'revoked', revoked_at = :t, revoked_reason = :r "
                       "WHERE key_id = :k"), {"t": _now(), "r": reason, "k": key.key_id})
        record(ctx, s, Event("key.revoke", "key", key.key_id, reason=reason, details={"purpose": key.purpose}))
    return get_key(ctx.engine, key.key_id)


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


def export_public(ctx: Context, out: Path, purpose: str = "artifact") -> KeyRecord:
    key = active_key(ctx.engine, purpose)
    if key is None:
        raise NotFound(f"no active {purpose} key: run `appliance keys init`")
    out = Path(out)
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: no such directory")
    atomic_write_bytes(out, key.public_pem.encode(), mode=0o644)
    return key


def unencrypted_private_keys(settings: Settings, engine) -> list[str]:
    """Private key files that are not encrypted or not 0600: doctor fails on any."""
    problems = []
    for key in list_keys(engine):
        path = settings.keys_dir / key.private_file
        if not path.is_file():
            if key.status != "revoked":
                problems.append(f"{key.private_file} missing")
            continue
        if b"ENCRYPTED PRIVATE KEY" not in path.read_bytes()[:64]:
            problems.append(f"{key.private_file} is not encrypted")
        if os.stat(path).st_mode & 0o077:
            problems.append(f"{key.private_file} is readable by others")
    return problems
