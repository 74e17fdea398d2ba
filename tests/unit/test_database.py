"""The database suite; every test runs on SQLite and, in the postgres tier, on PostgreSQL."""


import pytest
import sqlalchemy
from sqlalchemy import func, insert, select

from appliance.config import load_settings
from appliance.context import Context
from appliance.db import connect, migrate, migrations, require_current, session_scope
from appliance.db.tables import audit_event, base_model, model_file, schema_migrations
from appliance.errors import AlreadyExists, InputError, StorageError
from appliance.models import registry
from tests.conftest import enrolled, personal_keys
from tests.helpers import write_gguf, write_hf_folder

pytestmark = pytest.mark.unit


def test_fresh_database_is_not_initialised(engine):
    with pytest.raises(StorageError, match="not initialised here: run `appliance init`"):
        require_current(engine)


def test_migrations_apply_once_and_are_recorded(engine):
    assert migrate(engine) == [m.number for m in migrations.MIGRATIONS]
    assert migrate(engine) == []
    require_current(engine)
    applied = migrations.applied_migrations(engine)
    assert applied == {m.number: m.checksum for m in migrations.MIGRATIONS}


def test_an_edited_old_migration_is_detected(engine, monkeypatch):
    migrate(engine)
    first = migrations.MIGRATIONS[0]
    edited = migrations.Migration(first.number, first.name, (*first.statements, "SELECT 1"))
    monkeypatch.setattr(migrations, "MIGRATIONS", (edited, *migrations.MIGRATIONS[1:]))
    with pytest.raises(StorageError, match="migrations are append-only"):
        require_current(engine)


def test_a_database_from_a_newer_version_is_refused(engine):
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(insert(schema_migrations).values(number=999, name="future", checksum="x", applied_at="now"))
    with pytest.raises(StorageError, match="written by a newer version"):
        migrate(engine)


def test_pending_migration_is_reported(engine, monkeypatch):
    migrate(engine)
    extra = migrations.Migration(len(migrations.MIGRATIONS) + 1, "later", ("CREATE TABLE later_t (x INTEGER)",))
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, extra))
    with pytest.raises(StorageError, match="run `appliance init` to migrate"):
        require_current(engine)
    assert migrate(engine) == [extra.number]
    require_current(engine)


def test_a_run_recorded_before_migration_10_names_its_framework_after_it(engine, monkeypatch):
    """Migration 10 renames training_run's engine columns: what an older version stored reads back as the run's
    training framework."""
    from sqlalchemy import column, table

    from appliance.train import runs

    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:9])
    migrate(engine)
    run = queued_run("older", "2026-01-01T00:00:00+00:00")
    stored = {**runs.Run.as_dict(run), "recipe": "{}", "environment": "{}"}
    stored["engine"], stored["engine_reason"] = stored.pop("framework"), stored.pop("framework_reason")
    before = table("training_run", *(column(name) for name in stored))  # the table as migration 9 left it
    with engine.begin() as conn:
        conn.execute(insert(before).values(stored))
    monkeypatch.undo()
    assert migrate(engine)[0] == 10
    assert runs.get_run(engine, "older") == run and (run.framework, run.framework_reason) == ("trl", "measured")


def test_foreign_keys_are_enforced(engine):
    migrate(engine)
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        with session_scope(engine) as s:
            s.execute(insert(model_file).values(model_id="nope", relpath="x", sha256="0" * 64, size=1))


def test_importing_a_folder_records_every_file(settings, engine, ctx, tmp_path):
    result = registry.import_path(ctx, write_hf_folder(tmp_path / "src"), "tiny")
    assert result.created
    model, files = registry.get_model(engine, "tiny")
    assert model.hf_dir == "hf" and model.gguf_file == "gguf/model-Q8_0.gguf"  # llama.cpp's, for serving
    assert [f.relpath for f in files] == ["gguf/model-Q8_0.gguf", "hf/config.json", "hf/model.safetensors",
                                          "hf/tokenizer.model", "hf/tokenizer_config.json"]
    assert registry.verify_model(settings, model, files) == []
    e = audit_event.c
    with engine.connect() as conn:
        event = conn.execute(select(e.action, e.object_id, e.object_sha256, e.outcome)
                             .where(e.action == "model.import")).one()
    assert tuple(event) == ("model.import", "tiny", model.digest, "ok")
    assert (settings.models_dir / "tiny" / "hf" / "model.safetensors").stat().st_mode & 0o777 == 0o600


