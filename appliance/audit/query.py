"""Searching the audit trail."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from appliance.audit.events import COLUMNS
from appliance.errors import InputError


def search(engine, *, since: str | None = None, actor: str | None = None, action: str | None = None,
           limit: int = 200) -> list[dict]:
    clauses, params = [], {"limit": limit}
    if since:
        try:
            parsed = datetime.fromisoformat(since)
        except ValueError:
            raise InputError(f"{since!r}: not an ISO 8601 date or time", param="since") from None
        clauses.append("ts >= :since")
        params["since"] = parsed.isoformat() if parsed.tzinfo else parsed.isoformat() + "+00:00"
    if actor:
        clauses.append("actor = :actor")
        params["actor"] = actor
    if action:
        if action.endswith("*"):
            clauses.append("action LIKE :action ESCAPE '\\'")
            params["action"] = action[:-1].replace("%", r"\%").replace("_", r"\_") + "%"
        else:
            clauses.append("action = :action")
            params["action"] = action
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (f"SELECT * FROM (SELECT {', '.join(COLUMNS)} FROM audit_event {where} ORDER BY seq DESC LIMIT :limit) "
           "AS newest ORDER BY seq")
    with engine.connect() as conn:
        return [dict(zip(COLUMNS, row, strict=True)) for row in conn.execute(text(sql), params).all()]
