"""`appliance train` and `appliance runs ...`."""

from __future__ import annotations

import contextlib
import os
import sys

import click
from click.core import ParameterSource

from appliance.cli.app import App, cli, emit_json, pass_app
from appliance.cli.params import InFile
from appliance.identity.roles import require
from appliance.userfiles import InputFile

FRAMEWORKS = ["auto", "unsloth", "trl"]


@cli.command()
@click.argument("recipe", required=False, type=InFile())
@click.option("--dataset", "dataset_ref", help="Dataset version to train on: NAME or NAME@vN.")
@click.option("--base", help="Registered base model (default: the recipe's).")
@click.option("--name", help="Run name (default: DATASET-METHOD-TIME).")
@click.option("--max-steps", type=click.IntRange(1, None), help="Override the recipe's length.")
@click.option("--framework", type=click.Choice(FRAMEWORKS), default="auto", show_default=True,
              help="What trains: Unsloth, or transformers + PEFT + TRL; auto takes what was measured faster here.")
@click.option("--engine", type=click.Choice(FRAMEWORKS), hidden=True, help="The old name of --framework.")
@click.option("--plan", "plan_only", is_flag=True, help="Print parameters, memory and a measured time; train nothing.")
@click.option("--resume", help="Continue RUN from its newest checkpoint (with --queue: by `appliance worker`).")
@click.option("--force", is_flag=True, help="Train even when the plan says it will not fit.")
@click.option("--queue", is_flag=True, help="Check and plan the run, then leave it for `appliance worker`.")
@click.option("--model-config", type=InFile(), help="With --plan: GPU memory for the model this config.json "
              "describes, LoRA (bf16) and QLoRA (4-bit), from the config alone; no model or dataset needed.")
@click.option("--json", "as_json", is_flag=True, help="Print the run (or the plan) as JSON at the end.")
@pass_app
def train(app: App, recipe: InputFile | None, dataset_ref: str | None, base: str | None, name: str | None,
          max_steps: int | None, framework: str, engine: str | None, plan_only: bool, resume: str | None, force: bool,
          queue: bool, model_config: InputFile | None, as_json: bool) -> None:
    """Train a LoRA or QLoRA adapter from RECIPE on a dataset version, under the installed training policy.

    Runs inline by default; --queue records the run for `appliance worker` instead. RECIPE is read with your
    own permissions; the run records its digest and the training policy's."""
    from appliance.train.run import train as run_training

    if engine is not None:  # scripts written before --framework keep working
        given = click.get_current_context().get_parameter_source("framework") is not ParameterSource.DEFAULT
        if given and framework != engine:
            raise click.UsageError("give --framework only (--engine is its old name)")
        framework = engine
    if model_config is not None:
        _plan_from_config(model_config, recipe, plan_only, as_json)
        return

    def say(line: str) -> None:
        click.echo(line, err=True)
        sys.stderr.flush()

    # Training libraries print banners to stdout; stdout is kept for this command's own result.
    with contextlib.redirect_stdout(sys.stderr):
        outcome = run_training(app.ctx, recipe, dataset_ref, base=base, name=name, max_steps=max_steps,
                               framework=framework, plan_only=plan_only, resume=resume, force=force, queue=queue,
                               say=say)
    if int(os.environ.get("RANK", "0")) > 0:  # one line per run, from the first process of a distributed run
        return
    if outcome.run is None:
        if as_json:
            emit_json(outcome.plan.as_dict())
        return
    run = outcome.run
    if as_json:
        emit_json(run.as_dict())
        return
    if run.status == "queued":
        click.echo(f"run {run.name}: queued for `appliance worker` ({run.max_steps} steps)")
        return
    click.echo(f"run {run.name}: {run.status}, {run.steps_done} steps, final loss {run.final_loss:.4f}; "
               f"adapter in {app.settings.home / run.path / 'adapter'}")


@cli.command()
@click.option("--once", is_flag=True, help="Train every queued run, then exit instead of waiting for more.")
@click.option("--poll", type=click.FloatRange(0.1, None), default=5.0, show_default=True,
              help="Seconds between looks at the queue when it is empty.")