def test_reimport_of_the_same_model_is_a_no_op(settings, engine, ctx, tmp_path):
    src = write_gguf(tmp_path / "src.gguf")
    first = registry.import_path(ctx, src, "tiny")
    again = registry.import_path(ctx, src, "tiny")
    assert not again.created and again.model.id == first.model.id
    assert len(registry.list_models(engine)) == 1


def test_a_different_model_under_a_taken_name_is_refused(settings, engine, ctx, tmp_path):
    registry.import_path(ctx, write_gguf(tmp_path / "a.gguf", tensors=2), "tiny")
    with pytest.raises(AlreadyExists, match="choose another") as refused:
        registry.import_path(ctx, write_gguf(tmp_path / "b.gguf", tensors=3), "tiny")
    assert refused.value.param == "name"


def test_gguf_import_records_architecture(settings, engine, ctx, tmp_path):
    model = registry.import_path(ctx, write_gguf(tmp_path / "Tiny_Model.gguf")).model
    assert (model.name, model.architecture, model.gguf_file) == ("tiny_model", "llama", "gguf/Tiny_Model.gguf")


def _left_behind(settings):
    staged = list(settings.tmp_dir.iterdir()) if settings.tmp_dir.exists() else []
    stored = list(settings.models_dir.iterdir()) if settings.models_dir.exists() else []
    return staged + stored


def test_refused_import_leaves_nothing(settings, engine, ctx, tmp_path):
    src = write_hf_folder(tmp_path / "src")
    (src / "pytorch_model.bin").write_bytes(b"\x80")
    with pytest.raises(InputError):
        registry.import_path(ctx, src, "tiny")
    assert _left_behind(settings) == []
    assert registry.list_models(engine) == []


def test_failure_while_writing_the_model_leaves_nothing(settings, engine, ctx, tmp_path):
    """The tiny GGUF has no tokenizer, so the safetensors conversion fails after the copy began."""
    with pytest.raises(InputError, match="transformers cannot convert this GGUF"):
        registry.import_path(ctx, write_gguf(tmp_path / "t.gguf"), "tiny", hf_copy=True)
    assert _left_behind(settings) == []
    with engine.connect() as conn:
        assert conn.execute(select(base_model)).all() == []
        assert conn.execute(select(func.count()).where(audit_event.c.action == "model.import")).scalar() == 0


def test_model_verification_reports_missing_modified_and_unexpected_files(settings, engine, ctx, tmp_path):
    registry.import_path(ctx, write_hf_folder(tmp_path / "src"), "tiny")
    model, files = registry.get_model(engine, "tiny")
    root = settings.models_dir / "tiny" / "hf"
    (root / "tokenizer.model").unlink()
    with open(root / "model.safetensors", "r+b") as fh:
        fh.seek(-1, 2)
        fh.write(b"\x00" if fh.read(1) != b"\x00" else b"\x01")
    (root / "extra.txt").write_text("x")
    problems = {(p.relpath, p.problem) for p in registry.verify_model(settings, model, files)}
    assert problems == {("hf/tokenizer.model", "missing"), ("hf/model.safetensors", "modified"),
                        ("hf/extra.txt", "unexpected")}


def test_sqlite_runs_in_wal_mode_with_foreign_keys(home):
    home.mkdir()
    engine = connect(load_settings(), create=True)
    with engine.connect() as conn:  # SQLite's own settings: PRAGMAs, driver level
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def queued_run(name: str, created_at: str):
    from appliance.train import runs

    return runs.Run(id=name.ljust(32, "0"), name=name, status="queued", method="sft", framework="trl",
                    framework_reason="measured", recipe_file="r.yaml", recipe_digest="0" * 64, recipe={},
                    base_model="m", base_digest="0" * 64,
                    dataset_ref="d@v1", dataset_digest="0" * 64, seed=0, max_steps=2, steps_done=0, final_loss=None,
                    path=f"runs/{name}", environment={}, error=None, created_by="erin", created_at=created_at,
                    started_at=None, finished_at=None)


