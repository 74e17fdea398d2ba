"""Verifying the audit trail from its raw rows, trusting nothing that is stored derived.

Each event's leaf is recomputed from its columns, the tree head is rebuilt from those leaves, and every
signed checkpoint (stored, anchored outside the database, or exported earlier and given back) must match the
rebuilt head at its size. Signatures are checked against the keys pinned outside the database only (`pins.py`);
the anchors (`anchors.py`) prove the log was not cut short; the events after the newest anchor must be within
the audit policy's cadence. Database triggers that refuse UPDATE and DELETE are not relied on: someone with
file access can drop them.
"""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.pool import NullPool

from appliance.audit.anchors import Anchor, LeafRun
from appliance.audit.checkpoints import Checkpoint, checkpoint_of
from appliance.audit.events import LEAF, canonical
from appliance.db.engine import driver_sql
from appliance.db.tables import audit_checkpoint, audit_event, signing_key
from appliance.errors import InputError
from appliance.keys.crypto import verify_signature

_BATCH = 20_000
_PARALLEL_FROM = 200_000  # events; below this one process is faster than starting workers
_STRETCH = (select(*LEAF, audit_event.c.leaf_hash)
            .where(audit_event.c.seq >= bindparam("lo"), audit_event.c.seq < bindparam("hi"))
            .order_by(audit_event.c.seq))


@dataclass
class VerifyReport:
    events: int = 0
    checkpoints_checked: int = 0
    root: str = ""
    problems: list[str] = field(default_factory=list)
    first_bad_seq: int | None = None
    anchored: int = 0  # events covered outside the database: by their anchored leaf or an anchored checkpoint
    unanchored: int = 0  # events neither covers
    notes: list[str] = field(default_factory=list)  # what an auditor should know that is not a failure
    leaves: bytes = field(default=b"", repr=False)  # every event's leaf as recomputed (the gateway follows on)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, message: str, seq: int | None = None) -> None:
        self.problems.append(message)
        if seq is not None and (self.first_bad_seq is None or seq < self.first_bad_seq):
            self.first_bad_seq = seq

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("leaves")
        return {**data, "ok": self.ok}


@dataclass
class Kept:
    """What a person kept elsewhere: checkpoints, and the leaves of a journal's or an anchor file's copy."""

    checkpoints: list[Checkpoint]
    leaves: list[LeafRun] = field(default_factory=list)


def read_checkpoint_file(source) -> Kept:
    """Checkpoints kept elsewhere: one exported checkpoint, an evidence pack's list, or JSON lines (an anchor
    file's copy, or the journal's, leaves included); a path, or a file a person named (`userfiles.InputFile`)."""
    from appliance.audit.anchors import parse
    from appliance.userfiles import as_input

    source = as_input(source)
    raw = source.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{source.name}: not a checkpoint file: not UTF-8") from None
    found = parse(raw, source.name)
    if found.problems:
        raise InputError(found.problems[0])
    if not found.checkpoints and not found.leaves:
        raise InputError(f"{source.name}: holds no appliance audit checkpoint")
    return Kept([a.checkpoint for a in found.checkpoints], found.leaves)


@dataclass
class Trust:
    """What verification trusts, none of it from the database: the pinned keys, the anchors, the cadence."""

    keys: dict
    anchors: list[Anchor] = field(default_factory=list)
    leaves: list[LeafRun] = field(default_factory=list)  # every committed event's leaf, as anchored
    restores: list = field(default_factory=list)  # restore markers (restores.RestoreMarker), in order
    lost: list[LeafRun] = field(default_factory=list)  # anchored leaves a restore marker superseded
    problems: list[str] = field(default_factory=list)
    anchor_file: str = ""
    anchor_file_exists: bool = False
    cadence: object | None = None  # audit.policy.Cadence; None: anchoring and freshness are not checked
    pin_source: str = "the pinned keys"
    fingerprint: str | None = None  # a key the operator vouches for by its sha256, wherever its PEM comes from

    @classmethod
    def of(cls, settings, fingerprint: str | None = None, with_anchors: bool = True) -> Trust:
        """The install's trust: its pinned keys (or only the key with this sha256 fingerprint), its anchor file,
        its audit policy's cadence."""
        from appliance.audit import anchors
        from appliance.audit.policy import cadence
        from appliance.keys import pins

        keys, problem = pins.read(settings)
        source = str(settings.pinned_keys_path)
        wanted = fingerprint.lower().removeprefix("sha256:") if fingerprint else None
        if wanted:
            keys, problem = {k: v for k, v in keys.items() if k == wanted}, None
            source = f"the audit key {wanted[:16]} given by its fingerprint"
        trust = cls(keys, problems=[problem] if problem else [], pin_source=source, fingerprint=wanted)
        if with_anchors:
            found, trust.anchor_file_exists = anchors.read(settings)
            trust.take(found)
            trust.anchor_file = str(settings.anchor_path)
            trust.cadence = cadence()
        return trust

    def take(self, found) -> None:
        """The anchors of an anchor file as read (`anchors.AnchorFile`)."""
        self.anchors, self.leaves, self.restores, self.lost = found.checkpoints, found.leaves, found.restores, \
            found.lost
        self.problems = self.problems + found.problems


