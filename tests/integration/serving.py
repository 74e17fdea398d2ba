"""Shared by the serving test modules: releasing an adapter, starting `appliance serve` on a lab home under a
tightened serving policy, and reading what it wrote to the audit trail."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import audit_events, free_port, run_appliance

ROOT = Path(__file__).resolve().parents[2]
SFT = ROOT / "policies" / "recipes" / "smollm2-135m-lora-sft.yaml"
TICKET = "My laptop will not turn on after the update. Please help, it is urgent."


def ok(result) -> str:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def signed_in(root: Path, env: dict, name: str) -> dict:
    person = {**env, "APPLIANCE_SESSION_FILE": str(root / f"{name}-session")}
    ok(run_appliance("login", name, "--password-file", root / f"{name}.pw", env=person))
    return person


def release(root: Path, env: dict, officer: dict, run: str, artifact: str | None = None) -> None:
    """Package, sign and approve a run that has been evaluated (overriding failed gates as the officer)."""
    evaluated = json.loads(ok(run_appliance("evals", "show", run, "--json", env=env)))
    if not evaluated["releasable"]:
        ok(run_appliance("evals", "override", run, "--reason", "test adapter; canaries only", env=officer))
    name = ("--name", artifact) if artifact else ()
    ok(run_appliance("package", run, *name, env=env))
    ok(run_appliance("sign", artifact or run, env=env))
    ok(run_appliance("approve", artifact or run, "--reason", "serving test", env=officer))


def trained(root: Path, env: dict, officer: dict) -> None:
    """The `triage` run the training tests leave; trained (short), evaluated and released when run alone."""
    if run_appliance("artifacts", "show", "triage", "--json", env=env).returncode != 0:
        ok(run_appliance("train", SFT, "--dataset", "helpdesk", "--name", "triage", "--max-steps", "6",
                         "--framework", "trl", env=env))
        run_appliance("eval", "triage", env=env)
        release(root, env, officer, "triage")


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def serving(root: Path, env: dict, folder: Path, edits: dict[str, str], log_name: str = "gateway.log"):
    """`appliance serve` on the lab home under a copy of its installed policies with `edits` made to
    serving.yaml; yields {url, log, proc}. As on an install, it cannot read the key passphrase."""
    shutil.copytree(root / "policies", folder)
    text = (ROOT / "policies" / "serving.yaml").read_text()
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    (folder / "serving.yaml").write_text(text)
    port = free_port()
    log = root / log_name
    exe = Path(sys.executable).with_name("appliance")
    with open(log, "w") as out:
        proc = subprocess.Popen([str(exe), "serve", "--port", str(port)],
                                env={**os.environ, **env, "APPLIANCE_POLICIES": str(folder),
                                     "APPLIANCE_KEY_PASSPHRASE_FILE": "", "APPLIANCE_KEY_PASSPHRASE": ""},
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not ready(url):
        assert proc.poll() is None, log.read_text()[-3000:]
        if time.monotonic() > deadline:
            pytest.fail("the gateway did not become ready: " + log.read_text()[-3000:])
        time.sleep(0.3)
    try:
        yield {"url": url, "log": log, "proc": proc}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            assert not backend_pids(root), "the backend outlived the gateway"


def client(g: dict, token: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=g["url"] + "/v1", api_key=token or g["tokens"]["all"], max_retries=0, timeout=120)


def backend_pids(root: Path) -> list[int]:
    """llama-server instances of this lab home (their sockets live in its private run folder)."""
    found = subprocess.run(["pgrep", "-f", f"llama-server .*--host {root}/home/run/llama-server/"],
                           capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def audit(root: Path, action: str) -> list[dict]:
    rows = audit_events(root / "home", action, "actor", "outcome", "object_id", "object_sha256", "reason", "details")
    return [{"actor": r[0], "outcome": r[1], "object": r[2], "sha256": r[3], "reason": r[4],
             "details": json.loads(r[5])} for r in rows]


def wait(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    return check()
