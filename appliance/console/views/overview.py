"""Overview: how many of each thing there is, the install's health (`appliance doctor`), the newest audit events."""

from __future__ import annotations

import streamlit as st

from appliance.console.widgets import event_rows, table
from appliance.context import Context
from appliance.identity.roles import allowed, require


def render(ctx: Context) -> None:
    from appliance import doctor
    from appliance.artifacts import registry
    from appliance.data import versions
    from appliance.eval import store as evals
    from appliance.train import runs

    require(ctx, "read", "appliance", "overview")
    artifacts = registry.list_artifacts(ctx.engine)
    counts = {"dataset versions": len(versions.list_versions(ctx.engine)),
              "training runs": len(runs.list_runs(ctx.engine)), "evaluations": len(evals.list_results(ctx.engine)),
              "artifacts": len(artifacts), "approved": sum(a.status == "approved" for a in artifacts)}
    for column, (label, value) in zip(st.columns(len(counts)), counts.items(), strict=True):
        column.metric(label, value)
    st.subheader("Health")
    report = doctor.run(ctx.settings)
    table([{"check": c.name, "status": c.status, "detail": c.detail} for c in report.checks], "health")
    if allowed(ctx.actor.role, "audit.read"):
        from appliance.audit.query import search

        st.subheader("Latest audit events")
        table(event_rows(search(ctx.engine, limit=10)[::-1]), "latest_events")
