"""What an audit event is, and its canonical bytes.

Canonical form, the bytes a Merkle leaf covers: the UTF-8 JSON array
[2, seq, event_id, ts, actor, actor_role, auth_method, action, object_type, object_id, object_sha256,
 outcome, reason, correlation_id, details, os_user, os_uid, os_source] with no whitespace (separators ","
and ":") and non-ASCII characters written as themselves; `details` is itself a string holding the details
object as JSON with sorted keys and the same separators. `os_user`/`os_uid` name the operating-system account
behind the event and `os_source` how it is known ("peer": the kernel's peer credentials on the control socket;
"process": the appliance's own process). Events written before the OS account was recorded (os_user NULL)
keep version 1: the array starts with 1 and ends at `details`. Nulling a version-2 event's OS account changes
its bytes, so it cannot be passed off as version 1. The standalone verifier in the evidence pack rebuilds
these bytes from the exported events the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from appliance.db.tables import audit_event

FORMAT_VERSION = 2
OUTCOMES = ("ok", "denied", "error")
# The canonical array's fields in order (the format above, not a query's choice): columns of `audit_event`.
V1_COLUMNS = ("seq", "event_id", "ts", "actor", "actor_role", "auth_method", "action", "object_type", "object_id",
              "object_sha256", "outcome", "reason", "correlation_id", "details")
COLUMNS = (*V1_COLUMNS, "os_user", "os_uid", "os_source")  # every stored column a leaf covers, in order
LEAF = tuple(audit_event.c[name] for name in COLUMNS)  # the same, to select: `select(*LEAF)` rows canonical() takes

# Keys that must never reach the audit trail: an event's details are evidence, not a secret store.
# Matched against the serialised details: a JSON key is a string followed by a colon.
_SECRET_KEY = re.compile(r'"(?:[^"\\]|\\.)*?(?:pass(?:word|phrase)|secret|token(?!_id)|private)(?:[^"\\]|\\.)*":',
                         re.IGNORECASE)
_SECRET_WORD = re.compile(r"pass|secret|token|private", re.IGNORECASE)  # cheap filter before the exact match


@dataclass(frozen=True)
class Event:
    action: str
    object_type: str
    object_id: str
    outcome: str = "ok"
    reason: str = ""
    object_sha256: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    details_json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"audit outcome must be one of {OUTCOMES}, not {self.outcome!r}")
        encoded = details_text(self.details)
        bad = _SECRET_KEY.findall(encoded) if _SECRET_WORD.search(encoded) else None
        if bad:
            raise ValueError(f"audit details must not carry secrets: {bad}")
        object.__setattr__(self, "details_json", encoded)


_DETAILS = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))
_ROW = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def details_text(details: dict[str, Any]) -> str:
    return _DETAILS.encode(details)


def canonical(row: tuple | list) -> bytes:
    """Canonical bytes of an event row in COLUMNS order (details already as text); a row whose os_user is
    NULL was written before OS accounts were recorded and keeps the version-1 form."""
    row = list(row)
    if len(row) > len(V1_COLUMNS) and row[len(V1_COLUMNS)] is not None:
        return _ROW.encode([FORMAT_VERSION, *row[:len(COLUMNS)]]).encode("utf-8")
    return _ROW.encode([1, *row[:len(V1_COLUMNS)]]).encode("utf-8")