def trusted_audit_keys(conn, trust: Trust) -> tuple[dict, set[str], set[str]]:
    """(pinned keys not revoked, revoked key ids, key ids the database holds)."""
    from cryptography.hazmat.primitives import serialization

    from appliance.keys.crypto import key_id_of

    k = signing_key.c
    rows = conn.execute(select(k.key_id, k.status, k.public_pem).where(k.purpose == "audit")).all()
    revoked = {k for k, status, _ in rows if status == "revoked"}
    trusted = {k: v for k, v in trust.keys.items() if k not in revoked}
    for key_id, status, pem in rows:
        if trust.fingerprint and key_id == trust.fingerprint and status != "revoked":
            key = serialization.load_pem_public_key(pem.encode())
            if key_id_of(key) == trust.fingerprint:  # the PEM is the key the fingerprint names
                trusted[key_id] = key
    return trusted, revoked, {k for k, _, _ in rows}


def check_signature(cp: Checkpoint, trusted: dict, revoked: set[str], in_database: frozenset | set = frozenset(),
                    pin_source: str = "the pinned keys") -> str | None:
    """None when the checkpoint is signed by a trusted audit key; otherwise what is wrong."""
    if cp.key_id in revoked:
        return f"signed by revoked key {cp.key_id[:16]}"
    key = trusted.get(cp.key_id)
    if key is None:
        if cp.key_id in in_database:
            return f"signed by key {cp.key_id[:16]}, found only in the database (not in {pin_source})"
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
    leaves: bytearray = field(default_factory=bytearray)  # every event's leaf as recomputed, 32 bytes each
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
    stack, leaves = out.stack, out.leaves
    try:
        sql, names = driver_sql(engine.dialect, _STRETCH)
        cursor = raw.driver_connection.cursor(name="audit_verify") if engine.dialect.name == "postgresql" \
            else raw.cursor()
        cursor.execute(sql, tuple({"lo": lo, "hi": hi}[name] for name in names))
        expected = lo
        while rows := cursor.fetchmany(_BATCH):
            for row in rows:
                seq = row[0]
                if seq != expected:
                    out.problems.append((expected, "missing"))
                    return out
                node = sha(b"\x00" + canonical(row[:-1])).digest()
                leaves += node
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



