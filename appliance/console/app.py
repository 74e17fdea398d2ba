"""The console's Streamlit script: `appliance console` runs it. Sign-in first; then the pages the role may see."""

from __future__ import annotations

import os

import streamlit as st

from appliance.console import auth, views
from appliance.console.widgets import shown_errors
from appliance.context import Context
from appliance.errors import ApplianceError


@st.cache_resource
def _system(home: str | None, database: str | None) -> Context:
    """One connection pool per home and database (the arguments are the cache key)."""
    from appliance import offline
    from appliance.config import load_settings
    from appliance.db import connect

    offline.enforce()
    settings = load_settings()
    # The signer processes sign audit checkpoints; on an install this one cannot read the passphrase either.
    return Context(settings, connect(settings)).not_signing()


def _login(ctx: Context, notice: str) -> None:
    st.title("Appliance console")
    if notice:
        st.warning(notice)
    with st.form("login"):
        name = st.text_input("User", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        try:
            st.session_state["session"] = auth.sign_in(ctx, name, password)
        except ApplianceError as exc:
            st.error(str(exc))
            return
        st.session_state.pop("notice", None)
        st.rerun()


def _new_password(ctx: Context) -> None:
    """A password set by someone else works once: nothing else is shown until the user chooses their own."""
    st.title("Choose your password")
    st.info(f"The password of {ctx.actor.user} was set by someone else; choose your own to continue.")
    with st.form("passwd"):
        old = st.text_input("Current password", type="password", key="passwd_old")
        new = st.text_input("New password", type="password", key="passwd_new")
        confirm = st.text_input("New password again", type="password", key="passwd_confirm")
        submitted = st.form_submit_button("Change password")
    if submitted:
        with shown_errors():
            auth.change_password(ctx, old, new, confirm)
            # The change ends every other session of theirs, the console's included; this one goes on.
            st.session_state["session"] = auth.renewed(st.session_state["session"])
            st.success("Password changed.")
            st.rerun()


def main() -> None:
    st.set_page_config(page_title="Appliance console", layout="wide")
    system = _system(os.environ.get("APPLIANCE_HOME"), os.environ.get("APPLIANCE_DATABASE_URL"))
    session = st.session_state.get("session")
    actor = None
    if session is not None:
        actor, why = auth.actor_of(system, session)
        if actor is None:
            st.session_state.clear()
            st.session_state["notice"] = why
    if actor is None:
        _login(system, st.session_state.get("notice", ""))
        return
    ctx = system.acting_as(actor)
    if actor.must_change_password:
        _new_password(ctx)
        return
    available = views.pages_for(actor.role)
    with st.sidebar:
        st.markdown(f"**{actor.user}** ({actor.role})")
        st.caption(f"session ends {session.expires_at:%Y-%m-%d %H:%M} UTC")
        title = st.radio("Page", [p.title for p in available], key="page")
        if st.button("Sign out", key="logout"):
            auth.sign_out(system, session, actor)
            st.session_state.clear()
            st.session_state["notice"] = "Signed out."
            st.rerun()
    page = next(p for p in available if p.title == title)
    st.header(page.title)
    with shown_errors():
        page.render(ctx)


main()
