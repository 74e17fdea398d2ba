"""Restore markers: what a `restore` of an older backup lost, anchored beside the leaves it supersedes.

A restore puts back a trail shorter than (or different from) the one the anchor file already witnessed. Without a
word in the anchor file, verification would report the anchored events past the restored log as deleted, forever,
and the gateway would serve nothing. The restore therefore appends one line (`appliance audit restore v1`), signed
with the restored trail's audit key: the restored tree head (size and root), the range of anchored events it lost
(`lost_from`..`lost_to`), the signed decisions among them that the live database still showed (a lost revocation
keeps its adapter from being served), the archive and its digest, the OS account that ran it and why.

Reading the anchor file in order, a marker supersedes the leaves and checkpoints anchored before it from
`lost_from` on; what was anchored before it below `lost_from` must still match, and what follows it anchors the
restored trail's continuation. Verification names every marker in its notes, so the loss is explained and never
hidden; a marker that does not match the restored log (its root at its size) is a failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

RESTORE_HEADER = "appliance audit restore v1"
_SIGNED = ("tree_size", "root", "ts", "key_id", "lost_from", "lost_to", "lost_decisions", "archive",
           "archive_sha256", "backup_created_at", "os_user", "sudo_user", "reason")


@dataclass(frozen=True)
class RestoreMarker:
    tree_size: int  # the restored trail's size
    root: str  # its root, hex
    ts: str
    key_id: str
    signature: str  # base64 DER ECDSA-SHA256 over body(), by the audit key
    lost_from: int
    lost_to: int
    archive: str
    archive_sha256: str
    backup_created_at: str | None
    os_user: str
    reason: str
    sudo_user: str | None = None
    lost_decisions: list = field(default_factory=list)  # [{"seq", "action", "object"}] the live log still showed
    where: str = ""
    superseded: bool = False  # a later restore went back before this one's trail: still named, no longer checked

    def body(self) -> bytes:
        values = {k: getattr(self, k) for k in _SIGNED}
        return (RESTORE_HEADER + "\n" + json.dumps(values, sort_keys=True, separators=(",", ":"))).encode()

    def as_dict(self) -> dict:
        return {"format": RESTORE_HEADER, **{k: getattr(self, k) for k in _SIGNED}, "signature": self.signature}

    def line(self) -> bytes:
        return (json.dumps(self.as_dict(), separators=(",", ":"), sort_keys=True) + "\n").encode()

    @property
    def lost_revocations(self) -> set[str]:
        return {d["object"] for d in self.lost_decisions if d.get("action") == "artifact.revoke"}

    def note(self) -> str:
        by = self.os_user + (f" (through sudo from {self.sudo_user})" if self.sudo_user else "")
        decisions = "; ".join(f"{d['action']} {d['object']} (event {d['seq']})" for d in self.lost_decisions[:8])
        return (f"events {self.lost_from}..{self.lost_to} were lost at the restore of {self.archive} (sha256 "
                f"{self.archive_sha256[:16]}, a backup of {self.backup_created_at or 'an unknown time'}) at "
                f"{self.ts} by {by}, anchored at {self.where}; the reason given: {self.reason}"
                + (f"; signed decisions among them: {decisions}" if decisions else ""))


def marker_of(data: dict, where: str) -> RestoreMarker:
    """A marker from its anchor line; ValueError/KeyError/TypeError naming nothing for a malformed one."""
    values = {k: data[k] for k in _SIGNED}
    marker = RestoreMarker(**values, signature=str(data["signature"]), where=where)
    ints = (marker.tree_size, marker.lost_from, marker.lost_to)
    if not all(isinstance(v, int) for v in ints) or not 1 <= marker.lost_from <= marker.lost_to or \
            marker.tree_size < 0 or not isinstance(marker.lost_decisions, list):
        raise ValueError("tree_size, lost_from or lost_to")
    return marker


def lost_range(runs, checkpoints, leaves: bytes, size: int) -> tuple[int, int] | None:
    """(first, last) of the anchored events a trail of `size` events with these `leaves` does not hold as
    anchored: from the first anchored leaf it lacks or holds otherwise (or the first checkpoint beyond it) to
    the last event anything anchored names; None when it holds everything anchored."""
    first, last = None, 0
    for run in runs:
        last = max(last, run.last)
        for i in range(0, len(run.leaves), 32):
            seq = run.first + i // 32
            if seq > size or leaves[(seq - 1) * 32:seq * 32] != run.leaves[i:i + 32]:
                first = seq if first is None else min(first, seq)
                break
    for cp in checkpoints:
        last = max(last, cp.tree_size)
        if cp.tree_size > size:
            first = size + 1 if first is None else min(first, size + 1)
    return None if first is None else (first, max(last, first))
