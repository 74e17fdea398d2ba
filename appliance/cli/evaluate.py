"""`appliance eval RUN` and `appliance evals ...`."""

from __future__ import annotations

import contextlib
import sys
import time

import click

from appliance.cli.app import App, cli, emit_json, pass_app
from appliance.cli.params import InFile
from appliance.identity.roles import require
from appliance.userfiles import InputFile


def _timed_say():
    """Progress lines on stderr, each with the seconds since the command started."""
    started = time.perf_counter()

    def say(line: str) -> None:
        click.echo(f"[{time.perf_counter() - started:6.1f}s] {line}", err=True)

    return say


def _gates(result: dict) -> None:
    width = max(len(g["gate"]) for g in result["gates"])
    for g in result["gates"]:
        value = "-" if g["value"] is None else f"{g['value']:.3f}" if isinstance(g["value"], float) else g["value"]
        click.echo(f"  {g['status'].upper():<4}  {g['gate']:<{width}}  {value:>7}  (threshold {g['threshold']}; "
                   f"{g['metric']})")


@cli.command("eval")
@click.argument("run", required=False)
@click.option("--scheduled", is_flag=True,
              help="Instead of RUN: re-run the frozen sets on every approved adapter and compare with the "
                   "evaluation it was approved on (the drift check; for a timer).")
@click.option("--judge", help="A registered model to grade base vs adapter answers pairwise (served locally).")
@click.option("--json", "as_json", is_flag=True, help="Print the stored result as JSON.")
@pass_app
def evaluate(app: App, run: str | None, scheduled: bool, judge: str | None, as_json: bool) -> None:
    """Compare base model and base + adapter of RUN; store the result and the installed release gates' verdict.

    Exit status 0 when every gate passes, 5 when one fails (the result is stored either way).
    With --scheduled (as the appliance's service account): exit 5 when an adapter's scores fell more
    than the policy's drift.max_drop or it no longer verifies (each check is stored and audited)."""
    from appliance.errors import InputError, PolicyViolation
    from appliance.eval.run import evaluate as run_eval

    if scheduled == bool(run):
        raise InputError("give a RUN to evaluate, or --scheduled to check every approved adapter (not both)")
    if scheduled and judge:
        raise InputError("--judge applies to the evaluation of a RUN, not to --scheduled")
    say = _timed_say()
    if scheduled:
        app.service_account_only("`appliance eval --scheduled`")
        _scheduled(app, as_json, say)
        return
    with contextlib.redirect_stdout(sys.stderr):
        result = run_eval(app.ctx, run, judge=judge, say=say)
    if as_json:
        emit_json(result.as_dict())
    else:
        click.echo(f"evaluation of {run}: {'PASSED' if result.passed else 'FAILED'} "
                   f"(report {app.settings.home / result.report_path})")
        _gates(result.result)
    if not result.passed:
        raise PolicyViolation(f"run {run!r} failed the release gates: {', '.join(result.failed_gates)} (stored)",
                              hint="evals.override")


def _scheduled(app: App, as_json: bool, say) -> None:
    from appliance.context import Actor
    from appliance.errors import PolicyViolation
    from appliance.eval.drift import OK, scheduled

    ctx = app.system_ctx.acting_as(Actor("scheduler", "system", "system"))
    with contextlib.redirect_stdout(sys.stderr):
        checks = scheduled(ctx, say=say)
    if as_json:
        emit_json([c.as_dict() | {"drops": c.drops} for c in checks])
    else:
        _drift_table(checks, "no approved adapters to check")
    bad = [c.artifact for c in checks if c.status != OK]
    if bad:
        raise PolicyViolation(f"drift: {', '.join(bad)} fell beyond the policy or no longer verify "
                              "(stored and audited; see `appliance evals drift`)")


def _pair(now: float | None, then: float | None) -> str:
    return "-" if now is None or then is None else f"{then:.3f} -> {now:.3f}"


def _drift_table(checks, empty: str) -> None:
    if not checks:
        click.echo(empty)
    for c in checks:
        click.echo(f"  {c.status.upper():<12} {c.artifact:<24} {c.checked_at}  task {c.task_metric} "
                   f"{_pair(c.task_value, c.task_baseline)}  suite {_pair(c.suite_value, c.suite_baseline)}  "
                   f"({c.detail})")


@cli.group()
def evals() -> None:
    """Stored evaluation results."""