@pass_app
def worker(app: App, once: bool, poll: float) -> None:
    """Train queued runs one at a time, oldest first (several workers may share a database).

    Runs as the appliance's own service account: each run was checked against the queuing user's
    permissions and the training policy when it was queued. SIGTERM stops the current run, which is
    recorded as interrupted and can be continued with `appliance train --resume RUN`. The worker is also the
    audit trail's signer: it signs and anchors checkpoints at the audit policy's cadence. Before each look at
    the queue it marks failed, with a `train.fail` event naming the cause, every running run whose trainer
    process is gone (killed, out of memory, or silent for 90 s)."""
    import signal
    import time

    from appliance.audit import signer
    from appliance.context import Actor

    app.service_account_only("`appliance worker`")
    from appliance.train import lease
    from appliance.train.run import run_claimed
    from appliance.train.runs import claim_next

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    ctx = app.system_ctx.acting_as(Actor("worker", "system", "system"))
    signer.start(ctx)

    def say(line: str) -> None:
        click.echo(line, err=True)

    holder = str(lease.Holder.me())
    while True:
        for name, why in lease.reap_stale(ctx):  # runs whose trainer was killed: failed, with the cause
            click.echo(f"run {name}: marked failed: trainer gone: {why}", err=True)
        claimed = claim_next(app.engine, holder)
        if claimed is None:
            if once:
                return
            time.sleep(poll)
            continue
        with contextlib.redirect_stdout(sys.stderr):
            try:
                run = run_claimed(ctx, claimed, say=say)
            except Exception as exc:  # recorded on the run as failed; the worker goes on with the next one
                click.echo(f"run {claimed.name}: failed: {type(exc).__name__}: {exc}", err=True)
                continue
        click.echo(f"run {run.name}: {run.status}, {run.steps_done} steps, final loss {run.final_loss:.4f}")


@cli.group()
def runs() -> None:
    """Training runs."""


@runs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def runs_list(app: App, as_json: bool) -> None:
    """List training runs."""
    from appliance.train import runs as r

    require(app.ctx, "read", "run", "*")
    found = r.list_runs(app.engine)
    if as_json:
        emit_json([x.as_dict() for x in found])
        return
    if not found:
        click.echo("no runs")
    for x in found:
        loss = f"{x.final_loss:.4f}" if x.final_loss is not None else "-"
        click.echo(f"{x.name:<36} {x.status:<11} {x.method:<5} {x.framework:<8} {x.steps_done:>5}/{x.max_steps:<5} "
                   f"loss {loss:<8} {x.dataset_ref} on {x.base_model}")


@runs.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, with per-step metrics.")
@pass_app
def runs_show(app: App, name: str, as_json: bool) -> None:
    """Show one run: provenance, environment, outcome, metrics."""
    from appliance.train import runs as r

    require(app.ctx, "read", "run", name)
    run = r.get_run(app.engine, name)
    metrics = r.metrics(app.engine, run.id)
    if as_json:
        emit_json({**run.as_dict(), "metrics": metrics})
        return
    for key in ("name", "status", "method", "framework", "framework_reason", "recipe_file", "recipe_digest",
                "base_model", "base_digest", "dataset_ref", "dataset_digest", "seed", "steps_done", "max_steps",
                "final_loss", "created_by", "started_at", "finished_at", "error"):
        click.echo(f"{key:<15} {getattr(run, key)}")
    if run.status == "running":
        from appliance.train import lease

        alive, why = lease.state(run)
        click.echo(f"{'trainer':<15} {'alive' if alive else 'GONE'}: {why}")
    if metrics:
        click.echo(f"loss: {metrics[0]['loss']:.4f} at step {metrics[0]['step']} -> {metrics[-1]['loss']:.4f} "
                   f"at step {metrics[-1]['step']}")


def _plan_from_config(config_file: InputFile, recipe_file: InputFile | None, plan_only: bool, as_json: bool) -> None:
    """`train --plan --model-config FILE [RECIPE]`: the GPU memory of a run on the model the config describes,
    for the recipe's adapter, batch and length, or (no recipe) LoRA and QLoRA at the published tables' setting."""
    import json

    from appliance.errors import InputError
    from appliance.train import gpu_plan
    from appliance.userfiles import as_input

    if not plan_only:
        raise click.UsageError("--model-config only plans: add --plan")
    source = as_input(config_file)
    try:
        config = json.loads(source.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{source.name}: not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise InputError(f"{source.name}: not a transformers config (a JSON object)")
    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    if recipe_file is not None:
        from appliance.train.recipe import load_recipe

        recipe, _ = load_recipe(as_input(recipe_file))
        setting = {"batch_size": recipe.batch_size, "max_seq_length": recipe.max_seq_length,
                   "rank": recipe.adapter.rank}
        kinds, modules = [recipe.adapter.kind], list(recipe.adapter.target_modules)
    else:
        setting, kinds = dict(gpu_plan.PUBLISHED), ["lora", "qlora"]
    plans = [gpu_plan.estimate(config, kind, modules=modules, where=source.name, **setting) for kind in kinds]
    if as_json:
        emit_json({"setting": {**setting, "target_modules": modules},
                   "plans": [{**p.__dict__, "peak_gb": round(p.peak_bytes / 1e9, 2)} for p in plans]})
        return
    click.echo(f"setting: batch {setting['batch_size']}, {setting['max_seq_length']} tokens, rank {setting['rank']} "
               f"on {', '.join(modules)}, gradient checkpointing")
    for plan in plans:
        for line in plan.lines():
            click.echo(line)
