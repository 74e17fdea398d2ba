"""Anchors outside the database: every committed event's leaf hash and every signed checkpoint are appended to a
file the database's writers cannot rewrite (`[audit] anchor_file`: /var/log/appliance/checkpoints.jsonl on an
install, append-only with `chattr +a`) and sent to the system journal (syslog identifier `appliance-audit`), which
IT forwards to its SIEM.

Two kinds of line, one JSON object each:
- leaves (`appliance audit leaves v1`): `from` (the first event's sequence number) and `leaves`, the leaf hashes
  of consecutive events as one hex string, written as the transaction that appended them commits, before the
  command or the request that made them answers. Deleting or changing any event after that, the newest
  included, disagrees with its anchored leaf.
- checkpoints (`appliance audit checkpoint v1`): the signed tree heads (RFC 9162), at the audit policy's cadence.
- restore markers (`appliance audit restore v1`, `restores.py`): what a restore of an older backup lost; read in
  order, a marker supersedes what was anchored before it from its `lost_from` on.

Verification reads the file back: the log must hold every anchored leaf unchanged, be at least as long as every
anchored tree and agree with every anchored head. An officer's own copy, or the journal's
(`journalctl -t appliance-audit -o cat > kept.jsonl`), verifies the same way with `--checkpoint`.

A leaf line is written without fsync (the page cache survives the process; SQLite's own commits here are not
fsync'd either); a checkpoint line is fsync'd.
"""

from __future__ import annotations

import contextlib
import json
import os
import syslog
from dataclasses import dataclass, field, replace
from pathlib import Path

from appliance.audit.checkpoints import CHECKPOINT_HEADER, Checkpoint
from appliance.audit.restores import RESTORE_HEADER, RestoreMarker, marker_of
from appliance.errors import InputError, StorageError

JOURNAL_IDENTIFIER = "appliance-audit"
LEAVES_HEADER = "appliance audit leaves v1"
_LEAVES_PER_LINE = 256  # a journal line stays well under journald's LineMax (48 KiB)
_LEAVES_PREFIX = b'{"format":"' + LEAVES_HEADER.encode() + b'","from":'


@dataclass(frozen=True)
class Anchor:
    checkpoint: Checkpoint
    where: str  # "FILE line N"


@dataclass(frozen=True)
class LeafRun:
    """The anchored leaf hashes of events first..last, as one line of the anchor file holds them."""

    first: int
    leaves: bytes  # 32 bytes an event
    where: str

    @property
    def last(self) -> int:
        return self.first + len(self.leaves) // 32 - 1


@dataclass
class AnchorFile:
    checkpoints: list[Anchor]
    leaves: list[LeafRun]
    problems: list[str]
    restores: list[RestoreMarker] = field(default_factory=list)  # in order; each holds the trail it restored
    lost: list[LeafRun] = field(default_factory=list)  # leaves a later restore marker superseded

    def restored(self, marker: RestoreMarker) -> None:
        """Apply `marker`: what was anchored from its lost_from on is superseded (kept in `lost`)."""
        cut = marker.lost_from
        kept = []
        for run in self.leaves:
            if run.last < cut:
                kept.append(run)
                continue
            if run.first < cut:
                kept.append(LeafRun(run.first, run.leaves[:(cut - run.first) * 32], run.where))
            start = max(run.first, cut)
            self.lost.append(LeafRun(start, run.leaves[(start - run.first) * 32:], run.where))
        self.leaves = kept
        self.checkpoints = [a for a in self.checkpoints if a.checkpoint.tree_size < cut]
        self.restores = [m if m.tree_size < cut else replace(m, superseded=True) for m in self.restores]
        self.restores.append(marker)


def line_of(cp: Checkpoint) -> bytes:
    return (json.dumps(cp.as_dict(), separators=(",", ":"), sort_keys=True) + "\n").encode()


def leaf_lines(first: int, leaves: list[bytes]) -> bytes:
    out = []
    for start in range(0, len(leaves), _LEAVES_PER_LINE):
        chunk = b"".join(leaves[start:start + _LEAVES_PER_LINE]).hex()
        out.append(b'%s%d,"leaves":"%s"}\n' % (_LEAVES_PREFIX, first + start, chunk.encode()))
    return b"".join(out)


_journal_opened_by = [0]  # the process that opened the journal's identifier
_open_files: dict[tuple[int, str], int] = {}  # (pid, path) -> descriptor: an append is on every commit's path


def _descriptor(path: Path) -> int:
    key = (os.getpid(), str(path))
    fd = _open_files.get(key)
    if fd is not None:
        try:
            if os.fstat(fd).st_nlink > 0:  # still the file at that path, not one removed since
                return fd
        except OSError:
            pass
        _open_files.pop(key, None)
        with contextlib.suppress(OSError):
            os.close(fd)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    _open_files[key] = fd
    return fd