@evals.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def evals_list(app: App, as_json: bool) -> None:
    """List evaluations, oldest first."""
    from appliance.eval.store import list_results

    require(app.ctx, "read", "eval", "*")
    found = list_results(app.engine)
    if as_json:
        emit_json([{k: v for k, v in r.as_dict().items() if k != "result"} for r in found])
        return
    if not found:
        click.echo("no evaluations")
    for r in found:
        state = "FAILED" if r.verdict == "failed" else r.verdict
        click.echo(f"{r.run_name:<36} {state:<10} {r.created_at}  by {r.created_by}  {r.report_path}")


@evals.command("show")
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, with every measurement.")
@pass_app
def evals_show(app: App, run: str, as_json: bool) -> None:
    """Show the latest evaluation of RUN: verdict, gates, override."""
    from appliance.eval.store import latest

    require(app.ctx, "read", "eval", run)
    result = latest(app.engine, run)
    if as_json:
        emit_json(result.as_dict())
        return
    click.echo(f"evaluation of {run} on {result.created_at} by {result.created_by}: "
               f"{'PASSED' if result.passed else 'FAILED'}")
    _gates(result.result)
    if result.override_by:
        click.echo(f"overridden by {result.override_by} on {result.override_at}: {result.override_reason}")
    click.echo(f"report: {app.settings.home / result.report_path}")


@evals.command("override")
@click.argument("run")
@click.option("--reason", required=True, help="Why releasing despite the failed gates is acceptable.")
@pass_app
def evals_override(app: App, run: str, reason: str) -> None:
    """Officer only: accept RUN's failed gates with a written reason (an audited event)."""
    from appliance.eval.override import override

    result = override(app.ctx, run, reason)
    click.echo(f"run {run}: failed gates overridden by {result.override_by}")


@evals.command("advice")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def evals_advice(app: App, as_json: bool) -> None:
    """The newest `appliance advise` verdict for each dataset version, from the audit trail."""
    from appliance.eval.advise import recorded

    found = recorded(app.ctx)
    if as_json:
        emit_json([a.as_dict() for a in found])
        return
    if not found:
        click.echo("no advice recorded; run `appliance advise DATASET`")
    for a in found:
        scores = f"{a.metric} zero-shot {_score(a.zero_shot)}, few-shot {_score(a.few_shot)}"
        click.echo(f"{a.dataset:<28} {a.recommendation.upper():<12} {scores}  by {a.by} {a.at}\n    {a.reason}")


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@cli.command()
@click.argument("dataset")
@click.option("--base", help="Registered base model to run the baselines with (default: the recipe's, or smollm2).")
@click.option("--recipe", type=InFile(), help="Take the answer format and base model from RECIPE.")
@click.option("--format", "format_regex", help="Regular expression the answers must match (the task metric).")
@click.option("--json", "as_json", is_flag=True, help="Print the advice and its numbers as JSON.")
@pass_app
def advise(app: App, dataset: str, base: str | None, recipe: InputFile | None, format_regex: str | None,
           as_json: bool) -> None:
    """Should you fine-tune at all? Prompting, retrieval or fine-tuning for DATASET[@vN], measured.

    Runs the base model zero-shot and few-shot on the held-out split and measures how much of the answers
    is new facts rather than form; recommends with the numbers behind it."""
    from appliance.eval.advise import advise as run_advise

    if recipe is not None:
        from appliance.train.recipe import load_recipe

        r, _ = load_recipe(recipe)
        base, format_regex = base or r.base_model, format_regex or r.format_regex
    say = _timed_say()

    with contextlib.redirect_stdout(sys.stderr):
        advice = run_advise(app.ctx, dataset, base=base, format_regex=format_regex, say=say)
    if as_json:
        emit_json(advice.as_dict())
        return
    click.echo(f"{advice.dataset} on {advice.base_model} ({advice.items} held-out items, metric {advice.metric}):")
    click.echo(f"  zero-shot {advice.zero_shot[advice.metric]:.3f}   few-shot {advice.few_shot[advice.metric]:.3f}   "
               f"new facts {advice.facts_share:.0%} of answer words")
    click.echo(f"recommendation: {advice.recommendation.upper()}: {advice.reason}")


@evals.command("drift")
@click.argument("artifact", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def evals_drift(app: App, artifact: str | None, as_json: bool) -> None:
    """The scheduled checks of approved adapters (all, or ARTIFACT's), oldest first."""
    from appliance.eval.drift import history

    require(app.ctx, "read", "artifact", artifact or "*")
    checks = history(app.engine, artifact)
    if as_json:
        emit_json([c.as_dict() | {"drops": c.drops} for c in checks])
    else:
        _drift_table(checks, "no scheduled checks yet; run `appliance eval --scheduled`")
