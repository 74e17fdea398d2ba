"""Failed authentication at the gateway, counted per source address and written as one audit event per source
per minute (`serve.auth_failed`, with the count, the first and last time and the last reason), so a client
hammering the gateway with bad tokens cannot flood the audit trail and is still on the record."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from appliance.audit.events import Event
from appliance.context import Actor

ANONYMOUS = Actor("anonymous", "none", "token")
MAX_SOURCES = 10_000  # beyond, further sources are counted together as "other"


@dataclass
class _Count:
    count: int
    first: float
    last: float
    reason: str


class AuthFailures:
    def __init__(self, audit, window: float = 60.0) -> None:
        self.audit, self.window = audit, window
        self.counts: dict[str, _Count] = {}

    def note(self, source: str, reason: str) -> None:
        now = time.time()
        if source not in self.counts and len(self.counts) >= MAX_SOURCES:
            source = "other"
        entry = self.counts.get(source)
        if entry is None:
            self.counts[source] = _Count(1, now, now, reason)
        else:
            entry.count, entry.last, entry.reason = entry.count + 1, now, reason

    def flush(self) -> int:
        counts, self.counts = self.counts, {}
        for source, c in counts.items():
            self.audit.put(ANONYMOUS, Event(
                "serve.auth_failed", "source", source, outcome="denied",
                reason=f"{c.count} request{'s' if c.count != 1 else ''} with no valid token: {c.reason}",
                details={"count": c.count, "first": round(c.first, 3), "last": round(c.last, 3)}))
        return len(counts)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.window)
            self.flush()
