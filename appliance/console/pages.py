"""The console's pages. Each is a function of the signed-in user's Context; reads check the same permissions as
the CLI's listings, and every action is the library function the CLI calls (which checks and audits it).
A refusal or a bad input is shown as one plain message, never a traceback."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from appliance.context import Context
from appliance.errors import ApplianceError
from appliance.identity.roles import allowed, require
from appliance.paths import policies_dir


@dataclass(frozen=True)
class Page:
    title: str
    permission: str  # what the role needs to see the page at all
    render: Callable[[Context], None]


@contextmanager
def shown_errors():
    """A refused or invalid action becomes one error line on the page (the library has audited it)."""
    try:
        yield
    except ApplianceError as exc:
        label = exc.param.replace("_", " ").capitalize() if exc.param else None
        st.error(exc.render(label, 1))


def _table(rows: list[dict], key: str) -> None:
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch", key=key)
    else:
        st.caption("nothing yet")


# --- Overview ---------------------------------------------------------------------------------------------------
def overview(ctx: Context) -> None:
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
    _table([{"check": c.name, "status": c.status, "detail": c.detail} for c in report.checks], "health")
    if allowed(ctx.actor.role, "audit.read"):
        from appliance.audit.query import search

        st.subheader("Latest audit events")
        _table(_events(search(ctx.engine, limit=10)[::-1]), "latest_events")


def _events(events: list[dict]) -> list[dict]:
    return [{"seq": e["seq"], "time": e["ts"][:19], "actor": e["actor"], "action": e["action"],
             "outcome": e["outcome"], "object": f"{e['object_type']}:{e['object_id']}", "reason": e["reason"] or ""}
            for e in events]


# --- Datasets ---------------------------------------------------------------------------------------------------
def datasets(ctx: Context) -> None:
    from appliance.data import versions
    from appliance.data.lint import summary_lines

    require(ctx, "read", "dataset", "*")
    found = versions.list_versions(ctx.engine)
    _table([{"dataset": v.ref, "format": v.format, "records": v.records, "train": v.train_records,
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
        _table(v.rejects[:200], "rejects_table")  # file, where (line or row), field, reason
        lineage = v.lineage or {}
        st.markdown("**Lineage**")
        st.json({k: lineage.get(k) for k in ("inputs", "policy_digest", "nlp_model", "nlp_model_digest", "split",
                                             "tokenizer_model", "libraries")}, expanded=False)
    if allowed(ctx.actor.role, "data.ingest"):
        _ingest_form(ctx)


def _ingest_form(ctx: Context) -> None:
    from appliance.data.ingest import ingest

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
    from appliance.userfiles import MemoryFile

    # The upload holds raw personal data: it is read from memory and never written to disk.
    with shown_errors(), st.spinner("scrubbing and ingesting"):
        result = ingest(ctx, [MemoryFile(Path(upload.name).name, upload.getvalue())], name)
        v = result.version
        st.success(f"ingested {v.ref}: {v.records} records, {v.rejected} rejected" if result.created
                   else f"the same content is already {v.ref}; nothing new stored")


# --- Training ---------------------------------------------------------------------------------------------------
def training(ctx: Context) -> None:
    from appliance.train import runs

    require(ctx, "read", "run", "*")
    found = runs.list_runs(ctx.engine)
    _table([{"run": r.name, "status": r.status, "method": r.method, "engine": r.engine, "dataset": r.dataset_ref,
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
    from appliance.train import runs

    run = runs.get_run(ctx.engine, name)
    st.markdown(f"**{run.name}**: {run.status}, step {run.steps_done} of {run.max_steps}"
                + (f"; error: {run.error}" if run.error else ""))
    points = runs.metrics(ctx.engine, run.id)
    losses = {p["step"]: p["loss"] for p in points if p.get("loss") is not None}
    if losses:
        st.line_chart({"loss": losses}, x_label="step", y_label="loss")
    from appliance.train import lease

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


# --- Evaluations ------------------------------------------------------------------------------------------------
def evaluations(ctx: Context) -> None:
    from appliance.eval import store as evals

    require(ctx, "read", "eval", "*")
    found = evals.list_results(ctx.engine)
    _table([{"run": e.run_name, "passed": e.passed, "override": e.override_by or "", "judge": e.judge_model or "",
             "by": e.created_by, "created": e.created_at[:19], "id": e.id[:12]} for e in found], "eval_table")
    if found:
        _evaluation(st.selectbox("Evaluation", found, format_func=lambda x: f"{x.run_name} ({x.id[:12]})",
                                 key="eval_pick"))
    _advice(ctx)


def _evaluation(e) -> None:
    result = e.result
    task = result.get("task") or {}
    st.markdown(f"**Task** ({task.get('items')} held-out items; primary metric `{task.get('primary')}`)")
    _table([{"metric": m, "base": task.get("base", {}).get(m), "adapter": task.get("adapter", {}).get(m)}
            for m in (task.get("adapter") or {})], "task_table")
    suite = result.get("suite") or {}
    if suite:
        st.markdown(f"**Forgetting** (general suite, {suite.get('items')} items; drop {suite.get('forgetting')})")
        kinds = suite.get("base", {}).get("by_kind", {})
        _table([{"kind": k, "base": kinds[k], "adapter": suite.get("adapter", {}).get("by_kind", {}).get(k),
                 "delta": (suite.get("adapter", {}).get("by_kind", {}).get(k) or 0) - kinds[k]} for k in kinds],
               "suite_table")
    judge = result.get("judge")
    if judge:
        st.markdown("**Judge**")
        _table([{k: judge.get(k) for k in ("judge", "comparisons", "adapter", "base", "tie", "unparseable",
                                            "win_rate") if k in judge}], "judge_table")
    leakage = result.get("leakage")
    if leakage:
        st.markdown("**Leakage** (canary exposure)")
        _table([{k: c.get(k) for k in ("repetitions", "exposure_base", "exposure_adapter") if k in c}
                for c in leakage.get("canaries", [])], "leak_table")
    st.markdown(f"**Gates**: {'passed' if e.passed else 'failed'}"
                + (f" (overridden by {e.override_by}: {e.override_reason})" if e.override_by else ""))
    _table(result.get("gates", []), "gate_table")


def _advice(ctx: Context) -> None:
    """The newest `advise` verdict per dataset version (from the audit trail, where each is recorded), and for an
    engineer a form to ask for one."""
    import json

    from appliance.audit.query import search
    from appliance.data import versions

    st.subheader("Advise: prompting, retrieval or fine-tuning?")
    newest: dict[str, dict] = {}
    for event in search(ctx.engine, action="eval.advise", limit=500):
        newest[event["object_id"]] = event  # oldest first, so the newest wins
    rows = []
    for ref, event in sorted(newest.items()):
        d = json.loads(event["details"] or "{}")
        rows.append({"dataset": ref, "recommendation": d.get("recommendation"), "metric": d.get("metric"),
                     "zero-shot": d.get("zero_shot"), "few-shot": d.get("few_shot"),
                     "facts share": d.get("facts_share"), "why": d.get("reason", ""), "by": event["actor"],
                     "when": event["ts"][:19]})
    _table(rows, "advice_table")
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


# --- Artifacts --------------------------------------------------------------------------------------------------
def artifacts(ctx: Context) -> None:
    from appliance.artifacts import registry
    from appliance.artifacts.approval import decide
    from appliance.artifacts.signing import verify

    require(ctx, "read", "artifact", "*")
    found = registry.list_artifacts(ctx.engine)
    _table([{"artifact": a.name, "status": a.status, "run": a.run_name, "packaged by": a.packaged_by,
             "signed by": a.signed_by or "", "decided by": a.decided_by or "", "reason": a.decision_reason or ""}
            for a in found], "artifact_table")
    if not found:
        return
    name = st.selectbox("Artifact", [a.name for a in found], key="artifact_name")
    a = next(x for x in found if x.name == name)
    st.markdown(f"**{a.name}**: {a.status}; manifest `{a.manifest_digest}`; signing key "
                f"`{(a.signing_key_id or '-')[:16]}`")
    with st.expander("Provenance and files"):
        _table([{"file": f, "sha256": d} for f, d in sorted(a.files.items())], "artifact_files")
        provenance = a.directory(ctx.settings) / "provenance.json"
        if provenance.is_file():
            st.code(provenance.read_text()[:20000], language="json")
    if st.button("Verify signature", key="verify_artifact"):
        with shown_errors():
            result = verify(ctx, a.name)
            _table([{"check": c["check"], "ok": c["ok"], "detail": c["detail"]} for c in result.checks],
                   "verify_table")
            (st.success if result.ok else st.error)(f"artifact {a.name}: {'verified' if result.ok else 'NOT verified'}")
    st.subheader("Decision")
    if not allowed(ctx.actor.role, "artifacts.approve"):
        st.info(f"Only an officer approves, rejects or revokes; you are signed in as {ctx.actor.role}.")
        return
    reason = st.text_input("Reason (kept in the audit trail)", key="decision_reason")
    cols = st.columns(3)
    for column, action in zip(cols, ("approve", "reject", "revoke"), strict=True):
        if column.button(action.capitalize(), key=f"decide_{action}"):
            with shown_errors():
                if not reason.strip():
                    raise ApplianceError("give a reason; it is kept in the audit trail")
                done = decide(ctx, a.name, action, reason.strip())
                # Drawn again so the table above shows the new status; the notice survives the rerun.
                st.session_state["decision_notice"] = f"artifact {done.name}: {done.status} by {done.decided_by}"
                st.rerun()
    if st.session_state.get("decision_notice"):
        st.success(st.session_state.pop("decision_notice"))


# --- Serving and playground -------------------------------------------------------------------------------------
def _gateway_url() -> str:
    return os.environ.get("APPLIANCE_GATEWAY_URL", "http://127.0.0.1:8000").rstrip("/")


def serving(ctx: Context) -> None:
    import httpx

    require(ctx, "read", "serving", "gateway")
    url = _gateway_url()
    st.markdown(f"Gateway: `{url}` (`appliance serve`)")
    try:
        health = httpx.get(url + "/healthz", timeout=2).json()
        ready = httpx.get(url + "/readyz", timeout=2).status_code == 200
        metrics = httpx.get(url + "/metrics", timeout=2).text
    except (httpx.HTTPError, ValueError) as exc:
        st.warning(f"the gateway does not answer at {url}: {type(exc).__name__}. Start it with `appliance serve`.")
        return
    st.markdown(f"**Status**: {'ready' if ready else 'starting'}; {health}")
    wanted = ("appliance_adapters_loaded", "appliance_requests_total", "appliance_backend_restarts_total",
              "appliance_tokens_total")
    _table([{"metric": line.rsplit(" ", 1)[0], "value": line.rsplit(" ", 1)[1]} for line in metrics.splitlines()
            if line.startswith(wanted)], "metrics_table")


def playground(ctx: Context) -> None:
    import httpx

    require(ctx, "serve.query", "model", "*")
    url = _gateway_url()
    st.caption(f"Asks the gateway at {url} with your API token (`appliance tokens create`); the token stays in "
               "this browser session only and every request is audited under your name.")
    token = st.text_input("API token", type="password", key="play_token")
    if not token:
        return
    headers = {"Authorization": f"Bearer {token}"}
    try:
        listed = httpx.get(url + "/v1/models", headers=headers, timeout=5)
    except httpx.HTTPError as exc:
        st.warning(f"the gateway does not answer at {url}: {type(exc).__name__}")
        return
    if listed.status_code != 200:
        st.error(listed.json().get("error", {}).get("message", listed.text))
        return
    models = [m["id"] for m in listed.json()["data"]]
    left, right = st.columns(2)
    first = left.selectbox("Left", models, key="play_left")
    second = right.selectbox("Right", models, index=min(1, len(models) - 1), key="play_right")
    prompt = st.text_area("Prompt", key="play_prompt")
    if st.button("Ask both", key="play_ask") and prompt.strip():
        for column, model in ((left, first), (right, second)):
            reply = httpx.post(url + "/v1/chat/completions", headers=headers, timeout=300,
                               json={"model": model, "messages": [{"role": "user", "content": prompt}],
                                     "max_tokens": 200, "temperature": 0})
            body = reply.json()
            if reply.status_code == 200:
                column.markdown(f"**{model}**")
                column.write(body["choices"][0]["message"]["content"])
            else:
                column.error(body.get("error", {}).get("message", reply.text))


# --- Audit ------------------------------------------------------------------------------------------------------
def audit(ctx: Context) -> None:
    import json

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
        _table(_events(events[::-1]), "audit_table")
    left, middle, right = st.columns(3)
    if left.button("Verify the chain", key="audit_verify"):
        with shown_errors():
            report = actions.verify(ctx)
            if report.ok:
                st.success(f"verified: {report.events} events, {report.checkpoints_checked} checkpoint comparisons, "
                           f"tree head {report.root}")
            else:
                st.error("NOT verified: " + "; ".join(report.problems)
                         + (f" (first bad sequence number: {report.first_bad_seq})"
                            if report.first_bad_seq is not None else ""))
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


# --- Users and tokens -------------------------------------------------------------------------------------------
def users(ctx: Context) -> None:
    from appliance.identity import tokens
    from appliance.identity import users as accounts
    from appliance.identity.roles import ROLES

    found = accounts.list_users(ctx)
    _table([{"user": u.name, "role": u.role, "disabled": u.disabled, "created": u.created_at[:19]} for u in found],
           "user_table")
    with st.form("add_user"):
        cols = st.columns(3)
        name = cols[0].text_input("New user", key="user_name")
        role = cols[1].selectbox("Role", ROLES, key="user_role")
        password = cols[2].text_input("Initial password", type="password", key="user_password")
        if st.form_submit_button("Add user"):
            with shown_errors():
                added = accounts.add_user(ctx, name.strip(), role, password)
                st.success(f"user {added.name} added as {added.role}")
    names = [u.name for u in found]
    if names:
        cols = st.columns(3)
        who = cols[0].selectbox("User", names, key="manage_user")
        new_role = cols[1].selectbox("New role", ROLES, key="manage_role")
        if cols[1].button("Set role", key="set_role"):
            with shown_errors():
                accounts.set_role(ctx, who, new_role)
                st.success(f"user {who} is now {new_role}")
        if cols[2].button("Disable", key="disable_user"):
            with shown_errors():
                accounts.set_disabled(ctx, who, True)
                st.success(f"user {who} disabled")
    st.subheader("API tokens")
    listed = tokens.list_tokens(ctx)
    _table([{"id": t.id, "user": t.user, "adapters": ", ".join(t.adapters) if t.adapters else "all",
             "expires": t.expires_at, "revoked": t.revoked_at or ""} for t in listed], "token_table")
    if names:
        cols = st.columns(2)
        owner = cols[0].selectbox("Token for", names, key="token_user")
        if cols[0].button("Create token", key="token_create"):
            with shown_errors():
                secret, info = tokens.create(ctx, owner)
                st.success(f"token {info.id} for {owner}; copy it now, it is not shown again:")
                st.code(secret)
        live = [t.id for t in listed if not t.revoked_at]
        if live:
            gone = cols[1].selectbox("Token", live, key="token_pick")
            if cols[1].button("Revoke token", key="token_revoke"):
                with shown_errors():
                    tokens.revoke(ctx, gone)
                    st.success(f"token {gone} revoked")


PAGES = (
    Page("Overview", "read", overview),
    Page("Datasets", "read", datasets),
    Page("Training", "read", training),
    Page("Evaluations", "read", evaluations),
    Page("Artifacts", "read", artifacts),
    Page("Serving", "read", serving),
    Page("Playground", "serve.query", playground),
    Page("Audit", "audit.read", audit),
    Page("Users and tokens", "users.manage", users),
)


def pages_for(role: str) -> list[Page]:
    return [p for p in PAGES if allowed(role, p.permission)]
