"""Evaluations: the verdict first, then base against adapter as charts (task metrics, forgetting by kind, the
judge's preferences) with the figures rounded, the leakage probe, and the recorded `advise` verdicts."""

from __future__ import annotations

import streamlit as st

from appliance.console.widgets import figure, shown_errors, table
from appliance.context import Context
from appliance.identity.roles import allowed, require


def render(ctx: Context) -> None:
    from appliance.eval import store as evals

    require(ctx, "read", "eval", "*")
    found = evals.list_results(ctx.engine)
    table([{"run": e.run_name, "verdict": e.verdict, "override": e.override_by or "",
            "judge": e.judge_model or "", "by": e.created_by, "created": e.created_at[:19], "id": e.id[:12]}
           for e in found], "eval_table")
    if found:
        _evaluation(st.selectbox("Evaluation", found[::-1], format_func=lambda x: f"{x.run_name} ({x.id[:12]})",
                                 key="eval_pick"))
    _advice(ctx)


def _evaluation(e) -> None:
    """One evaluation (an `EvalResult`): verdict, gates, then the measurements behind them."""
    if e.passed:
        st.success(f"Gates passed: {e.run_name} may be packaged and signed.")
    elif e.override_by:
        st.warning(f"Gates failed ({', '.join(e.failed_gates)}), overridden by {e.override_by}: {e.override_reason}")
    else:
        st.error(f"Gates failed: {', '.join(e.failed_gates)}. The adapter cannot be released unless an officer "
                 "overrides them.")
    table([{"gate": g.gate, "status": g.status, "metric": g.metric, "value": figure(g.value),
            "threshold": g.threshold} for g in e.gates], "gate_table")
    result = e.result
    task = result.get("task") or {}
    base, adapter = task.get("base") or {}, task.get("adapter") or {}
    st.markdown(f"**Task**: {task.get('items')} held-out items; primary metric `{task.get('primary')}`")
    _base_against_adapter({m: (base.get(m), adapter.get(m)) for m in adapter}, "metric", "task")
    suite = result.get("suite") or {}
    if suite:
        kinds = (suite.get("base") or {}).get("by_kind") or {}
        after = (suite.get("adapter") or {}).get("by_kind") or {}
        st.markdown(f"**Forgetting**: general suite, {suite.get('items')} items; the adapter scores "
                    f"{figure(suite.get('forgetting'))} below the base overall")
        _base_against_adapter({k: (kinds[k], after.get(k)) for k in kinds}, "kind", "suite")
    judge = result.get("judge")
    if judge:
        st.markdown(f"**Judge** ({judge.get('judge')}): {judge.get('comparisons')} pairwise comparisons; the "
                    f"adapter's win rate {figure(judge.get('win_rate'))}")
        prefs = {k: judge[k] for k in ("adapter", "base", "tie", "unparseable") if k in judge}
        st.bar_chart({"answers preferred": prefs}, horizontal=True, height=180)
    leakage = result.get("leakage")
    if leakage:
        st.markdown("**Leakage** (canary exposure; higher means memorised)")
        table([{k: figure(c.get(k)) for k in ("repetitions", "exposure_base", "exposure_adapter") if k in c}
               for c in leakage.get("canaries", [])], "leak_table")


def _base_against_adapter(pairs: dict[str, tuple], label: str, key: str) -> None:
    """A grouped bar chart of base and adapter per row and the same figures, rounded, in a table beside it."""
    import pandas as pd

    rows = [{label: name, "base": figure(b), "adapter": figure(a),
             "change": figure(a - b) if isinstance(a, int | float) and isinstance(b, int | float) else None}
            for name, (b, a) in pairs.items()]
    if not rows:
        st.caption("nothing measured")
        return
    chart, numbers = st.columns([3, 2])
    # Scores share one 0-1 axis; a figure of another scale (loss per token) stays in the table beside it.
    scores = [r for r in rows if all(isinstance(r[k], int | float) and 0 <= r[k] <= 1 for k in ("base", "adapter"))]
    if scores:
        frame = pd.DataFrame(scores).set_index(label)[["base", "adapter"]].astype(float)
        chart.bar_chart(frame, stack=False, horizontal=True, height=max(160, 48 * len(scores)),
                        color=["#9aa5b1", "#1f77b4"])
    with numbers:
        table(rows, f"{key}_table")


def _advice(ctx: Context) -> None:
    """The newest `advise` verdict per dataset version, and for an engineer a form to ask for one."""
    from appliance.data import versions
    from appliance.eval.advise import recorded

    st.subheader("Advise: prompting, retrieval or fine-tuning?")
    table([{"dataset": a.dataset, "recommendation": a.recommendation, "metric": a.metric,
            "zero-shot": figure(a.zero_shot), "few-shot": figure(a.few_shot), "facts share": figure(a.facts_share),
            "why": a.reason, "by": a.by, "when": a.at} for a in recorded(ctx)], "advice_table")
    if not allowed(ctx.actor.role, "eval"):
        return
    refs = [v.ref for v in versions.list_versions(ctx.engine)]
    if not refs:
        return
    with st.form("advise"):
        ref = st.selectbox("Dataset version", refs, key="advise_dataset")
        st.caption("Runs the base model zero-shot and few-shot on the held-out split: a minute or two.")
        submitted = st.form_submit_button("Advise")
    if submitted:
        from appliance.eval.advise import advise

        with shown_errors(), st.spinner("running the baselines"):
            advice = advise(ctx, ref)
            st.success(f"{advice.dataset}: {advice.recommendation}. {advice.reason[:1].upper()}{advice.reason[1:]}")
