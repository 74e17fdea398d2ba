"""Appending to the audit trail, inside the caller's transaction, and signing checkpoints.

Every state change writes its event in the same transaction as the change, so if the event cannot be
written the change does not happen. Appends are serialised (SQLite: a writing transaction begins
IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock), so sequence numbers have no gap and no
duplicate however many processes append at once.

As the transaction commits, its events' leaf hashes are appended to the anchor file outside the database
(`audit/anchors.py`) before the commit returns: the command or the gateway's request answers only after that, so
even the newest event cannot be deleted unnoticed.

Checkpoints are signed after the events they cover are committed, in a transaction of their own, and only
by a process that may hold the audit key: the gateway's and the console's contexts do not sign
(`Context.not_signing`; on an install they cannot read the key passphrase either). Each checkpoint is anchored
outside the database (`audit/anchors.py`) before its row is committed, so an anchor never covers events that
were rolled back.
"""

from __future__ import annotations

import base64
import os
import time
from datetime import UTC, datetime, timedelta
from operator import itemgetter

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.orm import Session

from appliance.audit import anchors, merkle
from appliance.audit.checkpoints import Checkpoint, checkpoint_of
from appliance.audit.events import COLUMNS, Event, canonical
from appliance.context import Actor, Context
from appliance.db.engine import driver_sql
from appliance.db.tables import audit_checkpoint, audit_event, audit_node, signing_key
from appliance.errors import ApplianceError, NotFound, PermissionDenied
from appliance.keys.crypto import KeyRecord, sign

_LOCK_ID = 7245002
_LEAF = select(audit_event.c.leaf_hash).where(audit_event.c.seq == bindparam("seq"))
_NODE = select(audit_node.c.hash).where(audit_node.c.level == bindparam("level"), audit_node.c.idx == bindparam("idx"))
_HEAD = select(audit_event.c.seq, audit_event.c.leaf_hash).order_by(audit_event.c.seq.desc()).limit(1)
_NEWEST_CHECKPOINT = select(audit_checkpoint).order_by(audit_checkpoint.c.tree_size.desc()).limit(1)
_APPEND_EVENTS, _APPEND_NODES = insert(audit_event), insert(audit_node)


def _conn(session):
    return session.connection() if isinstance(session, Session) else session


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def lock_appends(conn) -> None:
    """Serialise with every appender for the rest of this transaction (SQLite's transactions already are)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_LOCK_ID)))


def perfect_lookup(conn):
    """`perfect(level, index)` for merkle.subtree_hash, reading stored leaves and nodes."""

    def perfect(level: int, index: int) -> bytes:
        if level == 0:
            row = conn.execute(_LEAF, {"seq": index + 1}).first()
        else:
            row = conn.execute(_NODE, {"level": level, "idx": index}).first()
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


def _event_id() -> str:
    """32 hex digits: nanosecond time then randomness, so ids sort by creation and index inserts append."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


def _head(conn) -> tuple[int, bytes | None]:
    row = conn.execute(_HEAD).first()
    return (0, None) if row is None else (int(row[0]), bytes.fromhex(row[1]))


def _append_rows(conn, events: list[tuple], nodes: list[tuple]) -> None:
    """Insert event rows (COLUMNS then leaf_hash) and Merkle nodes (level, idx, hash) at driver level: one
    executemany each, without SQLAlchemy's per-row work (the appender's hot path, bench/audit_bench.py)."""
    for statement, rows, fields in ((_APPEND_EVENTS, events, (*COLUMNS, "leaf_hash")),
                                    (_APPEND_NODES, nodes, ("level", "idx", "hash"))):
        if rows:
            sql, names = driver_sql(conn.dialect, statement)
            in_order = itemgetter(*(fields.index(name) for name in names))
            conn.exec_driver_sql(sql, [in_order(row) for row in rows])


def record_many(ctx: Context, session: Session, events: list[Event], actor: Actor | None = None) -> list[int]:
    """Append events in the caller's transaction; returns their sequence numbers. When it commits, their leaf
    hashes are anchored outside the database before the commit returns (`anchors.append_leaves`)."""
    conn = _conn(session)
    actor = actor or ctx.actor
    lock_appends(conn)
    size, last_leaf = _head(conn)
    frontier = _frontier(conn, size, last_leaf)
    rows, nodes, seqs, leaves = [], [], [], []
    ts = _now()
    leaf = last_leaf
    for event in events:
        seq = frontier.size + 1
        values = (seq, _event_id(), ts, actor.user, actor.role, actor.auth, event.action,
                  event.object_type, str(event.object_id), event.object_sha256, event.outcome, event.reason,
                  ctx.correlation_id, event.details_json, ctx.os.name, ctx.os.uid, ctx.os.source)
        leaf = merkle.leaf_hash(canonical(values))
        for level, idx, node in frontier.append(leaf):
            nodes.append((level, idx, node.hex()))
        rows.append((*values, leaf.hex()))
        seqs.append(seq)
        leaves.append(leaf)
    _append_rows(conn, rows, nodes)
    _frontiers[str(conn.engine.url)] = (frontier, leaf)
    _after_commit(ctx, session, seqs[0] if seqs else size + 1, leaves,
                  _signing_due(ctx, conn, size, frontier.size))
    return seqs


def record(ctx: Context, session, event: Event, actor: Actor | None = None) -> int:
    return record_many(ctx, session, [event], actor)[0]


def record_alone(ctx: Context, event: Event, actor: Actor | None = None) -> int:
    """Append one event in a transaction of its own (denials: the refused action's transaction is gone)."""
    from appliance.db import session_scope

    with session_scope(ctx.engine) as s:
        return record(ctx, s, event, actor)


