"""A training run, top to bottom: checks -> plan -> record -> load -> train (metrics, checkpoints) -> save.

Runs inline in the calling process. `--resume RUN` continues from the newest checkpoint of a run that did
not finish and ends at the same step count.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance import __version__
from appliance.audit.events import Event
from appliance.audit.log import record, record_alone
from appliance.context import Context
from appliance.data import versions
from appliance.db import session_scope
from appliance.digests import folder_digest
from appliance.errors import InputError, PolicyViolation
from appliance.fsutil import ensure_private_dir, private_tree
from appliance.identity.roles import require
from appliance.models.registry import NO_TEMPLATE_REMEDY, chat_template, get_model, model_dir
from appliance.train import checkpoints, frameworks, lease, runs
from appliance.train.data import training_rows
from appliance.train.plan import Plan, estimate
from appliance.train.policy import check
from appliance.train.recipe import Recipe, load_recipe
from appliance.userfiles import InputFile, as_input

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
Say = Callable[[str], None]


@dataclass
class Outcome:
    run: runs.Run | None
    plan: Plan


def _available_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def _environment() -> dict:
    import importlib.metadata

    import psutil

    libs = {}
    for dist in ("torch", "transformers", "peft", "trl", "unsloth", "bitsandbytes", "datasets", "accelerate"):
        try:
            libs[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            libs[dist] = None
    return {"appliance": __version__, "python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "memory_bytes": int(psutil.virtual_memory().total), "libraries": libs,
            "world_size": distributed()[1]}


def distributed() -> tuple[int, int]:
    """(rank, world size) when launched by torchrun or `accelerate launch`; (0, 1) otherwise."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _steps(recipe: Recipe, rows: int) -> int:
    if recipe.max_steps:
        return recipe.max_steps
    per_epoch = math.ceil(rows / (recipe.batch_size * recipe.gradient_accumulation))
    return max(1, math.ceil(per_epoch * recipe.epochs))