def test_workers_claim_queued_runs_oldest_first_and_never_twice(settings, ctx):
    from concurrent.futures import ThreadPoolExecutor

    from appliance.train import runs

    with session_scope(ctx.engine) as s:
        for i, name in enumerate(["c", "a", "b", "d", "e", "f"]):
            runs.insert(s.connection(), queued_run(name, f"2026-01-01T00:00:0{i}+00:00"))
        runs.update(s.connection(), "f".ljust(32, "0"), status="failed")
    first = runs.claim_next(ctx.engine, "host/1/1.00")
    assert first.name == "c" and first.status == "running" and first.started_at
    assert first.lease_owner == "host/1/1.00" and first.heartbeat_at == first.started_at
    engines = [connect(settings) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        claimed = list(pool.map(lambda i: runs.claim_next(engines[i], f"host/{i + 2}/1.00"), range(4)))
    names = sorted(r.name for r in claimed if r is not None)
    assert names == ["a", "b", "d", "e"]  # each queued run went to exactly one worker; the failed one to none
    assert sorted(r.lease_owner for r in claimed) == [f"host/{i + 2}/1.00" for i in range(4)]
    assert runs.claim_next(ctx.engine, "host/1/1.00") is None


def _stored_eval(engine, run, passed: bool) -> None:
    from appliance.eval import store
    from appliance.eval.result import EvalResult

    gates = [{"gate": "task_improvement", "status": "pass" if passed else "fail"}]
    evaluation = EvalResult("e" * 32, run.id, run.name, "2026-01-01T00:00:00+00:00", "erin", "0" * 64, "0" * 64,
                            "0" * 64, None, passed, {"gates": gates}, f"runs/{run.name}/eval/x/report.md", None, None,
                            None)
    with session_scope(engine) as s:
        store.insert(s.connection(), evaluation)
    assert store.get_result(engine, "e" * 32) == evaluation  # stored and read back as it was


def test_only_an_officer_overrides_a_failed_gate_with_a_reason_and_it_is_audited(settings, ctx):
    from appliance.context import Actor
    from appliance.errors import PermissionDenied
    from appliance.eval import override, store
    from appliance.train import runs

    run = queued_run("tuned", "2026-01-01T00:00:00+00:00")
    with session_scope(ctx.engine) as s:
        runs.insert(s.connection(), run)
    _stored_eval(ctx.engine, run, passed=False)
    engineer = ctx.acting_as(Actor("erin", "engineer", "session"))
    officer = ctx.acting_as(Actor("oscar", "officer", "session"))
    with pytest.raises(PermissionDenied):
        override.override(engineer, "tuned", "the engineer wants it out")
    with pytest.raises(InputError, match="at least 10 characters"):
        override.override(officer, "tuned", "ok")
    assert store.latest(ctx.engine, "tuned").releasable is False
    reason = "format gate waived for the pilot; reviewed with the owner"
    with pytest.raises(PermissionDenied, match="signed with your own personal key"):
        override.override(officer, "tuned", reason)  # the console's context: no personal key to sign with
    keys = settings.home.parent / "oscar-keys"
    enrolled(officer, keys)
    done = override.override(personal_keys(officer, keys, "evals", "override", "tuned", "--reason", reason), "tuned",
                             reason)
    assert done.releasable and not done.passed and done.override_by == "oscar"
    e = audit_event.c
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(e.actor, e.action, e.outcome, e.reason).where(e.action.like("eval%"))
                            .order_by(e.seq)).all()
    assert [tuple(r) for r in rows] == [
        ("erin", "eval.override", "denied", "role engineer lacks permission eval.override"),
        ("oscar", "eval.override", "denied", "override is signed with your own personal key, in your own "
                                             "`appliance` process: run the command from your terminal (the console "
                                             "prepares it)"),
        ("oscar", "eval.override", "ok", reason)]


