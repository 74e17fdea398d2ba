"""The console's pages through Streamlit's AppTest: sign-in, lockout, expiry, and what each role may see and do.
The pages call the library, so refusals and audit events are the library's own."""

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from streamlit.testing.v1 import AppTest

from appliance.db.tables import audit_checkpoint, audit_event
from appliance.identity.users import REFUSAL
from tests.conftest import PASSWORDS, audit_events, home_db, pw_file

pytestmark = pytest.mark.unit
APP = str(Path(__file__).resolve().parents[2] / "appliance" / "console" / "app.py")


def _open() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    return at


def _sign_in(name: str, password: str | None = None) -> AppTest:
    at = _open()
    at.text_input(key="login_user").input(name)
    at.text_input(key="login_password").input(PASSWORDS[name] if password is None else password)
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def _page(at: AppTest, title: str) -> AppTest:
    at.sidebar.radio(key="page").set_value(title).run()
    assert not at.exception, at.exception
    return at


def _newest_checkpoint(home: Path) -> int | None:
    with home_db(home).connect() as conn:
        return conn.execute(select(func.max(audit_checkpoint.c.tree_size))).scalar()


def _events(home: Path, action: str) -> list[tuple]:
    return audit_events(home, action, "actor", "outcome", "object_id", "reason", "details")


def test_sign_in_follows_the_users_passwords_and_audits_every_outcome(staff):
    wrong = _sign_in("oscar", "not-the-password")
    assert [e.value for e in wrong.error] == [REFUSAL]
    assert not wrong.sidebar.radio  # no page without a session
    at = _sign_in("oscar")
    assert not at.error and "**oscar** (officer)" in at.sidebar.markdown[0].value
    logins = _events(staff.home, "user.login")
    assert ("oscar", "denied", "oscar", "wrong password") == logins[-2][:4]
    assert logins[-1][:2] == ("oscar", "ok") and json.loads(logins[-1][4])["via"] == "console"
    at.button(key="logout").click().run()
    assert [w.value for w in at.warning] == ["Signed out."] and not at.sidebar.radio
    assert _events(staff.home, "user.logout")[-1][:2] == ("oscar", "ok")


def test_repeated_failures_lock_the_user_out(staff):
    for _ in range(5):
        _sign_in("erin", "wrong-password-again")
    locked = _sign_in("erin")  # the right password, too late: told no more than for a wrong one
    assert locked.error and locked.error[0].value == REFUSAL
    assert _events(staff.home, "user.login")[-1][3] == "locked out"
    assert _events(staff.home, "user.lockout")[-1][:2] == ("erin", "denied")


def test_an_expired_session_or_a_disabled_user_is_sent_back_to_sign_in(staff):
    at = _sign_in("erin")
    session = at.session_state["session"]
    at.session_state["session"] = type(session)(session.id, session.user, datetime.now(UTC) - timedelta(seconds=1))
    at.run()
    assert [w.value for w in at.warning] == ["Your session expired; sign in again."] and not at.sidebar.radio
    at = _sign_in("erin")
    staff.login("alice")
    assert staff.cli("users", "disable", "erin").code == 0
    at.run()
    assert [w.value for w in at.warning] == ["User erin is disabled."]


@pytest.mark.parametrize(("user", "pages"), [
    ("alice", ["Overview", "Datasets", "Training", "Evaluations", "Artifacts", "Serving", "Playground", "Audit",
               "Users and tokens"]),
    ("erin", ["Overview", "Datasets", "Training", "Evaluations", "Artifacts", "Serving", "Playground"]),
    ("oscar", ["Overview", "Datasets", "Training", "Evaluations", "Artifacts", "Serving", "Playground", "Audit"]),
    ("ursula", ["Playground"]),
])
def test_each_role_sees_its_pages_and_every_page_renders(staff, user, pages):
    at = _sign_in(user)
    assert at.sidebar.radio(key="page").options == pages
    for title in pages:
        _page(at, title)
        assert [h.value for h in at.header] == [title] and not at.error, (title, [e.value for e in at.error])
    if user == "erin":  # engineers queue runs and upload data; officers do neither
        _page(at, "Training")
        assert at.button(key="FormSubmitter:queue-Check, plan and queue")
        _page(at, "Datasets")
        assert at.button(key="FormSubmitter:ingest-Ingest")
    if user == "oscar":
        _page(at, "Datasets")
        assert not [b for b in at.button if b.key == "FormSubmitter:ingest-Ingest"]


def test_the_audit_page_verifies_the_chain_exports_the_pack_and_copies_the_newest_checkpoint(staff):
    at = _page(_sign_in("oscar"), "Audit")
    assert at.dataframe  # the events table
    at.button(key="audit_verify").click().run()
    assert at.success and at.success[0].value.startswith("verified: ")
    at.button(key="audit_export").click().run()
    pack = at.session_state["evidence_pack"]
    assert "verify_audit.py" in " ".join(zipfile.ZipFile(io.BytesIO(pack)).namelist())
    newest = _newest_checkpoint(staff.home)
    at.button(key="audit_checkpoint").click().run()  # the console never signs: it copies the signer's newest
    checkpoint = json.loads(at.session_state["checkpoint"])
    assert checkpoint["tree_size"] == newest and checkpoint["signature"]
    assert _newest_checkpoint(staff.home) == newest
    for action in ("audit.verify", "audit.export", "audit.checkpoint_copy"):
        assert _events(staff.home, action)[-1][:2] == ("oscar", "ok"), action

    # A broken chain is reported with the first bad sequence number (someone with file access rewrote a row).
    with home_db(staff.home).begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER audit_event_no_update")  # the trigger: DDL, driver level
        conn.execute(update(audit_event).where(audit_event.c.seq == 3).values(reason="rewritten"))
    at.button(key="audit_verify").click().run()
    shown = at.error[0].value
    assert shown.startswith("NOT verified: event 3 was modified") and "(first bad sequence number: " in shown


