"""Artifact records: one row per packaged adapter, its files' digests, and where it stands
(packaged -> signed -> approved | rejected; approved -> revoked)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from appliance.config import Settings
from appliance.errors import InputError, NotFound

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_COLUMNS = ("id", "name", "run_id", "run_name", "eval_id", "status", "path", "files", "manifest_digest",
            "packaged_by", "packaged_at", "signed_by", "signed_at", "signing_key_id", "decided_by", "decided_at",
            "decision_reason")


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
        return {k: getattr(self, k) for k in _COLUMNS}

    def directory(self, settings: Settings) -> Path:
        return settings.home / self.path


def _artifact(row) -> Artifact:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["files"] = json.loads(values["files"])
    return Artifact(**values)


def insert(conn, artifact: Artifact) -> None:
    values = artifact.as_dict()
    values["files"] = json.dumps(values["files"], sort_keys=True)
    conn.execute(text(f"INSERT INTO artifact ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"),
                 values)


def update(conn, artifact_id: str, expected_status: str, **fields) -> None:
    """Change a row only if it is still in the state the caller checked (one transition wins a race)."""
    sets = ", ".join(f"{k} = :{k}" for k in fields)
    result = conn.execute(text(f"UPDATE artifact SET {sets} WHERE id = :id AND status = :expected"),
                          {**fields, "id": artifact_id, "expected": expected_status})
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
        row = conn.execute(text(f"SELECT {', '.join(_COLUMNS)} FROM artifact WHERE name = :n"), {"n": name}).first()
    if row is None:
        raise NotFound(f"no artifact named {name!r}", hint="artifacts.list")
    return _artifact(row)


def list_artifacts(engine) -> list[Artifact]:
    with engine.connect() as conn:
        return [_artifact(r) for r in conn.execute(text(
            f"SELECT {', '.join(_COLUMNS)} FROM artifact ORDER BY packaged_at, name")).all()]


def name_taken(engine, name: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM artifact WHERE name = :n"), {"n": name}).first() is not None
