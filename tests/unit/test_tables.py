"""The declared tables (`db/tables.py`, what every query uses) against the schema the migrations make, on SQLite
and, in the postgres tier, on PostgreSQL."""

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    inspect,
)

from appliance.db import migrate
from appliance.db.tables import drift_check, metadata
from appliance.errors import InputError

pytestmark = pytest.mark.unit


def _kind(type_) -> tuple[str, int | None]:
    """A column type as both databases report it: its family (DOUBLE PRECISION reads back as REAL from SQLite)
    and its length."""
    family = next(cls for cls in (Boolean, BigInteger, Integer, Float, Text, String) if isinstance(type_, cls))
    return family.__name__, getattr(type_, "length", None)


def schema_differences(engine, declared: MetaData) -> list[str]:
    """Where the declared tables and the database's schema disagree: tables, columns, types, nullability, server
    defaults, primary keys, foreign keys and (PostgreSQL, which reports column-level ones) unique constraints."""
    inspector = inspect(engine)
    found = set(inspector.get_table_names())
    problems = [f"table {name}: {where}" for names, where in ((found - set(declared.tables), "not declared"),
                                                               (set(declared.tables) - found, "not migrated"))
                for name in sorted(names)]
    for table in declared.sorted_tables:
        if table.name not in found:
            continue
        pk = set(inspector.get_pk_constraint(table.name)["constrained_columns"])
        # SQLite reports a non-INTEGER primary key column as nullable: the key says what nullability would.
        stored = {c["name"]: (_kind(c["type"]), c["nullable"] and c["name"] not in pk, c["default"] is not None)
                  for c in inspector.get_columns(table.name)}
        wanted = {c.name: (_kind(c.type), c.nullable, c.server_default is not None) for c in table.columns}
        problems += [f"{table.name}.{name}: migrated {stored.get(name)}, declared {wanted.get(name)}"
                     for name in sorted(stored.keys() | wanted.keys()) if stored.get(name) != wanted.get(name)]
        if pk != {c.name for c in table.primary_key}:
            problems.append(f"{table.name}: primary key {sorted(pk)}, declared {[c.name for c in table.primary_key]}")
        stored_fks = {(tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                      for f in inspector.get_foreign_keys(table.name)}
        wanted_fks = {(tuple(c.name for c in f.columns), f.referred_table.name,
                       tuple(e.column.name for e in f.elements)) for f in table.foreign_key_constraints}
        if stored_fks != wanted_fks:
            problems.append(f"{table.name}: foreign keys {sorted(stored_fks)}, declared {sorted(wanted_fks)}")
        if engine.dialect.name == "postgresql":
            stored_unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)}
            wanted_unique = {(c.name,) for c in table.columns if c.unique} | {
                tuple(c.name for c in u.columns) for u in table.constraints if isinstance(u, UniqueConstraint)}
            if stored_unique != wanted_unique:
                problems.append(f"{table.name}: unique {sorted(stored_unique)}, declared {sorted(wanted_unique)}")
    return problems


def test_the_declared_tables_are_the_schema_the_migrations_make(engine):
    """db/tables.py, which every query uses, describes exactly what migrations.py creates, table by table."""
    migrate(engine)
    assert schema_differences(engine, metadata) == []


def test_a_declaration_that_drifts_from_the_migrations_is_named(engine):
    """The check itself: a missing column, a wrong type, a wrong nullability and an undeclared table are reported."""
    migrate(engine)
    drifted = MetaData()
    for table in metadata.sorted_tables:
        if table.name not in ("drift_check", "audit_node"):  # the first left undeclared, the second redeclared
            table.to_metadata(drifted)
    Table("audit_node", drifted, Column("level", Integer, primary_key=True),
          Column("idx", BigInteger, primary_key=True))
    checkpoint = drifted.tables["audit_checkpoint"]
    checkpoint.append_column(Column("root", Integer, nullable=False), replace_existing=True)
    Table("run_metric", drifted, Column("ts", String(32), nullable=True), extend_existing=True)
    assert sorted(schema_differences(engine, drifted)) == [
        "audit_checkpoint.root: migrated (('String', 64), False, False), declared (('Integer', None), False, False)",
        "audit_node.hash: migrated (('String', 64), False, False), declared None",
        "run_metric.ts: migrated (('String', 32), False, False), declared (('String', 32), True, False)",
        "table drift_check: not declared",
    ]


