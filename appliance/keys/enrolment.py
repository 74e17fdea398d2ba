"""Enrolling personal signing keys (the person, through the appliance) and pinning them (root, outside it).

`enroll`: an officer or engineer has their own process make a key (`keys/personal.py`); the service checks that
the key signed its own enrolment, records it (`personal_key`, storage only) and audits `key.enroll` with the OS
account the kernel reported. `pin`: root (on an install; in development the home's owner) reads the enrolment,
sees who enrolled it from which OS account, and appends it to the pin file (`keys/people.py`). A key nobody pinned
signs nothing that counts; a pinned key is revoked only in the pin file (`unpin`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from sqlalchemy import insert, select

from appliance.audit.events import Event
from appliance.audit.log import record
from appliance.context import Context
from appliance.db import session_scope
from appliance.db.tables import personal_key as t
from appliance.errors import InputError, NotFound, PermissionDenied
from appliance.identity.roles import require
from appliance.keys import people
from appliance.keys.crypto import key_id_of, verify_signature
from appliance.keys.personal import enrolment_text


@dataclass(frozen=True)
class Enrolment:
    key_id: str
    user: str
    role: str
    public_pem: str
    os_user: str
    os_uid: int
    os_source: str
    enrolled_at: str


def enroll(ctx: Context) -> Enrolment:
    require(ctx, "keys.enroll", "key", ctx.actor.user)
    if ctx.personal is None:
        raise PermissionDenied("a personal key is made in your own `appliance` process: run `appliance keys enroll` "
                               "from your terminal")
    reply = ctx.personal.enroll(ctx.actor.user)
    try:
        public = serialization.load_pem_public_key(str(reply["public_pem"]).encode())
        proof = base64.b64decode(str(reply["proof"]), validate=True)
    except (KeyError, ValueError, TypeError):
        raise InputError("the enrolment your process sent is malformed") from None
    key_id = key_id_of(public)
    if not verify_signature(public, proof, enrolment_text(ctx.actor.user, key_id)):
        raise PermissionDenied("the new key did not sign its own enrolment")
    if enrolments(ctx.engine, key_id):
        pinned = people.read(ctx.settings).get(key_id)
        raise InputError(f"key {key_id} is enrolled already ({'pinned' if pinned else 'root has not pinned it yet'});"
                         f" a new key is made once root revokes this one (`appliance keys unpin`)")
    entry = Enrolment(key_id, ctx.actor.user, ctx.actor.role, str(reply["public_pem"]), ctx.os.name, ctx.os.uid,
                      ctx.os.source, datetime.now(UTC).isoformat(timespec="seconds"))
    with session_scope(ctx.engine) as s:
        s.execute(insert(t).values(key_id=key_id, user_name=entry.user, role=entry.role, public_pem=entry.public_pem,
                                   os_user=entry.os_user, os_uid=entry.os_uid, os_source=entry.os_source,
                                   enrolled_at=entry.enrolled_at))
        record(ctx, s, Event("key.enroll", "key", key_id, details={"user": entry.user, "role": entry.role,
                                                                    "public_pem": entry.public_pem}))
    return entry


def enrolments(engine, prefix: str = "") -> list[Enrolment]:
    with engine.connect() as conn:
        query = select(t).order_by(t.c.enrolled_at, t.c.key_id)
        if prefix:
            query = query.where(t.c.key_id.like(f"{prefix.lower()}%"))
        return [Enrolment(r.key_id, r.user_name, r.role, r.public_pem, r.os_user, int(r.os_uid), r.os_source,
                          r.enrolled_at) for r in conn.execute(query).all()]


def pin(settings, engine, fingerprint: str) -> people.PinnedKey:
    """Root's act: pin the enrolled key with this fingerprint (the whole sha256, as its holder reads it out) for
    the account and role it was enrolled by. The database only proposes; the fingerprint is root's to check."""
    fingerprint = fingerprint.lower().removeprefix("sha256:")
    found = [e for e in enrolments(engine, fingerprint) if e.key_id == fingerprint]
    if not found:
        raise NotFound(f"no enrolled key {fingerprint!r}: give the whole fingerprint `appliance keys enroll` printed "
                       f"for its holder")
    e = found[0]
    public = serialization.load_pem_public_key(e.public_pem.encode())
    if key_id_of(public) != fingerprint:
        raise PermissionDenied(f"the enrolment of {fingerprint[:16]} in the database holds another key: refused")
    return people.pin(settings, key_id=e.key_id, user=e.user, role=e.role, os_user=e.os_user, os_uid=e.os_uid,
                      os_source=e.os_source, public_pem=e.public_pem)
