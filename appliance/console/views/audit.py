"""Audit: search the trail, verify its chain, export the evidence pack, copy the newest signed checkpoint."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import streamlit as st

from appliance.console.widgets import event_rows, plain, shown_errors, table
from appliance.context import Context
from appliance.identity.roles import require


def render(ctx: Context) -> None:
    from appliance.audit import actions
    from appliance.audit.query import search

    require(ctx, "audit.read", "audit", "log")
    with st.form("audit_search"):
        cols = st.columns(4)
        since = cols[0].text_input("Since (UTC, ISO 8601)", key="audit_since")
        actor = cols[1].text_input("Actor", key="audit_actor")
        action = cols[2].text_input("Action (prefix*)", key="audit_action")
        limit = cols[3].number_input("Limit", min_value=1, max_value=100_000, value=200, key="audit_limit")
        st.form_submit_button("Search")
    with shown_errors():
        events = search(ctx.engine, since=since or None, actor=actor or None, action=action or None,
                        limit=int(limit))
        table(event_rows(events[::-1]), "audit_table")
    left, middle, right = st.columns(3)
    if left.button("Verify the chain", key="audit_verify"):
        with shown_errors():
            report = actions.verify(ctx)
            if report.ok:
                st.success(f"verified: {report.events} events, {report.checkpoints_checked} checkpoint comparisons, "
                           f"tree head {report.root}")
            else:
                st.error(plain("NOT verified: " + "; ".join(report.problems)
                               + (f" (first bad sequence number: {report.first_bad_seq})"
                                  if report.first_bad_seq is not None else "")))
    if middle.button("Prepare the evidence pack", key="audit_export"):
        with shown_errors():
            folder = Path(tempfile.mkdtemp(prefix="console-export-"))
            try:
                out = folder / "evidence.zip"
                summary = actions.export(ctx, out)
                st.session_state["evidence_pack"] = out.read_bytes()
                st.success(f"evidence pack: {summary['events']} events, {summary['checkpoints']} checkpoints")
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    if st.session_state.get("evidence_pack"):
        middle.download_button("Download evidence.zip", st.session_state["evidence_pack"], "evidence.zip",
                               "application/zip", key="audit_download")
    if right.button("Copy the newest checkpoint", key="audit_checkpoint"):
        with shown_errors():
            cp = actions.newest_checkpoint(ctx)
            st.session_state["checkpoint"] = json.dumps(cp.as_dict(), indent=1) + "\n"
            st.success(f"checkpoint: {cp.tree_size} events, root {cp.root}")
    if st.session_state.get("checkpoint"):
        right.download_button("Download checkpoint.json", st.session_state["checkpoint"], "checkpoint.json",
                              "application/json", key="audit_checkpoint_download")
