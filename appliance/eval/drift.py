"""`appliance eval --scheduled`: every approved (served) adapter is verified, then re-run on the frozen sets it
was released on (its dataset version's held-out split and the shipped general suite) and compared with the
numbers of the evaluation it was approved on. Each check is one stored point of a time series and one audit
event; a fall beyond the release policy's `drift.max_drop`, or an artifact that no longer verifies, is an
`eval.drift` event and shows in `appliance doctor`."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import insert, select

from appliance.artifacts import registry
from appliance.audit.events import Event
from appliance.audit.log import record
from appliance.context import Context
from appliance.db import session_scope
from appliance.db.tables import drift_check as t
from appliance.digests import sha256_file
from appliance.eval import run as evaluation
from appliance.eval import store
from appliance.eval.lm import AdapterLM
from appliance.identity.roles import require
from appliance.train import runs
from appliance.train.recipe import Recipe

OK, DROP, UNVERIFIABLE = "ok", "drop", "unverifiable"


@dataclass(frozen=True)
class DriftCheck:
    id: str
    artifact: str
    eval_id: str  # the evaluation the artifact was approved on: the baseline
    checked_at: str
    checked_by: str
    status: str  # ok, drop, unverifiable
    task_metric: str | None
    task_value: float | None
    task_baseline: float | None
    suite_value: float | None
    suite_baseline: float | None
    max_drop: float
    detail: str

    def as_dict(self) -> dict:
        return {c.name: getattr(self, c.name) for c in t.c}

    @property
    def drops(self) -> dict[str, float]:
        return _drops(self.task_value, self.task_baseline, self.suite_value, self.suite_baseline)


def _drops(task: float | None, task_baseline: float, suite: float | None, suite_baseline: float) -> dict[str, float]:
    """How far each measured value fell below its baseline (negative: it rose); unmeasured ones are left out."""
    out = {}
    if task is not None:
        out["task"] = task_baseline - task
    if suite is not None:
        out["suite"] = suite_baseline - suite
    return out


def _measure(ctx: Context, artifact: registry.Artifact, say) -> dict:
    run = runs.get_run(ctx.engine, artifact.run_name)
    _, rows = evaluation.held_out_rows(ctx, run)
    recipe = Recipe.model_validate(run.recipe)
    pattern = re.compile(recipe.format_regex) if recipe.format_regex else None
    lm = AdapterLM(evaluation.base_model_dir(ctx, run), artifact.directory(ctx.settings) / "adapter")
    task = evaluation._task(lm, rows, pattern, say, sides=("adapter",))
    suite = evaluation._suite(lm, say, sides=("adapter",))
    return {"task_metric": task["primary"], "task_value": task["adapter"][task["primary"]],
            "suite_value": suite["adapter"]["accuracy"], "suite_digest": suite["digest"]}


def check(ctx: Context, artifact: registry.Artifact, max_drop: float, say=lambda _: None) -> DriftCheck:
    """Verify and re-measure one approved artifact; store the point and its audit event in one transaction."""
    from appliance.artifacts.signing import verify

    baseline = store.get_result(ctx.engine, artifact.eval_id).result
    task_metric = baseline["task"]["primary"]
    task_baseline = baseline["task"]["adapter"][task_metric]
    suite_baseline = baseline["suite"]["adapter"]["accuracy"]
    values = {"task_metric": task_metric, "task_value": None, "suite_value": None}
    verified = verify(ctx, artifact.name)
    if not verified.ok:
        status = UNVERIFIABLE
        detail = "; ".join(f"{c['check']}: {c['detail']}" for c in verified.checks if not c["ok"])
    else:
        say(f"{artifact.name}: verified; re-running its frozen sets")
        values = _measure(ctx, artifact, say)
        notes = []
        if values.pop("suite_digest") != baseline["suite"]["digest"]:
            values["suite_value"] = None  # another suite than the release's: not comparable
            notes.append("the general suite differs from the one it was released on; suite not compared")
        drops = _drops(values["task_value"], task_baseline, values["suite_value"], suite_baseline)
        fallen = {k: v for k, v in drops.items() if v > max_drop}
        status = DROP if fallen else OK
        notes += [f"{k} fell {v:.3f} (more than {max_drop})" for k, v in fallen.items()]
        detail = "; ".join(notes) or "within the policy's max_drop " + str(max_drop)
    point = DriftCheck(uuid.uuid4().hex, artifact.name, artifact.eval_id, runs.now(), ctx.actor.user, status,
                       task_metric, values["task_value"], task_baseline, values["suite_value"], suite_baseline,
                       max_drop, detail)
    with session_scope(ctx.engine) as s:
        s.connection().execute(insert(t).values(point.as_dict()))
        record(ctx, s, Event("eval.scheduled" if status == OK else "eval.drift", "artifact", artifact.name,
                             object_sha256=artifact.manifest_digest, reason="" if status == OK else detail,
                             details={"check_id": point.id, "status": status, "drops": point.drops}))
    return point


def scheduled(ctx: Context, *, say=lambda _: None) -> list[DriftCheck]:
    """Check every approved artifact, oldest first, against the installed release policy's drift limit; the
    time series grows by one point per artifact."""
    from appliance import policies

    require(ctx, "eval.scheduled", "artifact", "*")
    policy = policies.load(ctx, "release").policy
    approved = [a for a in registry.list_artifacts(ctx.engine) if a.status == "approved"]
    say(f"{len(approved)} approved adapter(s); suite {sha256_file(evaluation.SUITE)[:12]}, "
        f"max_drop {policy.drift.max_drop}")
    return [check(ctx, a, policy.drift.max_drop, say) for a in approved]


def _check(row) -> DriftCheck:
    return DriftCheck(**row._mapping)


def history(engine, artifact: str | None = None) -> list[DriftCheck]:
    query = select(t).order_by(t.c.checked_at, t.c.id)
    if artifact:
        query = query.where(t.c.artifact == artifact)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [_check(r) for r in rows]


def latest_per_artifact(engine, names: list[str]) -> dict[str, DriftCheck]:
    """The newest point of each of the named artifacts that has one."""
    return {c.artifact: c for c in history(engine) if c.artifact in names}