def last_checkpoint(conn) -> Checkpoint | None:
    row = conn.execute(_NEWEST_CHECKPOINT).first()
    return None if row is None else checkpoint_of(row)


# Per database: when the newest checkpoint known to this process was signed, and until when signing is not
# retried after it failed (no key or no passphrase here), so an append does not query for them each time.
_last_signed: dict[str, datetime] = {}
_unsignable_until: dict[str, datetime] = {}


def _may_sign(ctx: Context, key: str, now: datetime) -> bool:
    """This context signs checkpoints, and signing has not just failed here for this database."""
    return ctx.signs_checkpoints and _unsignable_until.get(key, now) <= now


def _signing_due(ctx: Context, conn, old_size: int, new_size: int) -> bool:
    from appliance.audit.policy import cadence

    key = str(conn.engine.url)
    now = datetime.now(UTC)
    if not _may_sign(ctx, key, now):
        return False
    every = cadence()
    if new_size // every.every_events > old_size // every.every_events:
        return True
    age_limit = now - timedelta(seconds=every.every_seconds)
    if _last_signed.get(key, age_limit) <= age_limit:
        last = last_checkpoint(conn)
        if last is not None:
            _last_signed[key] = datetime.fromisoformat(last.ts)
        return last is None or _last_signed[key] <= age_limit
    return False


def _after_commit(ctx: Context, session: Session, first: int, leaves: list[bytes], sign_due: bool) -> None:
    """Once the session commits: its events' leaves to the anchors, then a checkpoint if one is due (`_committed`).
    Nothing when it rolls back."""
    pending = session.info.get("audit_pending")
    if pending is None:
        pending = session.info["audit_pending"] = {"ctx": ctx, "first": first, "leaves": [], "sign": False}
    pending["leaves"] += leaves
    pending["sign"] = pending["sign"] or sign_due


@sqlalchemy_event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    """An error anchoring the leaves fails the commit's caller (the gateway then refuses the request); the events
    stay committed, and `audit verify` names them unanchored until a checkpoint covers them."""
    done = session.info.pop("audit_pending", None)
    if done is None:
        return
    anchors.append_leaves(done["ctx"].settings, done["first"], done["leaves"])
    if done["sign"]:
        sign_if_due(done["ctx"], force=True)


@sqlalchemy_event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop("audit_pending", None)


def sign_if_due(ctx: Context, force: bool = False) -> Checkpoint | None:
    """Sign (and anchor) a checkpoint of the committed log when the cadence says so, or whenever the log has
    grown with `force`. Quietly does nothing in a process that may not or cannot sign: the freshness check in
    `audit verify` is what notices a signer that is missing."""
    from appliance.audit.policy import cadence

    key = str(ctx.engine.url)
    now = datetime.now(UTC)
    if not _may_sign(ctx, key, now):
        return None
    try:
        every = None if force else cadence()
        return checkpoint_now(ctx, due=every)
    except NotFound:
        return None  # no audit key yet: the first append after `keys init` signs
    except ApplianceError:
        # The key is not usable here (no passphrase, or the anchor file cannot be written): a signer that can
        # signs within the cadence; `audit verify` fails if none does.
        _unsignable_until[key] = now + timedelta(seconds=60)
        return None


def _sign_checkpoint(ctx: Context, conn, size: int, root: bytes) -> Checkpoint:
    key = _active_audit_key(conn)
    if key is None:
        raise NotFound("no active audit key", hint="keys.init")
    unsigned = Checkpoint(size, root.hex(), datetime.now(UTC).isoformat(timespec="seconds"), key.key_id, "")
    signature = base64.b64encode(sign(ctx.settings, key, unsigned.body())).decode()
    cp = Checkpoint(size, unsigned.root, unsigned.ts, key.key_id, signature)
    exists = conn.execute(select(audit_checkpoint.c.tree_size).where(audit_checkpoint.c.tree_size == size)).first()
    if not exists:
        conn.execute(insert(audit_checkpoint).values(cp.__dict__))
        anchors.append(ctx.settings, cp)  # the events are committed; the row commits after its anchor
    _last_signed[str(conn.engine.url)] = datetime.now(UTC)
    return cp


def _active_audit_key(conn):
    k = signing_key.c
    row = conn.execute(select(signing_key).where(k.purpose == "audit", k.status == "active")
                       .order_by(k.created_at.desc()).limit(1)).first()
    return None if row is None else KeyRecord(**row._mapping)


def checkpoint_now(ctx: Context, due=None) -> Checkpoint | None:
    """Sign a checkpoint of the whole committed log as it is now (or return the one already made at this size).
    With `due` (the audit policy's cadence) only when the events since the last checkpoint call for one."""
    from appliance.db import session_scope

    if not ctx.signs_checkpoints:
        raise PermissionDenied("this process does not sign audit checkpoints: the worker, the control service or "
                               "a command (`appliance audit checkpoint`) does")
    with session_scope(ctx.engine) as s:
        conn = _conn(s)
        lock_appends(conn)
        size, last_leaf = _head(conn)
        last = last_checkpoint(conn)
        if last is not None and last.tree_size == size:
            return last
        if due is not None and last is not None and size - last.tree_size < due.every_events:
            age = datetime.now(UTC) - datetime.fromisoformat(last.ts)
            if age < timedelta(seconds=due.every_seconds):
                return None
        frontier = _frontier(conn, size, last_leaf)
        return _sign_checkpoint(ctx, conn, size, frontier.root())