def train(ctx: Context, recipe_path: InputFile | Path | None, dataset_ref: str | None, *, base: str | None = None,
          name: str | None = None, max_steps: int | None = None, framework: str = "auto", plan_only: bool = False,
          resume: str | None = None, force: bool = False, queue: bool = False,
          say: Say = lambda _: None) -> Outcome:
    """Check, plan and run a training job inline; with `queue`, check and plan it and leave it for `worker`.
    The installed training policy applies (`policies.load`); the run records its digest."""
    from appliance import policies

    require(ctx, "train", "run", name or resume or "new")
    rank, world = distributed()
    if world > 1 and (queue or plan_only or resume):
        raise InputError("--queue, --plan and --resume run in one process; launch them without torchrun")
    if world > 1 and not name:
        raise InputError("a distributed run needs a name, the same on every process", param="name")
    if resume:
        previous = runs.get_run(ctx.engine, resume)
        if previous.status == "succeeded":
            raise InputError(f"run {resume!r} already finished; nothing to resume")
        if previous.status == "queued":
            raise InputError(f"run {resume!r} is queued: `appliance worker` trains it")
        if previous.status == "running":
            alive, why = lease.state(previous)
            if alive:
                raise InputError(f"run {resume!r} is running: {why}; resume it once that process has stopped")
            if lease.reap(ctx, previous, why):
                say(f"run {resume}: marked failed: trainer gone: {why}")
        recipe = Recipe.model_validate(previous.recipe)
        recipe_file, recipe_digest = previous.recipe_file, previous.recipe_digest
        base, dataset_ref, name, steps = previous.base_model, previous.dataset_ref, previous.name, previous.max_steps
        framework = previous.framework
    else:
        if recipe_path is None or dataset_ref is None:
            raise InputError("give RECIPE and --dataset NAME[@vN] (or --resume RUN)")
        source = as_input(recipe_path)
        recipe, recipe_digest = load_recipe(source)
        recipe_file = source.basename
    model, _ = get_model(ctx.engine, base or recipe.base_model)
    if not model.hf_dir:
        raise InputError(f"model {model.name!r} has no safetensors copy to train (import it with --hf-copy)")
    hf_dir = model_dir(ctx.settings, model) / model.hf_dir
    dataset = versions.get_version(ctx.engine, dataset_ref)
    rows = training_rows(ctx.settings, dataset, recipe.method)
    if not rows:
        raise InputError(f"dataset {dataset.ref} has no training records")
    if not resume:
        steps = max_steps or _steps(recipe, len(rows))
        name = name or f"{dataset.name}-{recipe.method}-{time.strftime('%Y%m%d-%H%M%S')}"
        if not NAME_RE.match(name):
            raise InputError(f"run name {name!r}: use 1-64 lowercase letters, digits, '.', '_' or '-'")
        if rank == 0 and runs.name_taken(ctx.engine, name):  # the other processes find rank 0's record
            raise InputError(f"a run named {name!r} exists; choose another (or resume it)", param="name")
    policy_digest = None
    if rank == 0:  # the first process speaks for the run: policy, records and audit events are its alone
        installed = policies.load(ctx, "training")
        policy_digest = installed.digest
        check(ctx, installed.policy, run_name=name, model=model, dataset=dataset, steps=steps)
    if recipe.chat_template:  # rendered as training will render it, before anything is recorded
        from appliance.models.chat_template import check as check_template

        check_template(recipe.chat_template, f"{recipe_file}: field chat_template")
    if (dataset.format in ("chat", "sharegpt", "instruction") and not recipe.chat_template
            and chat_template(ctx.settings, model) is None):
        raise InputError(f"model {model.name!r} carries no chat template (a base model), and dataset {dataset.ref} "
                         f"is in the {dataset.format} format, which is rendered through one: {NO_TEMPLATE_REMEDY}")
    choice = (frameworks.choose(framework, recipe, world) if not resume
              else frameworks.Choice(framework, "resumed with the same framework"))
    plan = estimate(hf_dir, recipe, steps, _available_memory(), choice.framework)
    for line in plan.lines():
        say(f"plan: {line}")
    say(f"framework: {choice.framework} ({choice.reason})")
    if not plan.fits and not force:
        reason = (f"estimated peak memory {plan.peak_bytes / 1024**3:.2f} GiB is over the "
                  f"{plan.available_bytes / 1024**3:.2f} GiB available (--force overrides)")
        record_alone(ctx, Event("train.start", "run", name, outcome="denied", reason=reason))
        raise PolicyViolation(f"run will not fit: {reason}")
    if plan_only:
        plan.seconds_per_step = _calibrate(ctx, choice, hf_dir, recipe, rows)
        for line in plan.lines()[-1:]:
            say(f"plan: {line}")
        return Outcome(None, plan)
    run_dir = ctx.settings.runs_dir / name
    if resume:
        ckpt = checkpoints.latest(run_dir)
        if ckpt is None:
            raise InputError(f"run {name!r} has no checkpoint to resume from")
        if queue:  # `appliance worker` continues it from its newest checkpoint
            with session_scope(ctx.engine) as s:
                if not runs.update(s.connection(), previous.id, status="queued", error=None,
                                   only_from=("failed", "interrupted")):
                    raise InputError(f"run {name!r} changed while it was being queued; look again (`runs show`)")
                record(ctx, s, Event("train.queue", "run", name, details={"resume_from": ckpt.name}))
            return Outcome(runs.get_run(ctx.engine, name), plan)
        holder = lease.Holder.me()
        if not lease.take(ctx.engine, previous.id, holder, ("failed", "interrupted")):
            raise InputError(f"run {name!r} was taken by another process meanwhile; look again (`runs show`)")
        _continue_from(ctx, previous, ckpt)
        return Outcome(_execute(ctx, runs.get_run(ctx.engine, name), recipe, choice, hf_dir, rows, run_dir, ckpt, say),
                       plan)
    ensure_private_dir(run_dir)
    holder = None if queue else str(lease.Holder.me())
    run = runs.Run(
        id=uuid.uuid4().hex, name=name, status="queued" if queue else "running", method=recipe.method,
        framework=choice.framework, framework_reason=choice.reason, recipe_file=recipe_file,
        recipe_digest=recipe_digest, recipe=recipe.model_dump(), base_model=model.name, base_digest=model.digest,
        dataset_ref=dataset.ref,
        dataset_digest=dataset.digest, seed=recipe.seed, max_steps=steps, steps_done=0, final_loss=None,
        path=f"runs/{name}", environment=_environment(), error=None, created_by=ctx.actor.user,
        created_at=runs.now(), started_at=None if queue else runs.now(), finished_at=None, policy_digest=policy_digest,
        lease_owner=holder, heartbeat_at=holder and runs.now())
    details = {"recipe_digest": recipe_digest, "base_digest": model.digest, "dataset": dataset.ref,
               "dataset_digest": dataset.digest, "framework": choice.framework, "steps": steps, "world_size": world,
               "policy_digest": policy_digest}
    if rank > 0:  # another process of a distributed run: trains its share, records nothing
        return Outcome(_execute(ctx, run, recipe, choice, hf_dir, rows, run_dir, None, say, record_outcome=False),
                       plan)
    with session_scope(ctx.engine) as s:
        runs.insert(s.connection(), run)
        record(ctx, s, Event("train.queue", "run", name, details=details))
        if not queue:
            record(ctx, s, Event("train.start", "run", name, details=details))
    if queue:
        return Outcome(run, plan)
    return Outcome(_execute(ctx, run, recipe, choice, hf_dir, rows, run_dir, None, say), plan)


