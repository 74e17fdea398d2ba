"""Datasets: the stored versions, what the scrubber found in each, lint, rejects and lineage; upload and ingest."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from appliance.console.widgets import shown_errors, table
from appliance.context import Context
from appliance.identity.roles import allowed, require
from appliance.paths import policies_dir


def render(ctx: Context) -> None:
    from appliance.data import versions
    from appliance.data.lint import summary_lines

    require(ctx, "read", "dataset", "*")
    found = versions.list_versions(ctx.engine)
    table([{"dataset": v.ref, "format": v.format, "records": v.records, "train": v.train_records,
            "eval": v.eval_records, "rejected": v.rejected, "created by": v.created_by, "created": v.created_at[:19],
            "digest": v.digest[:16]} for v in found], "dataset_table")
    if found:
        ref = st.selectbox("Dataset version", [v.ref for v in found], key="dataset_ref")
        v = next(x for x in found if x.ref == ref)
        entities = (v.scrub_report or {}).get("entities_found") or {}
        left, right = st.columns(2)
        with left:
            st.markdown("**Personal data found and scrubbed** (entities by type)")
            if entities:
                st.bar_chart({"entities": entities}, horizontal=True)
            else:
                st.caption("none found")
        with right:
            st.markdown("**Lint**\n" + "".join(f"\n- {line}" for line in summary_lines(v.lint_report)))
        st.markdown(f"**Rejected records**: {v.rejected}")
        table(v.rejects[:200], "rejects_table")  # file, where (line or row), field, reason
        lineage = v.lineage or {}
        st.markdown("**Lineage**")
        st.json({k: lineage.get(k) for k in ("inputs", "policy_digest", "nlp_model", "nlp_model_digest",
                                             "nlp_pipelines", "split", "tokenizer_model", "libraries")},
                expanded=False)
    if allowed(ctx.actor.role, "data.ingest"):
        _ingest_form(ctx)


def _ingest_form(ctx: Context) -> None:
    from appliance.data.ingest import ingest
    from appliance.userfiles import MemoryFile

    st.subheader("Upload and ingest")
    with st.form("ingest"):
        upload = st.file_uploader("Records (JSONL, CSV or Parquet)", type=["jsonl", "json", "csv", "parquet"],
                                  key="ingest_file")
        name = st.text_input("Dataset name", key="ingest_name")
        st.caption(f"Scrubbed under the installed policy {policies_dir() / 'pii.yaml'}")
        submitted = st.form_submit_button("Ingest")
    if not submitted:
        return
    if upload is None or not name:
        st.error("choose a file and name the dataset")
        return
    # The upload holds raw personal data: it is read from memory and never written to disk.
    with shown_errors(), st.spinner("scrubbing and ingesting"):
        result = ingest(ctx, [MemoryFile(Path(upload.name).name, upload.getvalue())], name)
        v = result.version
        st.success(f"ingested {v.ref}: {v.records} records, {v.rejected} rejected" if result.created
                   else f"the same content is already {v.ref}; nothing new stored")
