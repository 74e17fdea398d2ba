"""The console in a real browser: `appliance console` serving a copy of the trained integration home, Debian's
Chromium driven by Playwright. An officer signs in, walks every page and prepares an approval; an engineer
uploads and ingests a file, asks for advice on it, queues a run and resumes an interrupted one. Each page is
saved as a screenshot (into $APPLIANCE_SCREENSHOTS as well when it is set: `docs/screenshots` is made so)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORDS, audit_events, free_port, run_appliance
from tests.integration.conftest import copy_lab

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# As root in a container, with no GPU and no network: no sandbox, no background fetches of any kind.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions"]
# Each page with what it draws last, waited for before the screenshot.
PAGES = {"Overview": "Latest audit events", "Datasets": "Lineage", "Training": re.compile(r"step \d+ of \d+"),
         "Evaluations": "Advise: ", "Artifacts": "Decision", "Serving": "Gateway: ", "Playground": "API token",
         "Audit": "Verify the chain"}
TIMEOUT = 120_000  # ms; the first page that loads the scrubber or a model takes a while on two cores


@pytest.fixture(scope="module")
def console(lab, tmp_path_factory):
    """`appliance console` on a copy of the lab's home with one more signed artifact (browser-one) and one
    interrupted run (cut); yields the copy's folder, its environment and the console's address."""
    dst = tmp_path_factory.mktemp("browser")
    env = copy_lab(lab, dst, ("browser-one",))
    recipe = dst / "short.yaml"
    sft = (ROOT / "policies" / "recipes" / "smollm2-135m-lora-sft.yaml").read_text()
    recipe.write_text(sft.replace("max_steps: 60", "max_steps: 40").replace("checkpoint_every: 20",
                                                                             "checkpoint_every: 1"))
    exe = Path(sys.executable).with_name("appliance")
    training = subprocess.Popen([str(exe), "train", str(recipe), "--dataset", "helpdesk", "--name", "cut",
                                 "--framework", "trl"], env={**os.environ, **env}, stderr=subprocess.PIPE, text=True)
    for line in training.stderr:  # Ctrl-C after the second step: the run is recorded as interrupted
        if line.startswith("step 2/40"):
            training.send_signal(signal.SIGINT)
            break
    training.communicate(timeout=300)
    cut = json.loads(run_appliance("runs", "show", "cut", "--json", env=env).stdout)
    assert cut["status"] == "interrupted" and cut["error"] == "stopped by Ctrl-C or SIGINT", cut

    port = free_port()
    log = (dst / "console.log").open("w")
    proc = subprocess.Popen([str(exe), "console", "--port", str(port)], env={**os.environ, **env}, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/_stcore/health", timeout=2).text == "ok":
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, (dst / "console.log").read_text()[-3000:]
        time.sleep(0.5)
    yield dst, env, url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()
    left = subprocess.run(["pgrep", "-f", f"server.port {port} "], capture_output=True, text=True).stdout.split()
    assert not left, f"the console's server outlived SIGTERM: {left}"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's Chromium is missing: `apt-get install -y chromium` (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where screenshots go; copied into $APPLIANCE_SCREENSHOTS at the end when it is set."""
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    wanted = os.environ.get("APPLIANCE_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        for png in folder.glob("*.png"):
            shutil.copy2(png, Path(wanted) / png.name)


def _sign_in(browser, url: str, name: str):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.set_default_timeout(TIMEOUT)
    page.goto(url)
    page.get_by_label("User", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORDS[name])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("stSidebar").get_by_text(f"{name}", exact=True).wait_for()
    return page


def _open(page, title: str):
    page.get_by_test_id("stSidebar").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).wait_for()
    _settled(page)
    return page


def _settled(page) -> None:
    """Wait until the script run that the last action started has finished."""
    page.wait_for_timeout(300)
    page.get_by_test_id("stStatusWidget").wait_for(state="detached")


def _choose(page, label: str, option: str) -> None:
    box = page.get_by_role("combobox", name=label, exact=True)
    choice = page.get_by_role("option", name=option, exact=True)
    # A click during a script rerun can land before the list is wired up, or the rerun can redraw the box and
    # take the open list (and the option) away: open the list and pick again until the pick takes.
    for attempt in range(5):
        box.scroll_into_view_if_needed()
        box.click()
        try:
            choice.click(timeout=10_000)
            break
        except Exception:
            if attempt == 4:
                raise
            page.keyboard.press("Escape")
            _settled(page)
    _settled(page)
    assert box.input_value() == option, (label, box.input_value())


def _events(dst: Path, action: str) -> list[tuple]:
    return audit_events(dst / "home", action, "actor", "outcome", "object_id", "reason")


