"""Users and tokens: the accounts and their roles, and the gateway's API tokens."""

from __future__ import annotations

import streamlit as st

from appliance.console.widgets import shown_errors, table
from appliance.context import Context


def render(ctx: Context) -> None:
    from appliance.identity import tokens
    from appliance.identity import users as accounts
    from appliance.identity.roles import ROLES

    found = accounts.list_users(ctx)
    table([{"user": u.name, "role": u.role, "disabled": u.disabled, "created": u.created_at[:19],
            "adapters": "any" if u.adapters is None else ", ".join(u.adapters) or "none",
            "limits": ", ".join(f"{k} {v:g}" for k, v in u.limits.as_dict().items()) if u.limits else "policy"}
           for u in found], "user_table")
    st.caption("Adapters and limits hold for the user across all their tokens: `appliance users limit NAME`.")
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
    table([{"id": t.id, "user": t.user, "adapters": ", ".join(t.adapters) if t.adapters else "all",
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
