"""`appliance train` and `appliance runs ...`."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from appliance.cli.app import App, cli, emit_json, pass_app
from appliance.identity.roles import require


@cli.command()
@click.argument("recipe", required=False, type=click.Path(path_type=Path))
@click.option("--dataset", "dataset_ref", help="Dataset version to train on: NAME or NAME@vN.")
@click.option("--base", help="Registered base model (default: the recipe's).")
@click.option("--name", help="Run name (default: DATASET-METHOD-TIME).")
@click.option("--max-steps", type=click.IntRange(1, None), help="Override the recipe's length.")
@click.option("--engine", type=click.Choice(["auto", "unsloth", "trl"]), default="auto", show_default=True)
@click.option("--plan", "plan_only", is_flag=True, help="Print parameters, memory and a measured time; train nothing.")
@click.option("--resume", help="Continue RUN from its newest checkpoint.")
@click.option("--force", is_flag=True, help="Train even when the plan says it will not fit.")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path),
              help="Training policy (default policies/training.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print the run (or the plan) as JSON at the end.")
@pass_app
def train(app: App, recipe: Path | None, dataset_ref: str | None, base: str | None, name: str | None,
          max_steps: int | None, engine: str, plan_only: bool, resume: str | None, force: bool,
          policy_path: Path | None, as_json: bool) -> None:
    """Train a LoRA or QLoRA adapter from RECIPE on a dataset version, under the training policy."""
    from appliance.train.run import train as run_training

    def say(line: str) -> None:
        click.echo(line, err=True)
        sys.stderr.flush()

    # Training libraries print banners to stdout; stdout is kept for this command's own result.
    with contextlib.redirect_stdout(sys.stderr):
        outcome = run_training(app.ctx, recipe, dataset_ref, base=base, name=name, max_steps=max_steps,
                               engine=engine, plan_only=plan_only, resume=resume, force=force,
                               policy_path=policy_path, say=say)
    if outcome.run is None:
        if as_json:
            emit_json(outcome.plan.as_dict())
        return
    run = outcome.run
    if as_json:
        emit_json(run.as_dict())
        return
    click.echo(f"run {run.name}: {run.status}, {run.steps_done} steps, final loss {run.final_loss:.4f}; "
               f"adapter in {app.settings.home / run.path / 'adapter'}")


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
        click.echo(f"{x.name:<36} {x.status:<11} {x.method:<5} {x.engine:<8} {x.steps_done:>5}/{x.max_steps:<5} "
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
    for key in ("name", "status", "method", "engine", "engine_reason", "recipe_file", "recipe_digest", "base_model",
                "base_digest", "dataset_ref", "dataset_digest", "seed", "steps_done", "max_steps", "final_loss",
                "created_by", "started_at", "finished_at", "error"):
        click.echo(f"{key:<15} {getattr(run, key)}")
    if metrics:
        click.echo(f"loss: {metrics[0]['loss']:.4f} at step {metrics[0]['step']} -> {metrics[-1]['loss']:.4f} "
                   f"at step {metrics[-1]['step']}")