def test_an_officer_walks_every_page_and_approves_in_the_browser(console, browser, shots):
    dst, env, url = console
    page = _sign_in(browser, url, "oscar")
    page.get_by_role("heading", name="Overview").wait_for()
    sidebar = page.get_by_test_id("stSidebar")
    assert [t.strip() for t in sidebar.get_by_role("radiogroup").inner_text().splitlines() if t.strip()] == list(PAGES)
    for title, last in PAGES.items():
        _open(page, title)
        page.get_by_text(last).first.wait_for()
        _settled(page)
        assert page.get_by_test_id("stException").count() == 0, title
        if title == "Artifacts":
            _choose(page, "Artifact", "triage")
        page.screenshot(path=str(shots / f"console-{title.lower()}.png"))

    _open(page, "Artifacts")
    _choose(page, "Artifact", "browser-one")
    page.get_by_label("Reason (kept in the audit trail)", exact=True).fill("Reviewed in the browser")
    page.get_by_label("Reason (kept in the audit trail)", exact=True).press("Enter")
    _settled(page)
    page.get_by_role("button", name="Prepare approve").click()
    page.get_by_text("Every check passes. Sign the decision with your own key").wait_for()
    page.screenshot(path=str(shots / "console-approval.png"))
    command = page.get_by_test_id("stCode").filter(has_text="appliance approve").inner_text().strip()
    assert command == "appliance approve browser-one --reason 'Reviewed in the browser'", command
    officer = {**env, "APPLIANCE_SESSION_FILE": str(dst / "oscar-session")}
    assert run_appliance("login", "oscar", "--password-file", dst / "oscar.pw", env=officer).returncode == 0
    made = run_appliance(*shlex.split(command)[1:], env=officer)
    assert made.returncode == 0, made.stderr
    assert _events(dst, "artifact.approve")[-1] == ("oscar", "ok", "browser-one", "Reviewed in the browser")
    shown = json.loads(run_appliance("artifacts", "show", "browser-one", "--json", env=env).stdout)
    assert shown["status"] == "approved" and shown["decided_by"] == "oscar"

    _open(page, "Audit")
    page.get_by_role("button", name="Verify the chain").click()
    page.get_by_text("verified: ", exact=False).first.wait_for()
    page.screenshot(path=str(shots / "console-audit.png"))
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    assert _events(dst, "user.logout")[-1][:2] == ("oscar", "ok")
    for png in shots.glob("console-*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, png


def test_an_engineer_uploads_ingests_advises_queues_and_resumes(console, browser, shots, tmp_path):
    dst, env, url = console
    upload = tmp_path / "tickets.jsonl"
    upload.write_text("".join((ROOT / "examples" / "helpdesk.jsonl").read_text().splitlines(keepends=True)[:40])
                      + "not json at all\n")
    before = set(Path(tempfile.gettempdir()).glob("console-upload-*"))
    page = _sign_in(browser, url, "erin")
    _open(page, "Datasets")
    page.locator("input[type=file]").set_input_files(str(upload))
    page.get_by_label("Dataset name", exact=True).fill("tickets")
    page.get_by_role("button", name="Ingest").click()
    page.get_by_text("ingested tickets@v1: 40 records, 1 rejected").wait_for()
    _settled(page)
    page.screenshot(path=str(shots / "console-ingest.png"))
    shown = json.loads(run_appliance("data", "show", "tickets", "--json", env=env).stdout)
    assert shown["records"] == 40 and shown["rejected"] == 1 and shown["created_by"] == "erin"
    assert set(Path(tempfile.gettempdir()).glob("console-upload-*")) == before  # the raw upload is gone

    _open(page, "Evaluations")
    _choose(page, "Dataset version", "tickets@v1")
    page.get_by_role("button", name="Advise").click()
    page.get_by_text("tickets@v1: ", exact=False).first.wait_for()
    assert _events(dst, "eval.advise")[-1][:3] == ("erin", "ok", "tickets@v1")

    _open(page, "Training")
    _choose(page, "Recipe", "smollm2-135m-lora-sft.yaml")
    _choose(page, "Dataset", "tickets")
    page.get_by_label("Run name (optional)", exact=True).fill("from-browser")
    page.get_by_label("Max steps (0: the recipe's)", exact=True).fill("2")
    page.get_by_role("button", name="Check, plan and queue").click()
    page.get_by_text("run from-browser queued for", exact=False).wait_for()
    queued = json.loads(run_appliance("runs", "show", "from-browser", "--json", env=env).stdout)
    assert queued["status"] == "queued" and queued["max_steps"] == 2 and queued["created_by"] == "erin"

    _choose(page, "Run", "cut")
    page.get_by_role("button", name="Resume from the newest checkpoint").click()
    page.get_by_text("run cut queued for the worker").wait_for()
    page.screenshot(path=str(shots / "console-training.png"))
    assert json.loads(run_appliance("runs", "show", "cut", "--json", env=env).stdout)["status"] == "queued"
    assert [e[0] for e in _events(dst, "train.queue")[-2:]] == ["erin", "erin"]