def verify_log(engine, trust: Trust, exported: Kept | list[Checkpoint] | Checkpoint | None = None,
               now: datetime | None = None) -> VerifyReport:
    report = VerifyReport()
    for problem in trust.problems:
        report.fail(problem)
    kept_leaves: list[LeafRun] = []
    if isinstance(exported, Kept):
        exported, kept_leaves = exported.checkpoints, exported.leaves
    if isinstance(exported, Checkpoint):
        exported = [exported]
    with engine.connect() as conn:
        trusted, revoked, in_database = trusted_audit_keys(conn, trust)
        stored = [checkpoint_of(r) for r in
                  conn.execute(select(audit_checkpoint).order_by(audit_checkpoint.c.tree_size)).all()]
        max_seq = int(conn.execute(select(func.coalesce(func.max(audit_event.c.seq), 0))).scalar())
    targets: dict[int, list[tuple[str, Checkpoint]]] = {}

    def admit(what: str, cp: Checkpoint) -> bool:
        problem = check_signature(cp, trusted, revoked, in_database, trust.pin_source)
        if problem:
            report.fail(f"{what} at size {cp.tree_size}: {problem}")
            return False
        targets.setdefault(cp.tree_size, []).append((what, cp))
        return True

    for cp in stored:
        admit("stored checkpoint", cp)
    anchored = [a for a in trust.anchors if admit(f"the anchor at {a.where}", a.checkpoint)]
    restored = [m for m in trust.restores if not m.superseded and admit(f"the restore marker at {m.where}", m)]
    for cp in exported or []:
        admit("exported checkpoint", cp)
    _check_anchoring(report, trust, stored, anchored, max_seq, restored)
    targets.pop(0, None)

    parts = _scan_log(engine, max_seq, frozenset(targets))
    prefix: list[bytes] = []
    size = 0
    roots: dict[int, str] = {}
    leaves = b"".join(part.leaves for part in parts)
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
                report.fail(f"log truncated: events {size + 1}..{tree_size} are missing; {what} (signed {cp.ts}) "
                            f"covers {tree_size} events, the log has {size}", size + 1)
                continue
            report.checkpoints_checked += 1
            if cp.root != roots[tree_size]:
                report.fail(f"{what} at size {tree_size} does not match the events: history up to event "
                            f"{tree_size} was rewritten after it was signed", _rewritten_from(stored, tree_size))
    report.events = size
    report.root = _fold(prefix).hex()
    leaves = report.leaves = leaves[:size * 32]
    matched = _check_leaves(report, trust.leaves, leaves, size, max_seq)
    if kept_leaves:
        _check_leaves(report, kept_leaves, leaves, size, max_seq)
    matched += _still_held(trust.lost, leaves, size)
    report.notes += [m.note() for m in trust.restores]
    head = max([a.checkpoint.tree_size for a in anchored] + [m.tree_size for m in restored], default=0)
    oldest, report.unanchored = _uncovered(matched, min(head, size), size)
    report.anchored = size - report.unanchored
    if trust.cadence is not None and oldest is not None:
        _check_freshness(engine, report, trust, now or datetime.now(UTC), oldest)
    return report


