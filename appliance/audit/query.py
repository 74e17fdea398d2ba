"""Searching the audit trail."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from appliance.audit.events import LEAF
from appliance.db.tables import audit_event as t
from appliance.errors import InputError


def search(engine, *, since: str | None = None, actor: str | None = None, action: str | None = None,
           limit: int = 200) -> list[dict]:
    """The newest `limit` events that match, oldest first."""
    clauses = []
    if since:
        try:
            parsed = datetime.fromisoformat(since)
        except ValueError:
            raise InputError(f"{since!r}: not an ISO 8601 date or time", param="since") from None
        clauses.append(t.c.ts >= (parsed.isoformat() if parsed.tzinfo else parsed.isoformat() + "+00:00"))
    if actor:
        clauses.append(t.c.actor == actor)
    if action:
        if action.endswith("*"):
            clauses.append(t.c.action.like(action[:-1].replace("%", r"\%").replace("_", r"\_") + "%", escape="\\"))
        else:
            clauses.append(t.c.action == action)
    newest = select(*LEAF).where(*clauses).order_by(t.c.seq.desc()).limit(limit).subquery("newest")
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(select(newest).order_by(newest.c.seq)).all()]
