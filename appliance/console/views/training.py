"""Training: the runs, a run's loss live while it trains, resuming one whose trainer is gone; queueing a run."""

from __future__ import annotations

import streamlit as st

from appliance.console.widgets import shown_errors, table
from appliance.context import Context
from appliance.errors import ApplianceError
from appliance.identity.roles import allowed, require
from appliance.paths import policies_dir


def render(ctx: Context) -> None:
    from appliance.train import runs

    require(ctx, "read", "run", "*")
    found = runs.list_runs(ctx.engine)
    table([{"run": r.name, "status": r.status, "method": r.method, "framework": r.framework, "dataset": r.dataset_ref,
            "steps": f"{r.steps_done}/{r.max_steps}", "final loss": r.final_loss, "by": r.created_by,
            "created": r.created_at[:19]} for r in found], "run_table")
    if found:
        name = st.selectbox("Run", [r.name for r in found], key="run_name")
        _run_detail(ctx, name)
    if allowed(ctx.actor.role, "train"):
        _queue_form(ctx)


def _run_detail(ctx: Context, name: str) -> None:
    """A run's progress; redrawn every 3 s only while it is queued or running (a redraw closes open menus)."""
    from appliance.train import runs

    if runs.get_run(ctx.engine, name).status in ("queued", "running"):
        _live_run_detail(ctx, name)
    else:
        _run_detail_body(ctx, name)


@st.fragment(run_every=3)
def _live_run_detail(ctx: Context, name: str) -> None:
    _run_detail_body(ctx, name)


def _run_detail_body(ctx: Context, name: str) -> None:
    from appliance.train import lease, runs

    run = runs.get_run(ctx.engine, name)
    st.markdown(f"**{run.name}**: {run.status}, step {run.steps_done} of {run.max_steps}"
                + (f"; error: {run.error}" if run.error else ""))
    points = runs.metrics(ctx.engine, run.id)
    losses = {p["step"]: p["loss"] for p in points if p.get("loss") is not None}
    if losses:
        st.line_chart({"loss": losses}, x_label="step", y_label="loss")
    alive, why = lease.state(run) if run.status == "running" else (True, "")
    if not alive:
        st.warning(f"Its trainer is gone: {why}. Resuming marks it failed with that cause and queues it.")
    if (run.status in ("failed", "interrupted") or not alive) and allowed(ctx.actor.role, "train"):
        if st.button("Resume from the newest checkpoint", key="resume_run"):
            from appliance.train.run import train

            with shown_errors():
                outcome = train(ctx, None, None, resume=run.name, queue=True)
                st.success(f"run {outcome.run.name} queued for the worker")


def _queue_form(ctx: Context) -> None:
    from appliance.data import versions
    from appliance.train.run import train

    st.subheader("Queue a run")
    recipes = sorted(p.name for p in (policies_dir() / "recipes").glob("*.yaml"))
    names = sorted({v.name for v in versions.list_versions(ctx.engine)})
    with st.form("queue"):
        recipe = st.selectbox("Recipe", recipes, key="queue_recipe")
        dataset = st.selectbox("Dataset", names, key="queue_dataset")
        name = st.text_input("Run name (optional)", key="queue_name")
        steps = st.number_input("Max steps (0: the recipe's)", min_value=0, value=0, step=1, key="queue_steps")
        submitted = st.form_submit_button("Check, plan and queue")
    if not submitted:
        return
    lines: list[str] = []
    with shown_errors():
        if not dataset:
            raise ApplianceError("ingest a dataset first")
        outcome = train(ctx, policies_dir() / "recipes" / recipe, dataset, name=name or None,
                        max_steps=int(steps) or None, queue=True, say=lines.append)
        st.success(f"run {outcome.run.name} queued for `appliance worker` ({outcome.run.max_steps} steps)")
        st.code("\n".join(lines))
