"""Anchors outside the database: every signed checkpoint is appended to a file the database's writers cannot
rewrite (`[audit] anchor_file`: /var/log/appliance/checkpoints.jsonl on an install, append-only with
`chattr +a`) and sent to the system journal (syslog identifier `appliance-audit`), which IT forwards to its SIEM.

Verification reads the anchor file back: the log must be at least as long as every anchored tree and agree
with every anchored head (RFC 9162 signed tree heads, witnessed elsewhere). An officer's own copy, or the
journal's (`journalctl -t appliance-audit -o cat > kept.jsonl`), verifies the same way with `--checkpoint`.
"""

from __future__ import annotations

import json
import os
import syslog
from dataclasses import dataclass
from pathlib import Path

from appliance.audit.log import CHECKPOINT_HEADER, Checkpoint
from appliance.errors import InputError, StorageError

JOURNAL_IDENTIFIER = "appliance-audit"


@dataclass(frozen=True)
class Anchor:
    checkpoint: Checkpoint
    where: str  # "FILE line N"


def line_of(cp: Checkpoint) -> bytes:
    return (json.dumps(cp.as_dict(), separators=(",", ":"), sort_keys=True) + "\n").encode()


def append(settings, cp: Checkpoint) -> None:
    """Append `cp` to the anchor file (fsync'd) and the journal. A file that cannot be written is an error: the
    checkpoint is then not stored either, and the next signer's look tries again."""
    path = settings.anchor_path
    data = line_of(cp)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"{path}: cannot append the audit checkpoint anchor: {exc.strerror}") from None
    if settings.file.audit.journal:
        syslog.openlog(JOURNAL_IDENTIFIER, syslog.LOG_PID, syslog.LOG_AUTHPRIV)
        syslog.syslog(syslog.LOG_NOTICE, data.decode().rstrip("\n"))
        syslog.closelog()


def parse(raw: bytes, name: str) -> tuple[list[Anchor], list[str]]:
    """Checkpoints in a JSON-lines file (or one JSON object, or a JSON list: an exported checkpoint or an
    evidence pack's checkpoints.json); unreadable lines are returned as problems naming the line."""
    text = raw.decode("utf-8", errors="replace")
    stripped = text.strip()
    items: list[tuple[str, object]] = []
    problems: list[str] = []
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
                problems.append(f"{where}: not a JSON checkpoint (the anchor file was edited)")
    anchors = []
    for where, data in items:
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_HEADER:
            problems.append(f"{where}: field format: not an appliance audit checkpoint")
            continue
        try:
            cp = Checkpoint(int(data["tree_size"]), str(data["root"]), str(data["ts"]), str(data["key_id"]),
                            str(data["signature"]))
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"{where}: field {exc}: missing or malformed")
            continue
        anchors.append(Anchor(cp, where))
    return anchors, problems


def read(settings) -> tuple[list[Anchor], list[str], bool]:
    """The install's anchors: (anchors, problems, whether the file exists)."""
    path: Path = settings.anchor_path
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], [], False
    except OSError as exc:
        return [], [f"{path}: cannot read the anchor file: {exc.strerror}"], True
    anchors, problems = parse(raw, str(path))
    return anchors, problems, True
