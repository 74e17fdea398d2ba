"""The console on a copy of the integration home after training (a trained, evaluated and released adapter):
its pages show the pipeline's real records, and an officer's decision prepared in the console runs the library's
checks (four-eyes rule and audit event included); only the officer's own key, in their own process, makes it.
A copy, so the serving tests still find the home as training left it."""

import shlex
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import PASSWORDS, audit_events, run_appliance
from tests.integration.conftest import copy_lab

pytestmark = pytest.mark.integration
APP = str(Path(__file__).resolve().parents[2] / "appliance" / "console" / "app.py")


@pytest.fixture(scope="module")
def copied(lab, tmp_path_factory):
    """A copy of the lab's home with two more signed artifacts of `triage`, packaged and signed by erin."""
    dst = tmp_path_factory.mktemp("console")
    return dst, copy_lab(lab, dst, ("console-one", "console-two"))


@pytest.fixture
def console(copied, monkeypatch):
    dst, env = copied
    for key in ("APPLIANCE_HOME", "APPLIANCE_KEY_PASSPHRASE_FILE", "APPLIANCE_SESSION_FILE"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("APPLIANCE_DATABASE_URL", raising=False)

    def sign_in(name: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        at.text_input(key="login_user").input(name)
        at.text_input(key="login_password").input(PASSWORDS[name])
        at.button[0].click().run()
        assert not at.exception and not at.error, (at.exception, at.error)
        return at

    def page(at: AppTest, title: str) -> AppTest:
        at.sidebar.radio(key="page").set_value(title).run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        return at

    return dst, env, sign_in, page


def _events(dst: Path, action: str) -> list[tuple]:
    return audit_events(dst / "home", action, "actor", "outcome", "object_id", "reason")


def test_the_pages_show_the_pipelines_records(console):
    _, _, sign_in, page = console
    at = page(sign_in("oscar"), "Overview")
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["approved"]) >= 1 and int(metrics["training runs"]) >= 1, metrics
    at = page(at, "Datasets")
    at.selectbox(key="dataset_ref").set_value("helpdesk@v1").run()
    assert any("Personal data found" in m.value for m in at.markdown)
    assert any("- exact duplicates: " in m.value for m in at.markdown)  # the CLI's own lint summary
    at = page(at, "Training")
    at.selectbox(key="run_name").set_value("triage").run()
    assert any(m.value.startswith("**triage**: succeeded, step 60 of 60") for m in at.markdown)
    at = page(at, "Evaluations")
    # The verdict comes first, then each gate and base against adapter, as charts and as rounded figures.
    picked = at.selectbox(key="eval_pick").value
    verdict = (at.success or at.warning or at.error)[0].value
    assert verdict.startswith("Gates passed" if picked.passed else "Gates failed"), verdict
    gates = next(d.value for d in at.dataframe if "gate" in d.value.columns)
    assert set(gates["status"]) <= {"pass", "fail", "n/a"} and len(gates) >= 3, gates
    task = next(d.value for d in at.dataframe if "metric" in d.value.columns and "adapter" in d.value.columns)
    numbers = [v for v in list(task["base"]) + list(task["adapter"]) if isinstance(v, float)]
    assert numbers and all(round(v, 3) == v for v in numbers), task  # no 0.020000000000000018
    assert len(at.get("vega_lite_chart")) >= 2  # task and forgetting, base against adapter
    advice = next(d.value for d in at.dataframe if "recommendation" in d.value.columns)  # from the advise test
    assert advice.loc[advice["dataset"] == "helpdesk@v1", "recommendation"].tolist() == ["fine-tuning"], advice
    assert not [b for b in at.button if (b.key or "").startswith("FormSubmitter:advise")]  # officers do not run it
    at = page(at, "Artifacts")
    at.selectbox(key="artifact_name").set_value("console-one").run()
    at.button(key="verify_artifact").click().run()
    assert [s.value for s in at.success] == ["artifact console-one: verified"]


def test_the_console_prepares_an_approval_that_only_the_officers_own_key_makes(console):
    dst, env, sign_in, page = console
    erin = page(sign_in("erin"), "Artifacts")  # an engineer sees the decision but not the buttons
    assert not [b for b in erin.button if b.key.startswith("decide_")]
    assert "Only an officer approves" in erin.info[0].value

    at = page(sign_in("oscar"), "Artifacts")
    at.selectbox(key="artifact_name").set_value("console-one").run()
    at.button(key="decide_approve").click().run()
    assert [e.value for e in at.error] == ["give a reason; it is kept in the audit trail"]
    at.text_input(key="decision_reason").input("Reviewed in the console")
    at.button(key="decide_approve").click().run()
    assert [s.value for s in at.success] == ["Every check passes. Sign the decision with your own key from your "
                                             "terminal:"], [e.value for e in at.error]
    command = next(c.value for c in at.code if c.value.startswith("appliance "))
    assert command == "appliance approve console-one --reason 'Reviewed in the console'"
    assert not [e for e in _events(dst, "artifact.approve") if e[2] == "console-one"]  # prepared, not made
    officer = {**env, "APPLIANCE_SESSION_FILE": str(dst / "oscar-session")}
    assert run_appliance("login", "oscar", "--password-file", dst / "oscar.pw", env=officer).returncode == 0
    made = run_appliance(*shlex.split(command)[1:], env=officer)
    assert made.returncode == 0, made.stderr
    assert _events(dst, "artifact.approve")[-1] == ("oscar", "ok", "console-one", "Reviewed in the console")
    at = page(at, "Artifacts")
    at.selectbox(key="artifact_name").set_value("console-one").run()
    signed = next(d.value for d in at.dataframe if "stands" in d.value.columns)
    assert list(signed["decision"]) == ["package", "sign", "approve"] and set(signed["stands"]) == {"yes"}, signed

    # erin packaged and signed console-two; made an officer, she still may not approve it.
    alice = {**env, "APPLIANCE_SESSION_FILE": str(dst / "alice-session")}
    assert run_appliance("login", "alice", "--password-file", dst / "alice.pw", env=alice).returncode == 0
    assert run_appliance("users", "set-role", "erin", "officer", env=alice).returncode == 0
    at = page(sign_in("erin"), "Artifacts")
    at.selectbox(key="artifact_name").set_value("console-two").run()
    at.text_input(key="decision_reason").input("my own work")
    at.button(key="decide_approve").click().run()
    assert at.error and "four-eyes rule (account): erin" in at.error[0].value, [e.value for e in at.error]
    assert _events(dst, "artifact.approve")[-1][:3] == ("erin", "denied", "console-two")