def test_a_failed_gate_blocks_signing_and_the_refusal_is_audited(settings, ctx):
    from appliance.artifacts import registry, signing
    from appliance.context import Actor
    from appliance.errors import PolicyViolation
    from appliance.train import runs

    run = queued_run("gated", "2026-01-01T00:00:00+00:00")
    with session_scope(ctx.engine) as s:
        runs.insert(s.connection(), run)
    _stored_eval(ctx.engine, run, passed=False)
    artifact = registry.Artifact(
        id="a" * 32, name="gated", run_id=run.id, run_name="gated", eval_id="e" * 32, status="packaged",
        path="artifacts/gated", files={}, manifest_digest="0" * 64, packaged_by="erin",
        packaged_at="2026-01-01T00:00:00+00:00", signed_by=None, signed_at=None, signing_key_id=None,
        decided_by=None, decided_at=None, decision_reason=None)
    with session_scope(ctx.engine) as s:
        registry.insert(s.connection(), artifact)
    engineer = ctx.acting_as(Actor("erin", "engineer", "session"))
    with pytest.raises(PolicyViolation, match=r"failed release gates \(task_improvement\)"):
        signing.sign(engineer, "gated")
    assert registry.get(ctx.engine, settings, "gated").status == "packaged"
    e = audit_event.c
    with ctx.engine.connect() as conn:
        row = conn.execute(select(e.actor, e.outcome).where(e.action == "artifact.sign")).one()
    assert tuple(row) == ("erin", "denied")


def test_an_ingest_interrupted_between_its_commit_and_its_rename_is_finished_at_the_next(staff):
    """Dataset files are written before the transaction and renamed into place after its commit: a stage whose
    version committed is renamed by the next ingest's recovery; one whose transaction never committed is removed
    once stale (a fresh one may be another ingest's, under way)."""
    import os
    import time

    from appliance.data import versions
    from appliance.data.ingest import recover_staged

    settings = load_settings()
    ctx = Context(settings, connect(settings))
    tmp = settings.tmp_dir
    tmp.mkdir(exist_ok=True)
    committed, stale, fresh = (tmp / f".ingest-{name}" for name in ("a" * 32, "b" * 32, "c" * 32))
    for stage in (committed, stale, fresh):
        stage.mkdir()
        (stage / "train.parquet").write_bytes(b"rows")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    with session_scope(ctx.engine) as s:
        versions.insert(s.connection(), versions.DatasetVersion(
            id="a" * 32, name="notes", version=1, digest="d" * 64, format="jsonl", records=1, train_records=1,
            eval_records=0, rejected=0, path="datasets/notes/v1", policy_digest="p" * 64, policy_strictness=3,
            created_at="2026-12-01T00:00:00+00:00", created_by="erin", lineage={}, scrub_report={}, lint_report={},
            rejects=[]))
    done = recover_staged(ctx)
    assert sorted(done) == ["finished datasets/notes/v1", f"removed {stale.name}"]
    assert (settings.home / "datasets" / "notes" / "v1" / "train.parquet").read_bytes() == b"rows"
    assert not committed.exists() and not stale.exists() and fresh.exists()


def test_the_recorded_advice_is_each_dataset_versions_newest_verdict_and_needs_read_access(ctx):
    """`appliance evals advice` and the console's Evaluations page read `advise`'s verdicts from the audit trail."""
    from appliance.audit.events import Event
    from appliance.audit.log import record_alone
    from appliance.context import Actor
    from appliance.errors import PermissionDenied
    from appliance.eval.advise import recorded

    erin = Actor("erin", "engineer", "password")
    for ref, rec, zero in (("tickets@v1", "prompting", 0.9), ("helpdesk@v1", "retrieval", 0.1),
                           ("helpdesk@v1", "fine-tuning", 0.05)):
        record_alone(ctx, Event("eval.advise", "dataset", ref, details={
            "recommendation": rec, "metric": "format_match", "zero_shot": zero, "few_shot": 0.5,
            "facts_share": 0.1, "base_model": "smollm2", "reason": f"because {rec}"}), erin)
    record_alone(ctx, Event("eval.advise", "dataset", "helpdesk@v1", outcome="denied", reason="not allowed"), erin)
    found = recorded(ctx.acting_as(erin))
    assert [(a.dataset, a.recommendation, a.zero_shot, a.by) for a in found] == [
        ("helpdesk@v1", "fine-tuning", 0.05, "erin"), ("tickets@v1", "prompting", 0.9, "erin")]
    with pytest.raises(PermissionDenied):
        recorded(ctx.acting_as(Actor("uma", "user", "password")))
