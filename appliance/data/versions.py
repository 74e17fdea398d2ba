"""Dataset versions: immutable, content-addressed, stored as Parquet (Hugging Face `datasets`) under
APPLIANCE_HOME/datasets/NAME/vN with a manifest; recorded in the database with lineage and reports."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy import insert as sql_insert

from appliance.config import Settings
from appliance.db.tables import dataset_canary
from appliance.db.tables import dataset_version as t
from appliance.errors import InputError, NotFound

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_JSON = ("lineage", "scrub_report", "lint_report", "rejects")


@dataclass(frozen=True)
class DatasetVersion:
    id: str
    name: str
    version: int
    digest: str
    format: str
    records: int
    train_records: int
    eval_records: int
    rejected: int
    path: str  # relative to the home
    policy_digest: str
    policy_strictness: int
    created_at: str
    created_by: str
    lineage: dict
    scrub_report: dict
    lint_report: dict
    rejects: list

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    def as_dict(self, full: bool = True) -> dict:
        data = {c.name: getattr(self, c.name) for c in t.c}
        data["ref"] = self.ref
        if not full:
            for k in _JSON:
                data.pop(k)
        return data


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InputError(f"dataset name {name!r}: use 1-64 lowercase letters, digits, '.', '_' or '-'")
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """NAME or NAME@vN."""
    m = re.match(r"^([a-z0-9][a-z0-9._-]{0,63})(?:@v(\d+))?$", ref)
    if not m:
        raise InputError(f"dataset {ref!r}: expected NAME or NAME@vN")
    return m.group(1), int(m.group(2)) if m.group(2) else None


def _row(row) -> DatasetVersion:
    values = dict(row._mapping)
    for k in _JSON:
        values[k] = json.loads(values[k])
    return DatasetVersion(**values)


def get_version(engine, ref: str) -> DatasetVersion:
    name, version = parse_ref(ref)
    query = select(t).where(t.c.name == name)
    query = query.where(t.c.version == version) if version else query.order_by(t.c.version.desc()).limit(1)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no dataset {ref!r}; see `appliance data list`")
    return _row(row)


def list_versions(engine) -> list[DatasetVersion]:
    with engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.name, t.c.version)).all()
    return [_row(r) for r in rows]


def next_version(conn, name: str) -> int:
    return int(conn.execute(select(func.coalesce(func.max(t.c.version), 0)).where(t.c.name == name)).scalar()) + 1


def path_of(conn, version_id: str) -> str | None:
    """Where a recorded version lives (relative to the home); None when no version has that id."""
    return conn.execute(select(t.c.path).where(t.c.id == version_id)).scalar()


def find_by_digest(engine, name: str, digest: str) -> DatasetVersion | None:
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.name == name, t.c.digest == digest)).first()
    return _row(row) if row else None


def insert(conn, v: DatasetVersion) -> None:
    values = v.as_dict()
    values.pop("ref")
    for k in _JSON:
        values[k] = json.dumps(values[k], sort_keys=True)
    conn.execute(sql_insert(t).values(values))


def insert_canary(conn, dataset_id: str, canary) -> None:
    """Record a canary (`canaries.Canary`) planted in a version's records."""
    conn.execute(sql_insert(dataset_canary).values(
        dataset_id=dataset_id, canary_id=canary.canary_id, secret=canary.secret, sentence=canary.sentence,
        repetitions=canary.repetitions, record_ids=json.dumps(list(canary.record_ids))))


def content_digest(split_records: list[tuple[str, dict]]) -> str:
    """sha256 over canonical records (sorted keys, compact JSON, one per line, with their split)."""
    h = hashlib.sha256()
    for split, record in split_records:
        h.update(json.dumps([split, record], sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


def write_split(path: Path, records: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path)


def read_split(settings: Settings, v: DatasetVersion, split: str) -> list[dict]:
    import pyarrow.parquet as pq

    path = settings.home / v.path / f"{split}.parquet"
    if not path.is_file():
        return []
    return pq.read_table(path).to_pylist()


SPLITS = ("all", "train", "eval")


def export_jsonl(ctx, ref: str, out, split: str = "all") -> dict:
    """Write the scrubbed records of NAME[@vN] to `out` (a path or a `userfiles.OutputFile`) as JSONL, in their
    input schema; returns what was written. A `data.export` audit event names the version, the split, the
    record count and the sha256 of the bytes written, and the file by its base name only; the file appears only
    once that event is recorded."""
    from appliance.audit.events import Event
    from appliance.audit.log import record_alone
    from appliance.identity.roles import require
    from appliance.userfiles import as_output

    if split not in SPLITS:
        raise InputError(f"split {split!r}: one of {', '.join(SPLITS)}", param="split")
    require(ctx, "read", "dataset", ref)
    v = get_version(ctx.engine, ref)
    rows = []
    for name in (("train", "eval") if split == "all" else (split,)):
        rows += read_split(ctx.settings, v, name)
    body = "".join(json.dumps({k: val for k, val in r.items() if k != "id"}, ensure_ascii=False) + "\n"
                   for r in rows).encode("utf-8")
    target = as_output(out)
    summary = {"ref": v.ref, "split": split, "records": len(rows), "bytes": len(body),
               "sha256": hashlib.sha256(body).hexdigest(), "file": target.basename}
    with target.open() as fh:
        fh.write(body)
        record_alone(ctx, Event("data.export", "dataset", v.ref, object_sha256=v.digest, details={
            k: summary[k] for k in ("split", "records", "bytes", "sha256", "file")}))
    return summary


def canaries(engine, v: DatasetVersion) -> list[dict]:
    with engine.connect() as conn:
        c = dataset_canary.c
        rows = conn.execute(select(c.canary_id, c.secret, c.sentence, c.repetitions, c.record_ids)
                            .where(c.dataset_id == v.id).order_by(c.canary_id)).all()
    return [{**r._mapping, "record_ids": json.loads(r.record_ids)} for r in rows]
