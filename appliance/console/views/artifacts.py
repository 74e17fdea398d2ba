"""Artifacts: the packaged adapters, their files and provenance, verifying a signature, and an officer's decision."""

from __future__ import annotations

import streamlit as st

from appliance.console.widgets import shown_errors, table
from appliance.context import Context
from appliance.errors import ApplianceError
from appliance.identity.roles import allowed, require


def render(ctx: Context) -> None:
    from appliance.artifacts import registry
    from appliance.artifacts.approval import decide
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
