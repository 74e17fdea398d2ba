"""Verifying the audit trail from its raw rows, trusting nothing that is stored derived.

Each event's leaf is recomputed from its columns, the tree head is rebuilt from those leaves, and every
signed checkpoint (stored, or exported earlier and given back) must match the rebuilt head at its size.
Database triggers that refuse UPDATE and DELETE are not relied on: someone with file access can drop them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field

from cryptography.hazmat.primitives import serialization
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from appliance.audit.events import COLUMNS, canonical
from appliance.audit.log import CHECKPOINT_HEADER, Checkpoint
from appliance.db.engine import placeholder
from appliance.errors import InputError
from appliance.keys.crypto import verify_signature

_BATCH = 20_000
_PARALLEL_FROM = 200_000  # events; below this one process is faster than starting workers


@dataclass
class VerifyReport:
    events: int = 0
    checkpoints_checked: int = 0
    root: str = ""
    problems: list[str] = field(default_factory=list)
    first_bad_seq: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, message: str, seq: int | None = None) -> None:
        self.problems.append(message)
        if seq is not None and (self.first_bad_seq is None or seq < self.first_bad_seq):
            self.first_bad_seq = seq

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def read_checkpoint_file(source) -> Checkpoint:
    """A checkpoint kept elsewhere: a path, or a file a person named (`userfiles.InputFile`)."""
    from appliance.userfiles import as_input

    source = as_input(source)
    path = source.name
    try:
        data = json.loads(source.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a checkpoint file: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_HEADER:
        raise InputError(f"{path}: field format: not an appliance audit checkpoint")
    try:
        return Checkpoint(int(data["tree_size"]), str(data["root"]), str(data["ts"]), str(data["key_id"]),
                          str(data["signature"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: field {exc}: missing or malformed") from None


def _trusted_audit_keys(conn) -> tuple[dict, set[str]]:
    rows = conn.execute(text("SELECT key_id, status, public_pem FROM signing_key WHERE purpose = 'audit'")).all()
    trusted = {k: serialization.load_pem_public_key(pem.encode()) for k, status, pem in rows if status != "revoked"}
    return trusted, {k for k, status, _ in rows if status == "revoked"}


def check_signature(cp: Checkpoint, trusted: dict, revoked: set[str]) -> str | None:
    """None when the checkpoint is signed by a trusted audit key; otherwise what is wrong."""
    if cp.key_id in revoked:
        return f"signed by revoked key {cp.key_id[:16]}"
    key = trusted.get(cp.key_id)
    if key is None:
        return f"signed by unknown key {cp.key_id[:16]}"
    try:
        signature = base64.b64decode(cp.signature, validate=True)
    except ValueError:
        return "signature is not base64"
    if not verify_signature(key, signature, cp.body()):
        return "signature does not verify"
    return None


@dataclass
class _Scan:
    """One stretch of the log, rehashed: its perfect-subtree stack, the stacks at checkpoint sizes inside it,
    and what is wrong in it."""

    end: int = 0  # sequence number of the last event scanned
    stack: list[bytes] = field(default_factory=list)
    at: dict[int, list[bytes]] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)


def _scan(url: str, lo: int, hi: int, sizes: frozenset[int]) -> _Scan:
    """Rehash events lo..hi-1 from their columns (driver level, for speed) into a local Merkle stack that
    starts at leaf index lo-1. Stops at the first missing event."""
    from sqlalchemy import create_engine

    engine = create_engine(url, poolclass=NullPool)
    raw = engine.raw_connection()
    out = _Scan(end=lo - 1)
    sha = hashlib.sha256
    stack = out.stack
    try:
        mark = placeholder(engine.dialect)
        cursor = raw.driver_connection.cursor(name="audit_verify") if engine.dialect.name == "postgresql" \
            else raw.cursor()
        cursor.execute(f"SELECT {', '.join(COLUMNS)}, leaf_hash FROM audit_event "
                       f"WHERE seq >= {mark} AND seq < {mark} ORDER BY seq", (lo, hi))
        expected = lo
        while rows := cursor.fetchmany(_BATCH):
            for row in rows:
                seq = row[0]
                if seq != expected:
                    out.problems.append((expected, "missing"))
                    return out
                node = sha(b"\x00" + canonical(row[:-1])).digest()
                if node.hex() != row[-1]:
                    out.problems.append((seq, "modified"))
                index = seq - lo  # local position; lo-1 is a multiple of a power of two above hi-lo
                while index & 1:
                    node = sha(b"\x01" + stack.pop() + node).digest()
                    index >>= 1
                stack.append(node)
                out.end = seq
                if seq in sizes:
                    out.at[seq] = list(stack)
                expected += 1
        if expected < hi:
            out.problems.append((expected, "missing"))
        cursor.close()
    finally:
        raw.close()
        engine.dispose()
    return out


def _scan_log(engine, max_seq: int, sizes: frozenset[int]) -> list[_Scan]:
    """Scan the whole log; a large one in two halves on two processes. The split is at a power of two, so
    the first half is one perfect subtree and the second half's stack continues it without merging."""
    url = engine.url.render_as_string(hide_password=False)
    if max_seq < _PARALLEL_FROM or (os.cpu_count() or 1) < 2:
        return [_scan(url, 1, max_seq + 1, sizes)]
    split = 1 << ((max_seq - 1).bit_length() - 1)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        first = pool.submit(_scan, url, 1, split + 1, sizes)
        second = pool.submit(_scan, url, split + 1, max_seq + 1, sizes)
        return [first.result(), second.result()]