def test_each_store_reads_back_what_it_wrote_through_the_tables(ctx):
    """Every record the stores write through `db/tables.py` comes back as the same dataclass, ordered and filtered
    as each reader promises, on both databases."""
    from appliance.artifacts import registry
    from appliance.data import versions
    from appliance.data.canaries import Canary
    from appliance.db import session_scope
    from appliance.eval import drift
    from appliance.train import runs
    from tests.unit.test_database import _stored_eval, queued_run

    run = queued_run("tuned", "2026-01-01T00:00:00+00:00")
    v1 = versions.DatasetVersion(
        id="a" * 32, name="notes", version=1, digest="d" * 64, format="jsonl", records=2, train_records=1,
        eval_records=1, rejected=0, path="datasets/notes/v1", policy_digest="p" * 64, policy_strictness=3,
        created_at="2026-12-01T00:00:00+00:00", created_by="erin", lineage={"inputs": []},
        scrub_report={"entities_found": {}}, lint_report={}, rejects=[{"line": 3}])
    v2 = versions.DatasetVersion(**{**v1.__dict__, "id": "b" * 32, "version": 2, "digest": "e" * 64,
                                    "path": "datasets/notes/v2"})
    artifact = registry.Artifact(
        id="c" * 32, name="tuned", run_id=run.id, run_name=run.name, eval_id="e" * 32, status="packaged",
        path="artifacts/tuned", files={"adapter.gguf": "0" * 64}, manifest_digest="0" * 64, packaged_by="erin",
        packaged_at="2026-01-02T00:00:00+00:00", signed_by=None, signed_at=None, signing_key_id=None,
        decided_by=None, decided_at=None, decision_reason=None)
    point = drift.DriftCheck("f" * 32, "tuned", "e" * 32, "2026-01-03T00:00:00+00:00", "oscar", drift.DROP,
                             "format_match", 0.5, 0.75, None, 0.4, 0.05, "format_match fell 0.250")
    with session_scope(ctx.engine) as s:
        conn = s.connection()
        runs.insert(conn, run)
        for step in (1, 2, 3):
            runs.add_metric(conn, run.id, step, 2.0 / step, 1e-4, 100.0 * step)
        runs.drop_metrics_after(conn, run.id, 2)
        for v in (v2, v1):
            versions.insert(conn, v)
        versions.insert_canary(conn, v1.id, Canary("k2", "222-222-222", "code 222-222-222", 0, ()))
        versions.insert_canary(conn, v1.id, Canary("k1", "111-111-111", "code 111-111-111", 2, ("r1", "r2")))
    _stored_eval(ctx.engine, run, passed=True)
    with session_scope(ctx.engine) as s:
        registry.insert(s.connection(), artifact)
        s.connection().execute(insert(drift_check).values(point.as_dict()))

    assert runs.get_run(ctx.engine, "tuned") == run and runs.list_runs(ctx.engine, "queued") == [run]
    assert runs.list_runs(ctx.engine, "running") == [] and runs.name_taken(ctx.engine, "tuned")
    assert [(m["step"], m["loss"]) for m in runs.metrics(ctx.engine, run.id)] == [(1, 2.0), (2, 1.0)]
    assert versions.list_versions(ctx.engine) == [v1, v2]
    assert versions.get_version(ctx.engine, "notes") == v2 and versions.get_version(ctx.engine, "notes@v1") == v1
    assert versions.find_by_digest(ctx.engine, "notes", "d" * 64) == v1
    assert versions.find_by_digest(ctx.engine, "notes", "0" * 64) is None
    assert [(c["canary_id"], c["record_ids"]) for c in versions.canaries(ctx.engine, v1)] == [
        ("k1", ["r1", "r2"]), ("k2", [])]
    assert registry.get(ctx.engine, ctx.settings, "tuned") == artifact == registry.list_artifacts(ctx.engine)[0]
    with session_scope(ctx.engine) as s:  # a transition happens once: the second finds the status changed
        registry.update(s.connection(), artifact.id, "packaged", status="signed", signed_by="erin")
    with pytest.raises(InputError, match="changed state"), session_scope(ctx.engine) as s:
        registry.update(s.connection(), artifact.id, "packaged", status="signed", signed_by="mallory")
    assert registry.get(ctx.engine, ctx.settings, "tuned").signed_by == "erin"
    assert drift.history(ctx.engine) == drift.history(ctx.engine, "tuned") == [point]
    assert drift.history(ctx.engine, "other") == []
