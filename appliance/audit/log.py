"""Appending to the audit trail, inside the caller's transaction, and signing checkpoints.

Every state change writes its event in the same transaction as the change, so if the event cannot be
written the change does not happen. Appends are serialised (SQLite: every transaction begins
IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock), so sequence numbers have no gap and no
duplicate however many processes append at once.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from appliance.audit import merkle
from appliance.audit.events import COLUMNS, Actor, Event, canonical, details_text
from appliance.context import Context
from appliance.errors import ApplianceError, NotFound

_LOCK_ID = 7245002
_INSERT_EVENT = text(
    f"INSERT INTO audit_event ({', '.join(COLUMNS)}, leaf_hash) "
    f"VALUES ({', '.join(':' + c for c in COLUMNS)}, :leaf_hash)")
_INSERT_NODE = text("INSERT INTO audit_node (level, idx, hash) VALUES (:level, :idx, :hash)")
CHECKPOINT_HEADER = "appliance audit checkpoint v1"


@dataclass(frozen=True)
class Checkpoint:
    tree_size: int
    root: str  # hex
    ts: str
    key_id: str
    signature: str  # base64 DER ECDSA-SHA256 over body()

    def body(self) -> bytes:
        return f"{CHECKPOINT_HEADER}\n{self.tree_size}\n{self.root}\n{self.ts}\n".encode()

    def as_dict(self) -> dict:
        return {"format": CHECKPOINT_HEADER, "tree_size": self.tree_size, "root": self.root, "ts": self.ts,
                "key_id": self.key_id, "signature": self.signature}


def _conn(session):
    return session.connection() if isinstance(session, Session) else session


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _lock(conn) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})


def perfect_lookup(conn):
    """`perfect(level, index)` for merkle.subtree_hash, reading stored leaves and nodes."""
    def perfect(level: int, index: int) -> bytes:
        if level == 0:
            row = conn.execute(text("SELECT leaf_hash FROM audit_event WHERE seq = :s"), {"s": index + 1}).first()
        else:
            row = conn.execute(text("SELECT hash FROM audit_node WHERE level = :l AND idx = :i"),
                               {"l": level, "i": index}).first()
        if row is None:
            raise NotFound(f"audit tree node ({level}, {index}) is missing")
        return bytes.fromhex(row[0])
    return perfect


# One frontier per database, reused while this process is the only appender; checked against the
# newest stored leaf before each use, so another process's appends or a rolled-back append force a reload.
_frontiers: dict[str, tuple[merkle.Frontier, bytes]] = {}


def _frontier(conn, size: int, last_leaf: bytes | None) -> merkle.Frontier:
    key = str(conn.engine.url)
    cached = _frontiers.get(key)
    if cached and cached[0].size == size and (size == 0 or cached[1] == last_leaf):
        f = merkle.Frontier()
        f.size, f._stack = cached[0].size, list(cached[0]._stack)
        return f
    frontier = merkle.Frontier()
    perfect = perfect_lookup(conn)
    start = 0
    for level in reversed(range(size.bit_length())):
        if size & (1 << level):
            frontier._stack.append(perfect(level, start >> level))
            start += 1 << level
    frontier.size = size
    return frontier


def _head(conn) -> tuple[int, bytes | None]:
    row = conn.execute(text("SELECT seq, leaf_hash FROM audit_event ORDER BY seq DESC LIMIT 1")).first()
    return (0, None) if row is None else (int(row[0]), bytes.fromhex(row[1]))


def record_many(ctx: Context, session, events: list[Event], actor: Actor | None = None) -> list[int]:
    """Append events in the caller's transaction; returns their sequence numbers."""
    conn = _conn(session)
    actor = actor or ctx.actor
    _lock(conn)
    size, last_leaf = _head(conn)
    frontier = _frontier(conn, size, last_leaf)
    rows, nodes, seqs = [], [], []
    ts = _now()
    leaf = last_leaf
    for event in events:
        seq = frontier.size + 1
        values = (seq, uuid.uuid4().hex, ts, actor.user, actor.role, actor.auth, event.action,
                  event.object_type, str(event.object_id), event.object_sha256, event.outcome, event.reason,
                  ctx.correlation_id, details_text(event.details))
        leaf = merkle.leaf_hash(canonical(values))
        for level, idx, node in frontier.append(leaf):
            nodes.append({"level": level, "idx": idx, "hash": node.hex()})
        rows.append({**dict(zip(COLUMNS, values, strict=True)), "leaf_hash": leaf.hex()})
        seqs.append(seq)
    conn.execute(_INSERT_EVENT, rows)
    if nodes:
        conn.execute(_INSERT_NODE, nodes)
    _maybe_checkpoint(ctx, conn, size, frontier)
    _frontiers[str(conn.engine.url)] = (frontier, leaf)
    return seqs