def run_claimed(ctx: Context, run: runs.Run, say: Say = lambda _: None) -> runs.Run:
    """Train a run claimed from the queue (`runs.claim_next`); a failure is recorded on the run, then raised.

    The run was checked against permissions and policy when it was queued; the base model and dataset are
    re-read by name and must still have the digests recorded then."""
    try:
        recipe = Recipe.model_validate(run.recipe)
        model, _ = get_model(ctx.engine, run.base_model)
        dataset = versions.get_version(ctx.engine, run.dataset_ref)
        if model.digest != run.base_digest or dataset.digest != run.dataset_digest:
            raise InputError(f"run {run.name!r}: the base model or dataset changed since the run was queued")
        if not model.hf_dir:
            raise InputError(f"model {model.name!r} has no safetensors copy to train")
        hf_dir = model_dir(ctx.settings, model) / model.hf_dir
        rows = training_rows(ctx.settings, dataset, recipe.method)
    except Exception as exc:
        _fail(ctx, run, exc)
        raise
    with session_scope(ctx.engine) as s:
        record(ctx, s, Event("train.start", "run", run.name,
                             details={"queued_by": run.created_by, "framework": run.framework, "steps": run.max_steps}))
    say(f"run {run.name}: claimed (queued by {run.created_by}), {run.max_steps} steps on {run.framework}")
    choice = frameworks.Choice(run.framework, run.framework_reason)
    run_dir = ctx.settings.runs_dir / run.name
    ckpt = checkpoints.latest(run_dir)  # only a run queued with --resume has one
    if ckpt is not None:
        _continue_from(ctx, run, ckpt)
    return _execute(ctx, run, recipe, choice, hf_dir, rows, run_dir, ckpt, say)


def _continue_from(ctx: Context, run: runs.Run, ckpt: Path) -> None:
    """Record that `run`, whose lease this process holds, continues from checkpoint `ckpt`: the steps after it
    are redone."""
    from_step = int(ckpt.name.split("-")[1])
    with session_scope(ctx.engine) as s:
        runs.update(s.connection(), run.id, steps_done=from_step)
        runs.drop_metrics_after(s.connection(), run.id, from_step)
        record(ctx, s, Event("train.resume", "run", run.name, details={"from_step": from_step}))


def _fail(ctx: Context, run: runs.Run, exc: BaseException) -> None:
    """Record the failure of a run this process holds; a run it no longer holds was recorded by whoever took it."""
    if isinstance(exc, lease.LeaseLost):
        return
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    reason = ("stopped by Ctrl-C or SIGINT" if isinstance(exc, KeyboardInterrupt)
              else f"{type(exc).__name__}: {exc}"[:500])
    with session_scope(ctx.engine) as s:
        if lease.release(s.connection(), run, status, error=reason):
            record(ctx, s, Event("train.fail", "run", run.name, outcome="error", reason=reason))