def test_users_and_tokens_are_managed_by_the_admin_alone(staff):
    at = _page(_sign_in("alice"), "Users and tokens")
    at.text_input(key="user_name").input("victor")
    at.selectbox(key="user_role").set_value("engineer")
    at.text_input(key="user_password").input("Tq8#mz4Lw-engineer-chair")
    at.button(key="FormSubmitter:add_user-Add user").click().run()
    assert [s.value for s in at.success] == ["user victor added as engineer"]
    at.text_input(key="user_name").input("weak")
    at.text_input(key="user_password").input("short")
    at.button(key="FormSubmitter:add_user-Add user").click().run()
    assert at.error and "password" in at.error[0].value.lower()
    at.selectbox(key="token_user").set_value("victor")
    at.button(key="token_create").click().run()
    secret = at.code[0].value
    assert secret.startswith("apl_") and "copy it now" in at.success[0].value
    from appliance.config import load_settings
    from appliance.db import connect
    from appliance.identity import tokens

    user, _ = tokens.resolve(connect(load_settings()), secret)
    assert user.name == "victor"
    assert _events(staff.home, "user.create")[-1][:3] == ("alice", "ok", "victor")
    # Another role cannot reach the page, and the library refuses it regardless of the page list.
    erin = _sign_in("erin")
    assert "Users and tokens" not in erin.sidebar.radio(key="page").options
    from appliance.context import Actor, Context
    from appliance.errors import PermissionDenied
    from appliance.identity.users import add_user

    engineer = Context(load_settings(), connect(load_settings())).acting_as(Actor("erin", "engineer", "session"))
    with pytest.raises(PermissionDenied):  # what the page would call, called as erin
        add_user(engineer, "mallory", "admin", "a long enough password 1")
    with pytest.raises(PermissionDenied):
        tokens.create(engineer, "victor")
    assert _events(staff.home, "users.manage")[-1][:3] == ("erin", "denied", "mallory")


def test_the_console_runs_headless_on_loopback_with_xsrf_on_and_usage_statistics_off():
    from appliance.cli.console import streamlit_command

    command = streamlit_command("127.0.0.1", 8501)
    flags = dict(zip(command[5::2], command[6::2], strict=True))
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("appliance/console/app.py")
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8501"
    assert flags["--server.enableXsrfProtection"] == "true" and flags["--browser.gatherUsageStats"] == "false"
    assert flags["--server.headless"] == "true" and flags["--global.developmentMode"] == "false"


def test_a_console_on_a_name_instead_of_an_address_is_refused(staff):
    result = staff.cli("console", "--host", "console.example.org")
    assert result.code != 0 and "give an IP address" in result.err


def test_a_one_time_password_signs_in_to_one_form_only(staff, tmp_path):
    staff.login("alice")
    (tmp_path / "vera.first").write_text("Given-by-alice-5x\n")
    assert staff.cli("users", "add", "vera", "--role", "officer", "--password-file", tmp_path / "vera.first").code == 0
    at = _sign_in("vera", "Given-by-alice-5x")
    assert at.title[0].value == "Choose your password" and not at.sidebar.radio  # no page, no menu
    at.text_input(key="passwd_old").input("Given-by-alice-5x")
    at.text_input(key="passwd_new").input("Her-own-choice-6y")
    at.text_input(key="passwd_confirm").input("Her-own-choice-7z")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["New password: the two new passwords differ"]
    at.text_input(key="passwd_confirm").input("Her-own-choice-6y")
    at.button[0].click().run()
    assert not at.exception and "**vera** (officer)" in at.sidebar.markdown[0].value
    assert _events(staff.home, "user.passwd")[-1][:3] == ("vera", "ok", "vera")


def test_a_password_changed_elsewhere_ends_the_console_session(staff):
    """`passwd` on the command line ends the person's other sessions, the console's among them."""
    at = _sign_in("oscar", PASSWORDS["oscar"])
    assert "**oscar** (officer)" in at.sidebar.markdown[0].value
    import time

    time.sleep(1.1)  # the change's time is kept to the second
    staff.login("oscar")
    new = staff.home.parent / "secrets" / "oscar.new"
    new.write_text("A-new-one-for-him-8w-kept\n")
    changed = staff.cli("passwd", "--old-password-file", pw_file(staff.home, "oscar"), "--new-password-file", new)
    assert changed.code == 0
    at.run()
    assert [w.value for w in at.warning] == ["Your password was changed; sign in again."] and not at.sidebar.radio
