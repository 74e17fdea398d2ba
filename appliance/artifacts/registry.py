"""Artifact records: one row per packaged adapter, its files' digests, and where it stands
(packaged -> signed -> approved | rejected; approved -> revoked)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert as sql_insert
from sqlalchemy import select
from sqlalchemy import update as sql_update

from appliance.config import Settings
from appliance.db.tables import artifact as t
from appliance.errors import InputError, NotFound

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Artifact:
    id: str
    name: str
    run_id: str
    run_name: str
    eval_id: str
    status: str  # packaged, signed, approved, rejected, revoked
    path: str  # relative to the home
    files: dict  # relative path -> sha256, the signature excluded
    manifest_digest: str
    packaged_by: str
    packaged_at: str
    signed_by: str | None
    signed_at: str | None
    signing_key_id: str | None
    decided_by: str | None
    decided_at: str | None
    decision_reason: str | None

    def as_dict(self) -> dict:
        return {c.name: getattr(self, c.name) for c in t.c}

    def directory(self, settings: Settings) -> Path:
        """The artifact's folder, from its name (never from the `path` column, which only records it)."""
        return folder_of(settings, self.name)


def folder_of(settings: Settings, name: str) -> Path:
    if not NAME_RE.match(name):
        raise InputError(f"artifact name {name!r} is not one the appliance makes: the registry was altered")
    return settings.artifacts_dir / name


def _artifact(row) -> Artifact:
    values = dict(row._mapping)
    values["files"] = json.loads(values["files"])
    return Artifact(**values)


def insert(conn, artifact: Artifact) -> None:
    values = artifact.as_dict()
    values["files"] = json.dumps(values["files"], sort_keys=True)
    conn.execute(sql_insert(t).values(values))


def update(conn, artifact_id: str, expected_status: str, **fields) -> None:
    """Change a row only if it is still in the state the caller checked (one transition wins a race)."""
    result = conn.execute(sql_update(t).where(t.c.id == artifact_id, t.c.status == expected_status).values(**fields))
    if result.rowcount != 1:
        raise InputError(f"artifact changed state while this command ran (it was {expected_status}); try again")


def get(engine, settings: Settings, ref: str) -> Artifact:
    """An artifact by name, or by the path of its directory (a path holds a '/')."""
    name = ref
    candidate = Path(ref)
    if "/" in ref:
        resolved = candidate.resolve()
        root = settings.artifacts_dir.resolve()
        if resolved.parent != root:
            raise NotFound(f"{ref}: not an artifact directory of this appliance (they live in {root})")
        name = resolved.name
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.name == name)).first()
    if row is None:
        raise NotFound(f"no artifact named {name!r}", hint="artifacts.list")
    return _artifact(row)


def list_artifacts(engine) -> list[Artifact]:
    with engine.connect() as conn:
        return [_artifact(r) for r in conn.execute(select(t).order_by(t.c.packaged_at, t.c.name)).all()]


def name_taken(engine, name: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(t.c.id).where(t.c.name == name)).first() is not None