def _check_leaves(report: VerifyReport, runs: list[LeafRun], leaves: bytes, size: int, max_seq: int
                  ) -> list[tuple[int, int]]:
    """Every anchored leaf must be the leaf of the event at its place in the log; returns the (first, last)
    ranges whose leaves matched."""
    matched, missing, changed = [], None, []
    for run in runs:
        if run.last > size:
            first = max(run.first, size + 1)
            if missing is None or first < missing[0]:
                missing = (first, max(run.last, missing[1] if missing else 0), run.where)
            elif run.last > missing[1]:
                missing = (missing[0], run.last, missing[2])
        upto = min(run.last, size)
        if upto < run.first:
            continue
        mine, theirs = leaves[(run.first - 1) * 32:upto * 32], run.leaves[:(upto - run.first + 1) * 32]
        if mine == theirs:
            matched.append((run.first, upto))
            continue
        offset = next(i for i in range(0, len(mine), 32) if mine[i:i + 32] != theirs[i:i + 32])
        changed.append((run.first + offset // 32, run.where))
    for seq, where in sorted(changed)[:5]:
        report.fail(f"event {seq} differs from its leaf anchored at {where}: it was changed or replaced after it "
                    f"was committed", seq)
    if missing is not None:
        lost = f"events {missing[0]}..{missing[1]} are missing" if missing[0] <= max_seq else \
            f"events {missing[0]}..{missing[1]} were deleted"
        report.fail(f"log truncated: {lost}; their leaves were anchored as they were committed ({missing[2]} is "
                    f"the first line naming them), the log has {size}", missing[0])
    return matched


def _still_held(runs: list[LeafRun], leaves: bytes, size: int) -> list[tuple[int, int]]:
    """The leaves a restore marker superseded that the log still holds as anchored (a restore that marked its
    loss, then did not land): they cover their events as before."""
    held = []
    for run in runs:
        upto = min(run.last, size)
        if upto >= run.first and leaves[(run.first - 1) * 32:upto * 32] == run.leaves[:(upto - run.first + 1) * 32]:
            held.append((run.first, upto))
    return held


def _uncovered(matched: list[tuple[int, int]], head: int, size: int) -> tuple[int | None, int]:
    """(the oldest event that neither an anchored leaf nor an anchored checkpoint covers, how many there are)."""
    oldest, count, upto = None, 0, head
    for first, last in sorted(matched):
        if first > upto + 1:
            oldest = upto + 1 if oldest is None else oldest
            count += first - upto - 1
        upto = max(upto, last)
    if upto < size:
        oldest = upto + 1 if oldest is None else oldest
        count += size - upto
    return oldest, count


def _check_anchoring(report: VerifyReport, trust: Trust, stored: list[Checkpoint], anchored: list[Anchor],
                     max_seq: int, restored: list = ()) -> None:
    """Every stored checkpoint since anchoring began has its anchor (those a restore brought back after what it
    lost: the restore marker's signed head covers them), and every anchor its stored checkpoint."""
    if trust.cadence is None:
        return
    anchored_sizes = {a.checkpoint.tree_size for a in anchored}
    if not trust.anchor_file_exists:
        if stored:
            report.fail(f"the anchor file {trust.anchor_file} is missing, but the database holds {len(stored)} "
                        f"signed checkpoints: the anchors were removed (compare with the journal's copy: "
                        f"journalctl -t appliance-audit)")
        return
    first = min(anchored_sizes, default=None)
    brought_back = [(m.lost_from, m.tree_size) for m in restored]
    for cp in stored:
        if any(lo <= cp.tree_size <= hi for lo, hi in brought_back):
            continue
        if first is not None and cp.tree_size > first and cp.tree_size not in anchored_sizes:
            report.fail(f"the stored checkpoint at size {cp.tree_size} has no anchor in {trust.anchor_file}: "
                        f"the anchor file was edited or replaced")
    stored_sizes = {cp.tree_size for cp in stored}
    newest_stored = max(stored_sizes, default=0)
    for a in anchored:
        if a.checkpoint.tree_size in stored_sizes:
            continue
        if a.checkpoint.tree_size < newest_stored:
            # A signer stopped between anchoring a checkpoint and storing it (the anchor goes first, so that it
            # never covers rolled-back events); its head is still checked against the events above, and a
            # later stored checkpoint covers them. Noted for the auditor, not a failure.
            report.notes.append(f"the checkpoint anchored at {a.where} (size {a.checkpoint.tree_size}) was never "
                                f"stored: its signer stopped before storing it, or its row was deleted; later "
                                f"stored checkpoints cover its events")
            continue
        crashed = ("" if a.checkpoint.tree_size > max_seq else
                   " (a signer killed between anchoring and storing leaves the same: once `appliance audit "
                   "checkpoint` stores a later checkpoint, this becomes a note)")
        report.fail(f"the database lacks the checkpoint anchored at {a.where} (size {a.checkpoint.tree_size}): "
                    f"stored checkpoints were deleted{crashed}")


def _check_freshness(engine, report: VerifyReport, trust: Trust, now: datetime, first: int) -> None:
    """Events that reached the database without their leaf anchored (a process that died between its commit and
    its anchor, or rows written straight into the database) are tolerated until the next anchored checkpoint is
    due, no longer."""
    cadence = trust.cadence
    with engine.connect() as conn:
        oldest = conn.execute(select(audit_event.c.ts).where(audit_event.c.seq == first)).scalar()
    if oldest is None:
        return
    age = (now - datetime.fromisoformat(oldest)).total_seconds()
    grace = cadence.grace_seconds
    if age > cadence.every_seconds + grace or (report.unanchored > cadence.every_events and age > grace):
        report.fail(f"unanchored events: {report.unanchored} from event {first} on are covered neither by their "
                    f"anchored leaf nor by an anchored checkpoint, the oldest for {age:.0f} s, beyond the audit "
                    f"policy's cadence ({cadence.every_events} events or {cadence.every_seconds} s): written "
                    f"outside the appliance, or the signer (`appliance worker`) is not running? `appliance audit "
                    f"checkpoint` anchors them", first)
    else:
        report.notes.append(f"{report.unanchored} events from event {first} on are not yet anchored outside the "
                            f"database (within the audit policy's cadence)")


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