def record(ctx: Context, session, event: Event, actor: Actor | None = None) -> int:
    return record_many(ctx, session, [event], actor)[0]


def record_alone(ctx: Context, event: Event, actor: Actor | None = None) -> int:
    """Append one event in a transaction of its own (denials: the refused action's transaction is gone)."""
    from appliance.db import session_scope

    with session_scope(ctx.engine) as s:
        return record(ctx, s, event, actor)


def last_checkpoint(conn) -> Checkpoint | None:
    row = conn.execute(text("SELECT tree_size, root, ts, key_id, signature FROM audit_checkpoint "
                            "ORDER BY tree_size DESC LIMIT 1")).first()
    return None if row is None else Checkpoint(int(row[0]), row[1], row[2], row[3], row[4])


def _maybe_checkpoint(ctx: Context, conn, old_size: int, frontier: merkle.Frontier) -> None:
    cfg = ctx.settings.file.audit
    due = frontier.size // cfg.checkpoint_every > old_size // cfg.checkpoint_every
    if not due:
        last = last_checkpoint(conn)
        age_limit = datetime.now(UTC) - timedelta(minutes=cfg.checkpoint_minutes)
        due = last is None or datetime.fromisoformat(last.ts) < age_limit
    if due:
        try:
            _sign_checkpoint(ctx, conn, frontier.size, frontier.root())
        except ApplianceError:
            pass  # no usable audit key here (no passphrase): `appliance audit checkpoint` signs later


def _sign_checkpoint(ctx: Context, conn, size: int, root: bytes) -> Checkpoint:
    from appliance.keys.store import sign

    key = _active_audit_key(conn)
    if key is None:
        raise NotFound("no active audit key: run `appliance keys init`")
    unsigned = Checkpoint(size, root.hex(), datetime.now(UTC).isoformat(timespec="seconds"), key.key_id, "")
    signature = base64.b64encode(sign(ctx.settings, key, unsigned.body())).decode()
    cp = Checkpoint(size, unsigned.root, unsigned.ts, key.key_id, signature)
    exists = conn.execute(text("SELECT 1 FROM audit_checkpoint WHERE tree_size = :n"), {"n": size}).first()
    if not exists:
        conn.execute(text("INSERT INTO audit_checkpoint (tree_size, root, ts, key_id, signature) "
                          "VALUES (:tree_size, :root, :ts, :key_id, :signature)"), cp.__dict__)
    return cp


def _active_audit_key(conn):
    from appliance.keys.store import KeyRecord

    row = conn.execute(text(
        "SELECT key_id, purpose, status, public_pem, private_file, created_at, retired_at, revoked_at, "
        "revoked_reason FROM signing_key WHERE purpose = 'audit' AND status = 'active' "
        "ORDER BY created_at DESC LIMIT 1")).first()
    return None if row is None else KeyRecord(*row)


def checkpoint_now(ctx: Context) -> Checkpoint:
    """Sign a checkpoint of the whole log as it is now (or return the one already made at this size)."""
    from appliance.db import session_scope

    with session_scope(ctx.engine) as s:
        conn = _conn(s)
        _lock(conn)
        size, last_leaf = _head(conn)
        last = last_checkpoint(conn)
        if last is not None and last.tree_size == size:
            return last
        frontier = _frontier(conn, size, last_leaf)
        return _sign_checkpoint(ctx, conn, size, frontier.root())