def verify_log(engine, exported: Checkpoint | None = None) -> VerifyReport:
    report = VerifyReport()
    with engine.connect() as conn:
        trusted, revoked = _trusted_audit_keys(conn)
        stored = [Checkpoint(int(r[0]), r[1], r[2], r[3], r[4]) for r in conn.execute(text(
            "SELECT tree_size, root, ts, key_id, signature FROM audit_checkpoint ORDER BY tree_size")).all()]
        max_seq = int(conn.execute(text("SELECT COALESCE(MAX(seq), 0) FROM audit_event")).scalar())
    targets: dict[int, list[tuple[str, Checkpoint]]] = {}
    for cp in stored:
        problem = check_signature(cp, trusted, revoked)
        if problem:
            report.fail(f"stored checkpoint at size {cp.tree_size}: {problem}")
        else:
            targets.setdefault(cp.tree_size, []).append(("stored checkpoint", cp))
    if exported is not None:
        problem = check_signature(exported, trusted, revoked)
        if problem:
            report.fail(f"exported checkpoint at size {exported.tree_size}: {problem}")
        else:
            targets.setdefault(exported.tree_size, []).append(("exported checkpoint", exported))
    targets.pop(0, None)

    parts = _scan_log(engine, max_seq, frozenset(targets))
    prefix: list[bytes] = []
    size = 0
    roots: dict[int, str] = {}
    for part in parts:
        for seq, stack in part.at.items():
            roots[seq] = _fold(prefix + stack).hex()
        size = part.end
        for seq, kind in part.problems:
            if kind == "missing":
                report.fail(f"event {seq} is missing: deleted, or the log was renumbered (it ends at {max_seq})",
                            seq)
            else:
                report.fail(f"event {seq} was modified: its content no longer matches its recorded hash", seq)
        prefix = prefix + part.stack
        if any(kind == "missing" for _, kind in part.problems):
            break
    for tree_size in sorted(targets):
        for what, cp in targets[tree_size]:
            if tree_size > size:
                report.fail(f"log truncated: the {what} covers {tree_size} events, the log has {size}", size + 1)
                continue
            report.checkpoints_checked += 1
            if cp.root != roots[tree_size]:
                report.fail(f"{what} at size {tree_size} does not match the events: history up to event "
                            f"{tree_size} was rewritten after it was signed", _rewritten_from(stored, tree_size))
    report.events = size
    report.root = _fold(prefix).hex()
    return report


def _rewritten_from(stored: list[Checkpoint], size: int) -> int:
    """The first sequence number the rewrite can have touched: just after the last earlier checkpoint."""
    earlier = [cp.tree_size for cp in stored if cp.tree_size < size]
    return (max(earlier) if earlier else 0) + 1


def _fold(stack: list[bytes]) -> bytes:
    if not stack:
        return hashlib.sha256(b"").digest()
    acc = stack[-1]
    for left in reversed(stack[:-1]):
        acc = hashlib.sha256(b"\x01" + left + acc).digest()
    return acc
