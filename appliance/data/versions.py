"""Dataset versions: immutable, content-addressed, stored as Parquet (Hugging Face `datasets`) under
APPLIANCE_HOME/datasets/NAME/vN with a manifest; recorded in the database with lineage and reports."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from appliance.config import Settings
from appliance.errors import InputError, NotFound

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_COLUMNS = ("id", "name", "version", "digest", "format", "records", "train_records", "eval_records", "rejected",
            "path", "policy_digest", "policy_strictness", "created_at", "created_by", "lineage", "scrub_report",
            "lint_report", "rejects")
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
        data = {k: getattr(self, k) for k in _COLUMNS}
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
    values = dict(zip(_COLUMNS, row, strict=True))
    for k in _JSON:
        values[k] = json.loads(values[k])
    return DatasetVersion(**values)


def get_version(engine, ref: str) -> DatasetVersion:
    name, version = parse_ref(ref)
    sql = f"SELECT {', '.join(_COLUMNS)} FROM dataset_version WHERE name = :n"
    sql += " AND version = :v" if version else " ORDER BY version DESC LIMIT 1"
    with engine.connect() as conn:
        row = conn.execute(text(sql), {"n": name, "v": version}).first()
    if row is None:
        raise NotFound(f"no dataset {ref!r}; see `appliance data list`")
    return _row(row)


def list_versions(engine) -> list[DatasetVersion]:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT {', '.join(_COLUMNS)} FROM dataset_version ORDER BY name, version")).all()
    return [_row(r) for r in rows]


def next_version(conn, name: str) -> int:
    return int(conn.execute(text("SELECT COALESCE(MAX(version), 0) FROM dataset_version WHERE name = :n"),
                            {"n": name}).scalar()) + 1


def find_by_digest(engine, name: str, digest: str) -> DatasetVersion | None:
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT {', '.join(_COLUMNS)} FROM dataset_version WHERE name = :n AND digest = :d"),
                           {"n": name, "d": digest}).first()
    return _row(row) if row else None


def insert(conn, v: DatasetVersion) -> None:
    values = v.as_dict()
    values.pop("ref")
    for k in _JSON:
        values[k] = json.dumps(values[k], sort_keys=True)
    conn.execute(text(f"INSERT INTO dataset_version ({', '.join(_COLUMNS)}) VALUES "
                      f"({', '.join(':' + c for c in _COLUMNS)})"), values)


def content_digest(split_records: list[tuple[str, dict]]) -> str:
    """sha256 over canonical records (sorted keys, compact JSON, one per line, with their split)."""
    h = hashlib.sha256()
    for split, record in split_records:
        h.update(json.dumps([split, record], sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


def write_split(path: Path, records: list[dict]) -> None:
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    Dataset.from_list(records).to_parquet(str(path))


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
        rows = conn.execute(text("SELECT canary_id, secret, sentence, repetitions, record_ids FROM dataset_canary "
                                 "WHERE dataset_id = :d ORDER BY canary_id"), {"d": v.id}).all()
    return [{"canary_id": r[0], "secret": r[1], "sentence": r[2], "repetitions": r[3],
             "record_ids": json.loads(r[4])} for r in rows]
