"""Artifacts: the packaged adapters, their files and provenance, verifying a signature, and an officer's decision."""

from __future__ import annotations

import streamlit as st

from appliance.console.widgets import shown_errors, table
from appliance.context import Context
from appliance.errors import ApplianceError
from appliance.identity.roles import allowed, require


def render(ctx: Context) -> None:
    from appliance.artifacts import registry
    from appliance.artifacts.approval import command_for, decide
    from appliance.artifacts.signing import verify

    require(ctx, "read", "artifact", "*")
    found = registry.list_artifacts(ctx.engine)
    table([{"artifact": a.name, "status": a.status, "run": a.run_name, "packaged by": a.packaged_by,
            "signed by": a.signed_by or "", "decided by": a.decided_by or "", "reason": a.decision_reason or ""}
           for a in found], "artifact_table")
    if not found:
        return
    name = st.selectbox("Artifact", [a.name for a in found], key="artifact_name")
    a = next(x for x in found if x.name == name)
    st.markdown(f"**{a.name}**: {a.status}; manifest `{a.manifest_digest}`; signing key "
                f"`{(a.signing_key_id or '-')[:16]}`")
    signed = _signed_decisions(ctx, a.name)
    if signed:
        st.markdown("**Signed decisions** (each by its maker's own key; the gateway serves on these alone)")
        table(signed, "artifact_decisions")
    with st.expander("Provenance and files"):
        table([{"file": f, "sha256": d} for f, d in sorted(a.files.items())], "artifact_files")
        provenance = a.directory(ctx.settings) / "provenance.json"
        if provenance.is_file():
            st.code(provenance.read_text()[:20000], language="json")
    if st.button("Verify signature", key="verify_artifact"):
        with shown_errors():
            result = verify(ctx, a.name)
            table([{"check": c["check"], "ok": c["ok"], "detail": c["detail"]} for c in result.checks],
                  "verify_table")
            (st.success if result.ok else st.error)(f"artifact {a.name}: {'verified' if result.ok else 'NOT verified'}")
    st.subheader("Decision")
    if not allowed(ctx.actor.role, "artifacts.approve"):
        st.info(f"Only an officer approves, rejects or revokes; you are signed in as {ctx.actor.role}.")
        return
    reason = st.text_input("Reason (kept in the audit trail)", key="decision_reason")
    st.caption("A decision counts only when your own personal key signs it, in your own `appliance` process: the "
               "console checks it and prepares the command; you run it in your terminal.")
    cols = st.columns(3)
    for column, action in zip(cols, ("approve", "reject", "revoke"), strict=True):
        if column.button(f"Prepare {action}", key=f"decide_{action}"):
            with shown_errors():
                if not reason.strip():
                    raise ApplianceError("give a reason; it is kept in the audit trail")
                decide(ctx, a.name, action, reason.strip(), prepare=True)
                st.session_state["decision_command"] = command_for(a.name, action, reason)
    if st.session_state.get("decision_command"):
        st.success("Every check passes. Sign the decision with your own key from your terminal:")
        st.code(st.session_state.pop("decision_command"), language=None)


def _signed_decisions(ctx: Context, name: str) -> list[dict]:
    """The artifact's decision events with their signed statements, and whether each stands (pinned key, verifies)."""
    import json

    from sqlalchemy import select

    from appliance.artifacts import decisions
    from appliance.db.tables import audit_event
    from appliance.keys import people

    e = audit_event.c
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(e.seq, e.action, e.actor, e.ts, e.object_sha256, e.details).where(
            e.object_type == "artifact", e.object_id == name, e.outcome == "ok",
            e.action.in_(("artifact.package", "artifact.sign", "artifact.approve", "artifact.reject",
                          "artifact.revoke"))).order_by(e.seq)).all()
    pinned, out = people.read(ctx.settings), []
    for row in rows:
        statement = json.loads(row.details or "{}").get("statement")
        action = row.action.split(".", 1)[1]
        found, why = decisions.check(statement or {}, pinned, decision=action, subject=name, digest=row.object_sha256)
        out.append({"event": row.seq, "decision": action, "by": row.actor, "at": row.ts[:19],
                    "key": found.key.key_id[:16] if found else "", "stands": "yes" if found else f"no: {why}"})
    return out
