"""Verifying the audit trail from its raw rows, trusting nothing that is stored derived.

Each event's leaf is recomputed from its columns, the tree head is rebuilt from those leaves, and every
signed checkpoint (stored, or exported earlier and given back) must match the rebuilt head at its size.
Database triggers that refuse UPDATE and DELETE are not relied on: someone with file access can drop them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from sqlalchemy import text

from appliance.audit.events import COLUMNS, canonical
from appliance.audit.log import CHECKPOINT_HEADER, Checkpoint
from appliance.errors import InputError
from appliance.keys.store import verify_signature

_BATCH = 20_000


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


def read_checkpoint_file(path: Path) -> Checkpoint:
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
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


def verify_log(engine, exported: Checkpoint | None = None) -> VerifyReport:
    report = VerifyReport()
    with engine.connect() as conn:
        trusted, revoked = _trusted_audit_keys(conn)
        stored = [Checkpoint(int(r[0]), r[1], r[2], r[3], r[4]) for r in conn.execute(text(
            "SELECT tree_size, root, ts, key_id, signature FROM audit_checkpoint ORDER BY tree_size")).all()]
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
        if 0 in targets:
            targets.pop(0)

        sha = hashlib.sha256
        stack: list[bytes] = []
        size = 0
        columns = ", ".join(COLUMNS)
        result = conn.execution_options(stream_results=True, yield_per=_BATCH).execute(
            text(f"SELECT {columns}, leaf_hash FROM audit_event ORDER BY seq"))
        for rows in result.partitions(_BATCH):
            for row in rows:
                seq = row[0]
                expected = size + 1
                if seq != expected:
                    if seq > expected:
                        report.fail(f"event {expected} is missing: events {expected}..{seq - 1} were deleted "
                                    "or the log was reordered", expected)
                    else:
                        report.fail(f"event {seq} appears out of order", seq)
                    return _finish(report, size, stack)
                leaf = sha(b"\x00" + canonical(row[:-1])).digest()
                if leaf.hex() != row[-1]:
                    report.fail(f"event {seq} was modified: its content no longer matches its recorded hash", seq)
                index = size
                node = leaf
                while index & 1:
                    node = sha(b"\x01" + stack.pop() + node).digest()
                    index >>= 1
                stack.append(node)
                size += 1
                if size in targets:
                    root = _fold(stack).hex()
                    for what, cp in targets.pop(size):
                        report.checkpoints_checked += 1
                        if cp.root != root:
                            report.fail(f"{what} at size {size} does not match the events: history up to event "
                                        f"{size} was rewritten after it was signed", _rewritten_from(stored, size))
        for tree_size, cps in sorted(targets.items()):
            for what, _cp in cps:
                report.fail(f"log truncated: the {what} covers {tree_size} events, the log has {size}", size + 1)
    return _finish(report, size, stack)


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


def _finish(report: VerifyReport, size: int, stack: list[bytes]) -> VerifyReport:
    report.events = size
    report.root = _fold(stack).hex()
    return report
