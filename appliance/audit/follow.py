"""Following the audit trail as it grows, trusting nothing the database says of itself: the gateway's view.

At start the whole log is verified (`verify.verify_log`: every event rehashed, every anchored leaf and signed
checkpoint matched); after that each round reads the new lines of the anchor file and the new events, rehashes
each, and accepts it only once its anchored leaf matches (or an anchored checkpoint signed by a pinned audit key
covers it and its root matches). The events the release decisions rest on are kept as they were accepted, so a
revocation cannot be taken back by deleting it: the deletion disagrees with its anchor, and any disagreement sets
`problem`, on which the gateway serves no adapter until it is restarted over a trail that verifies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select

from appliance.audit import anchors, merkle
from appliance.audit.events import LEAF, canonical
from appliance.audit.verify import Trust, check_signature, trusted_audit_keys, verify_log
from appliance.db.tables import audit_event

# The events release decisions rest on: what was packaged, signed, approved, rejected or revoked, which artifact
# key was revoked, and how each account got its role.
DECISIONS = ("artifact.package", "artifact.sign", "artifact.approve", "artifact.reject", "artifact.revoke",
             "key.revoke", "user.create", "user.set_role", "user.reset_password")
_BATCH = 5000
_NEWER = (select(*LEAF, audit_event.c.leaf_hash).where(audit_event.c.seq > bindparam("after"))
          .order_by(audit_event.c.seq).limit(bindparam("n")))
_MAX = select(func.coalesce(func.max(audit_event.c.seq), 0))


@dataclass(frozen=True)
class Accepted:
    """One accepted event of the kinds in DECISIONS."""

    seq: int
    action: str
    object_id: str
    object_sha256: str
    outcome: str
    actor: str
    details: str  # JSON text
    os_uid: int | None
    os_source: str | None


class TrailFollower:
    def __init__(self, settings, engine) -> None:
        self.settings, self.engine = settings, engine
        self.size = 0
        self.leaves = bytearray()  # 32 bytes an accepted event
        self.frontier = merkle.Frontier()
        self.pending: dict[int, set[bytes]] = {}  # anchored leaves of events not accepted yet
        self.checkpoints: list = []  # anchored checkpoints above `size`
        self.decisions: list[Accepted] = []
        self.lost_revocations: dict[str, str] = {}  # artifact -> the restore marker that lost its revocation
        self.problem: str | None = None
        self._offset = 0
        self._waiting: tuple[int, float] | None = None  # (event, since) with no anchor yet

    # --- start ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Verify the whole log against the anchors, then keep its decisions."""
        raw = self._read_anchor_bytes(0)
        found = anchors.parse(raw, str(self.settings.anchor_path))
        trust = Trust.of(self.settings, with_anchors=False)
        from appliance.audit.policy import cadence

        trust.take(found)
        trust.anchor_file, trust.anchor_file_exists = str(self.settings.anchor_path), self.settings.anchor_path.exists()
        trust.cadence = cadence()
        report = verify_log(self.engine, trust)
        if not report.ok:
            self.problem = f"the audit trail does not verify: {report.problems[0]}"
            return
        self.leaves = bytearray(report.leaves)
        self.size = report.events
        for marker in found.restores:
            self.lost_revocations.update(dict.fromkeys(marker.lost_revocations, marker.where))
        self.frontier.extend(self.leaves[i:i + 32] for i in range(0, len(self.leaves), 32))
        self._note_anchors(found)
        with self.engine.connect() as conn:
            e = audit_event.c
            rows = conn.execute(select(*LEAF).where(e.action.in_(DECISIONS), e.seq <= self.size)
                                .order_by(e.seq)).all()
        for row in rows:
            leaf = merkle.leaf_hash(canonical(tuple(row)))
            if self.leaves[(row.seq - 1) * 32:row.seq * 32] != leaf:  # changed since verify_log read it
                self.problem = f"event {row.seq} changed while the gateway verified the trail"
                return
            self._keep(row)

    # --- each round -----------------------------------------------------------------------------------------
    def follow(self) -> int:
        """Accept what was appended since the last round; returns how many events were accepted."""
        if self.problem:
            return 0
        found = anchors.parse(self._read_anchor_bytes(self._offset), str(self.settings.anchor_path))
        if found.restores:
            self.problem = (f"the trail was restored while the gateway served ({found.restores[0].where}): start "
                            f"the gateway again")
            return 0
        self._note_anchors(found)
        if self.problem:
            return 0
        accepted = 0
        self.checkpoints = [cp for cp in self.checkpoints if cp.tree_size > self.size]
        with self.engine.connect() as conn:
            if int(conn.execute(_MAX).scalar()) < self.size:
                self.problem = (f"log truncated: the trail now ends before event {self.size}, which the gateway "
                                f"had verified")
                return 0
            while not self.problem:
                rows = conn.execute(_NEWER, {"after": self.size, "n": _BATCH}).all()
                done = self._accept(conn, rows)
                accepted += done
                if done < len(rows) or len(rows) < _BATCH:
                    break
        return accepted

    def _accept(self, conn, rows) -> int:
        done = 0
        for index, row in enumerate(rows):
            seq = row.seq
            if seq != self.size + 1:
                self.problem = f"event {self.size + 1} is missing from the trail (the next is {seq})"
                return done
            leaf = merkle.leaf_hash(canonical(tuple(row[:-1])))
            if leaf.hex() != row.leaf_hash:
                self.problem = f"event {seq} does not match its recorded hash"
                return done
            anchored = self.pending.get(seq)
            if anchored is None:
                return done + self._covered_by_checkpoint(conn, rows[index:])
            if anchored != {leaf}:
                self.problem = f"event {seq} differs from its leaf anchored as it was committed"
                return done
            self._take(row, leaf)
            done += 1
        return done

    def _covered_by_checkpoint(self, conn, rows) -> int:
        """Events that reached the database with no anchored leaf (a writer that died between its commit and its
        anchor) count once an anchored checkpoint signed by a pinned key covers them; until then they wait,
        and after the audit policy's cadence the trail is a problem."""
        from appliance.audit.policy import cadence

        first = rows[0].seq
        trusted, revoked, in_database = trusted_audit_keys(conn, Trust.of(self.settings, with_anchors=False))
        for cp in sorted(self.checkpoints, key=lambda c: c.tree_size):
            if cp.tree_size < first or check_signature(cp, trusted, revoked, in_database):
                continue
            span = [r for r in rows if r.seq <= cp.tree_size]
            if len(span) < cp.tree_size - first + 1:
                break  # the batch ends before the checkpoint: the next round reads on
            trial = merkle.Frontier()
            trial.size, trial._stack = self.frontier.size, list(self.frontier._stack)
            leaves = [merkle.leaf_hash(canonical(tuple(r[:-1]))) for r in span]
            trial.extend(leaves)
            if trial.root().hex() != cp.root:
                self.problem = f"events {first}..{cp.tree_size} do not match the anchored checkpoint over them"
                return 0
            for row, leaf in zip(span, leaves, strict=True):
                self._take(row, leaf)
            self._waiting = None
            return len(span)
        now = time.monotonic()
        if self._waiting is None or self._waiting[0] != first:
            self._waiting = (first, now)
        every = cadence()
        if now - self._waiting[1] > every.every_seconds + every.grace_seconds:
            self.problem = (f"event {first} has stayed unanchored beyond the audit policy's cadence: written outside "
                            f"the appliance, or the signer is not running")
        return 0

    # --- helpers --------------------------------------------------------------------------------------------
    def _take(self, row, leaf: bytes) -> None:
        self.leaves += leaf
        self.frontier.append(leaf)
        self.size = row.seq
        self.pending.pop(row.seq, None)
        if row.action in DECISIONS:
            self._keep(row)

    def _keep(self, row) -> None:
        self.decisions.append(Accepted(int(row.seq), row.action, row.object_id, row.object_sha256, row.outcome,
                                       row.actor, row.details, None if row.os_uid is None else int(row.os_uid),
                                       row.os_source))

    def _read_anchor_bytes(self, offset: int) -> bytes:
        try:
            with open(self.settings.anchor_path, "rb") as fh:
                fh.seek(offset)
                raw = fh.read()
        except FileNotFoundError:
            return b""
        whole = raw[:raw.rfind(b"\n") + 1]  # a line being written is read next round
        self._offset = offset + len(whole)
        return whole

    def _note_anchors(self, found: anchors.AnchorFile) -> None:
        if found.problems:
            self.problem = f"the anchor file: {found.problems[0]}"
            return
        for run in found.leaves:
            for i in range(0, len(run.leaves), 32):
                seq, leaf = run.first + i // 32, run.leaves[i:i + 32]
                if seq <= self.size:
                    if self.leaves[(seq - 1) * 32:seq * 32] != leaf:
                        self.problem = f"{run.where} anchors event {seq} otherwise than the event the gateway accepted"
                        return
                else:
                    self.pending.setdefault(seq, set()).add(leaf)
        self.checkpoints += [a.checkpoint for a in found.checkpoints if a.checkpoint.tree_size > self.size]

    def of(self, object_id: str, *actions: str) -> list[Accepted]:
        return [d for d in self.decisions if d.object_id == object_id and d.action in actions and d.outcome == "ok"]
