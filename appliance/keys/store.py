"""Key administration: create, rotate, revoke, list and export keys, each permission-checked and audited.

Private keys are PKCS#8 PEM encrypted with the install's passphrase (mode 0600); public keys stay in the
database forever, so signatures made before a rotation still verify. The cryptography is `keys/crypto.py`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import insert, select, update

from appliance.audit.events import Event
from appliance.audit.log import record
from appliance.config import Settings
from appliance.context import Context
from appliance.db import session_scope
from appliance.db.tables import signing_key as t
from appliance.errors import InputError, NotFound
from appliance.fsutil import atomic_write_bytes, ensure_private_dir
from appliance.identity.roles import require
from appliance.keys.crypto import KeyRecord, key_id_of, passphrase

PURPOSES = ("artifact", "audit")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _rows(conn, *where) -> list[KeyRecord]:
    query = select(t).where(*where).order_by(t.c.created_at, t.c.key_id)
    return [KeyRecord(**row._mapping) for row in conn.execute(query).all()]


def list_keys(engine) -> list[KeyRecord]:
    with engine.connect() as conn:
        return _rows(conn)


def get_key(engine, key_id: str) -> KeyRecord:
    with engine.connect() as conn:
        found = _rows(conn, t.c.key_id.like(f"{key_id}%")) if len(key_id) >= 8 else []
    if len(found) != 1:
        raise NotFound(f"no key with id {key_id!r}" if not found else f"key id {key_id!r} is ambiguous")
    return found[0]


def active_key(engine, purpose: str) -> KeyRecord | None:
    with engine.connect() as conn:
        found = _rows(conn, t.c.purpose == purpose, t.c.status == "active")
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
    session.execute(insert(t).values(
        {k: getattr(record, k) for k in ("key_id", "purpose", "status", "public_pem", "private_file",
                                          "created_at")}))
    return record


def init_keys(ctx: Context) -> list[KeyRecord]:
    """Create an active key for each purpose that has none; returns the keys created."""
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
        _pin(ctx, key)
    return created


def _pin(ctx: Context, key: KeyRecord) -> None:
    """A key is trusted by verification (audit) and serving (artifact) only once pinned outside the database."""
    from appliance.keys import pins

    if not pins.pin(ctx.settings, key.public_pem, key.purpose):
        what = "`audit verify` refuses the checkpoints it signs" if key.purpose == "audit" else \
            "the gateway serves nothing it signs"
        print(f"pin the new {key.purpose} key {key.key_id}: add keys/{key.private_file.replace('.key.', '.pub.')} "
              f"to {pins.path_of(ctx.settings, key.purpose)} as root (the Ansible role pins the keys its own "
              f"`init` created); until then {what}", flush=True)


def rotate(ctx: Context, purpose: str) -> KeyRecord:
    """A new active key; the old one is retired but stays trusted for what it signed."""
    if purpose not in PURPOSES:
        raise InputError(f"key purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}")
    require(ctx, "keys.manage", "key", purpose)
    pw = passphrase(ctx.settings)
    old = active_key(ctx.engine, purpose)
    with session_scope(ctx.engine) as s:
        if old is not None:
            s.execute(update(t).where(t.c.key_id == old.key_id).values(status="retired", retired_at=_now()))
        key = _create(ctx, s, purpose, pw)
        record(ctx, s, Event("key.rotate", "key", key.key_id,
                             details={"purpose": purpose, "retired": old.key_id if old else None}))
    _pin(ctx, key)
    return key


def revoke(ctx: Context, key_id: str, reason: str) -> KeyRecord:
    """Put a key on the revocation list: nothing it signed verifies any more."""
    require(ctx, "keys.manage", "key", key_id)
    if not reason.strip():
        raise InputError("a revocation needs a reason", param="reason")
    key = get_key(ctx.engine, key_id)
    if key.status == "revoked":
        raise InputError(f"key {key.key_id[:16]} is already revoked")
    with session_scope(ctx.engine) as s:
        s.execute(update(t).where(t.c.key_id == key.key_id).values(status="revoked", revoked_at=_now(),
                                                                   revoked_reason=reason))
        record(ctx, s, Event("key.revoke", "key", key.key_id, reason=reason, details={"purpose": key.purpose}))
    return get_key(ctx.engine, key.key_id)


def export_public(ctx: Context, out, purpose: str = "artifact") -> KeyRecord:
    """Write the active public key to `out` (a path or a `userfiles.OutputFile`), 0644."""
    from appliance.userfiles import as_output

    key = active_key(ctx.engine, purpose)
    if key is None:
        raise NotFound(f"no active {purpose} key", hint="keys.init")
    out = as_output(out, mode=0o644)
    out.mode = 0o644
    out.write_bytes(key.public_pem.encode())
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