def _execute(ctx, run, recipe, choice, hf_dir, rows, run_dir, ckpt, say, record_outcome: bool = True) -> runs.Run:
    """Train a run already recorded as running (and, unless `record_outcome` is off, held by this process, whose
    heartbeat renews the lease meanwhile), then record its outcome (failure and interruption included)."""
    if not record_outcome:  # another process of a distributed run: rank 0 holds the lease and records
        final_loss, done = _fit(ctx, run, recipe, choice, hf_dir, rows, run.max_steps, run_dir, ckpt, say)
        return dataclasses.replace(run, status="succeeded", steps_done=done, final_loss=final_loss)
    holder = lease.Holder.parse(run.lease_owner)
    try:
        if holder is None:
            raise lease.LeaseLost(f"run {run.name!r} is not held by this process")
        with lease.Heartbeat(ctx.engine, run.id, holder) as beat:
            final_loss, done = _fit(ctx, run, recipe, choice, hf_dir, rows, run.max_steps, run_dir, ckpt, say, beat)
            beat.check()
    except BaseException as exc:
        _fail(ctx, run, exc)
        raise
    adapter = run_dir / "adapter"
    digest = folder_digest(adapter)
    with session_scope(ctx.engine) as s:
        if not lease.release(s.connection(), run, "succeeded", steps_done=done, final_loss=final_loss):
            raise lease.LeaseLost(f"run {run.name!r} was marked failed by another process while it trained")
        record(ctx, s, Event("train.end", "run", run.name, object_sha256=digest,
                             details={"steps": done, "final_loss": final_loss}))
    return runs.get_run(ctx.engine, run.name)


def _calibrate(ctx: Context, choice, hf_dir: Path, recipe: Recipe, rows: list[dict]) -> float:
    """Seconds per step on this machine, from three real steps (the first is not counted)."""
    import tempfile

    from transformers import TrainerCallback

    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

    model, tokenizer = frameworks.load(choice, hf_dir, recipe)
    with tempfile.TemporaryDirectory(dir=ctx.settings.tmp_dir) as tmp:
        frameworks.trainer_for(recipe, model, tokenizer, rows, Path(tmp), 3, [Clock()]).train()
    return (marks[-1] - marks[0]) / max(len(marks) - 1, 1)


def _fit(ctx, run, recipe, choice, hf_dir, rows, steps, run_dir, ckpt, say, beat=None) -> tuple[float | None, int]:
    from appliance.train.callbacks import CheckpointCallback, LeaseCallback, ProgressCallback, ResumeCallback

    model, tokenizer = frameworks.load(choice, hf_dir, recipe)
    precision = "4-bit NF4 (bitsandbytes)" if recipe.adapter.kind == "qlora" else str(model.dtype).replace("torch.", "")
    say(f"model: base weights {precision}, {model.get_memory_footprint() / 2**20:.0f} MiB in memory")
    callbacks = [ProgressCallback(ctx, run, steps, say), CheckpointCallback(ctx, run, run_dir, recipe.checkpoint_every)]
    if ckpt is not None:
        callbacks.append(ResumeCallback(ckpt))
    if beat is not None:
        callbacks.append(LeaseCallback(beat))
    trainer = frameworks.trainer_for(recipe, model, tokenizer, rows, ctx.settings.tmp_dir / f"trainer-{run.id}", steps,
                                  callbacks)
    result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    history = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    if not trainer.is_world_process_zero():
        return (history[-1] if history else None), trainer.state.global_step
    adapter = run_dir / "adapter"
    model.save_pretrained(adapter, safe_serialization=True)
    tokenizer.save_pretrained(adapter)
    (run_dir / "run.json").write_text(json.dumps({**runs.get_run(ctx.engine, run.name).as_dict(),
                                                  "train_result": result.metrics}, indent=1, default=str))
    private_tree(run_dir)
    return (history[-1] if history else None), trainer.state.global_step