def _append(settings, data: bytes, durable: bool, what: str) -> None:
    path = settings.anchor_path
    try:
        fd = _descriptor(path)
        os.write(fd, data)  # one write with O_APPEND: lines of concurrent appenders never interleave
        if durable:
            os.fsync(fd)
    except OSError as exc:
        _open_files.pop((os.getpid(), str(path)), None)
        raise StorageError(f"{path}: cannot append the audit {what}: {exc.strerror}") from None
    if settings.file.audit.journal:
        if _journal_opened_by[0] != os.getpid():  # once a process: the identifier stays open between lines
            syslog.openlog(JOURNAL_IDENTIFIER, syslog.LOG_PID, syslog.LOG_AUTHPRIV)
            _journal_opened_by[0] = os.getpid()
        for line in data.decode().splitlines():
            syslog.syslog(syslog.LOG_NOTICE, line)


def append(settings, cp: Checkpoint) -> None:
    """Append `cp` to the anchor file (fsync'd) and the journal. A file that cannot be written is an error: the
    checkpoint is then not stored either, and the next signer's look tries again."""
    _append(settings, line_of(cp), True, "checkpoint anchor")


def append_restore(settings, marker: RestoreMarker) -> None:
    """Append a restore marker (fsync'd) to the anchor file and the journal."""
    _append(settings, marker.line(), True, "restore marker")


def append_leaves(settings, first: int, leaves: list[bytes]) -> None:
    """Append the leaf hashes of the just committed events first.. to the anchor file and the journal."""
    if leaves:
        _append(settings, leaf_lines(first, leaves), False, "event anchor")


def _leaf_run(data: dict, where: str) -> LeafRun:
    first, hexed = data["from"], data["leaves"]
    if not isinstance(first, int) or first < 1 or not isinstance(hexed, str) or not hexed or len(hexed) % 64:
        raise ValueError("from or leaves")
    return LeafRun(first, bytes.fromhex(hexed), where)


def parse(raw: bytes, name: str) -> AnchorFile:
    """Checkpoints and leaf runs in a JSON-lines file (or one JSON object, or a JSON list: an exported checkpoint
    or an evidence pack's checkpoints.json); unreadable lines are returned as problems naming the line."""
    text = raw.decode("utf-8", errors="replace")
    stripped = text.strip()
    items: list[tuple[str, object]] = []
    found = AnchorFile([], [], [])
    if stripped.startswith("[") or (stripped.startswith("{") and "\n{" not in stripped):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise InputError(f"{name}: not a checkpoint file: {exc}") from None
        items = [(f"{name} entry {i + 1}", d) for i, d in enumerate(data if isinstance(data, list) else [data])]
    else:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{name} line {number}"
            try:
                items.append((where, json.loads(line)))
            except ValueError:
                found.problems.append(f"{where}: not a JSON checkpoint (the anchor file was edited)")
    for where, data in items:
        kind = data.get("format") if isinstance(data, dict) else None
        if kind == LEAVES_HEADER:
            try:
                found.leaves.append(_leaf_run(data, where))
            except (KeyError, TypeError, ValueError) as exc:
                found.problems.append(f"{where}: field {exc}: missing or malformed leaves")
            continue
        if kind == RESTORE_HEADER:
            try:
                found.restored(marker_of(data, where))
            except (KeyError, TypeError, ValueError) as exc:
                found.problems.append(f"{where}: field {exc}: missing or malformed restore marker")
            continue
        if kind != CHECKPOINT_HEADER:
            found.problems.append(f"{where}: field format: not an appliance audit checkpoint")
            continue
        try:
            cp = Checkpoint(int(data["tree_size"]), str(data["root"]), str(data["ts"]), str(data["key_id"]),
                            str(data["signature"]))
        except (KeyError, TypeError, ValueError) as exc:
            found.problems.append(f"{where}: field {exc}: missing or malformed")
            continue
        found.checkpoints.append(Anchor(cp, where))
    return found


def read(settings) -> tuple[AnchorFile, bool]:
    """The install's anchors, and whether the file exists."""
    found, exists, _ = read_with_bytes(settings)
    return found, exists


def read_with_bytes(settings) -> tuple[AnchorFile, bool, bytes]:
    """The install's anchors, whether the file exists, and its bytes as read (b"" when it cannot be)."""
    path: Path = settings.anchor_path
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return AnchorFile([], [], []), False, b""
    except OSError as exc:
        return AnchorFile([], [], [f"{path}: cannot read the anchor file: {exc.strerror}"]), True, b""
    return parse(raw, str(path)), True, raw
