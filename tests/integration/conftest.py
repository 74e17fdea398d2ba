"""The integration tier's shared home: one trained, evaluated and released help-desk adapter serves the
training, release and serving tests (the serving tests run after the training module; see tests/conftest.py)."""

import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE, personal_env, run_appliance, write_password_files

ROOT = Path(__file__).resolve().parents[2]


OFFLINE = ("unshare", "-n")  # a network namespace with nothing in it: no route anywhere, not even loopback's peers


@pytest.fixture(scope="session")
def lab_setup(tmp_path_factory):
    """A home with the embedded model imported (by the admin) and the help-desk example ingested under an
    installed scrub policy that plants canaries; every account past its first login (`passwd`); erin (engineer)
    logged in. Every step runs under `unshare -n`, so setting up proves the appliance needs no network. Returns
    the folder, the environment and each step's result (the embedded-model tests read them)."""
    root = tmp_path_factory.mktemp("training")
    (root / "passphrase").write_text(PASSPHRASE + "\n")
    write_password_files(root)
    env = {"APPLIANCE_HOME": str(root / "home"), "APPLIANCE_DATABASE_URL": "", "APPLIANCE_TOKEN": "",
           "APPLIANCE_KEY_PASSPHRASE_FILE": str(root / "passphrase"), "APPLIANCE_SESSION_FILE": str(root / "session"),
           "APPLIANCE_POLICIES": str(_canary_policies(root)), **personal_env(root)}

    def first(name):
        return [(f"{name} first login", ("login", name, "--password-file", root / f"{name}.first")),
                (f"{name} passwd", ("passwd", "--old-password-file", root / f"{name}.first", "--new-password-file",
                                    root / f"{name}.pw"))]

    results = {}
    for key, args in (("init", ("init", "--admin", "alice", "--password-file", root / "alice.first")),
                      *first("alice"),
                      ("add engineer", ("users", "add", "erin", "--role", "engineer", "--password-file",
                                        root / "erin.first")),
                      ("add officer", ("users", "add", "oscar", "--role", "officer", "--password-file",
                                       root / "oscar.first")),
                      ("import", ("models", "import", "--embedded", "smollm2", "--json")),
                      *first("oscar"), *first("erin"),
                      ("doctor", ("doctor", "--json")),
                      ("ingest", ("data", "ingest", ROOT / "examples" / "helpdesk.jsonl", "--name", "helpdesk",
                                  "--model", "smollm2", "--json")),
                      ("chat", ("chat", "smollm2", "Name three primary colours.", "--max-tokens", "40", "--json"))):
        results[key] = run_appliance(*args, env=env, prefix=OFFLINE)
        assert results[key].returncode == 0, f"{key} failed offline:\n{results[key].stderr}"
    for name in ("oscar", "erin"):  # each enrols a personal signing key; the home's owner pins it; erin stays in
        for key, args in ((f"{name} login", ("login", name, "--password-file", root / f"{name}.pw")),
                          (f"{name} enroll", ("keys", "enroll"))):
            results[key] = run_appliance(*args, env=env, prefix=OFFLINE)
            assert results[key].returncode == 0, f"{key} failed offline:\n{results[key].stderr}"
        fingerprint = re.search(r"personal key ([0-9a-f]{64})", results[f"{name} enroll"].stdout).group(1)
        pinned = run_appliance("keys", "pin", fingerprint, env=env, prefix=OFFLINE)
        assert pinned.returncode == 0, pinned.stderr
    return root, env, results


@pytest.fixture(scope="session")
def lab(lab_setup):
    root, env, _ = lab_setup
    return root, env


def _canary_policies(root: Path) -> Path:
    """The installed policy folder of the lab: the shipped policies, the scrub policy planting canaries (one
    record for each of 1x, 5x and 20x, three controls)."""
    folder = root / "policies"
    shutil.copytree(ROOT / "policies", folder)
    text = (folder / "pii.yaml").read_text()
    for old, new in (("enabled: false", "enabled: true"), ("share: 0.05", "share: 0.15"),
                     ("per_repetition: 2", "per_repetition: 1"), ("controls: 10", "controls: 3")):
        assert old in text
        text = text.replace(old, new)
    (folder / "pii.yaml").write_text(text)
    return folder




def copy_lab(lab, dst: Path, artifacts: tuple[str, ...]) -> dict:
    """The lab's home copied into `dst` (the base model linked, each existing run's folder linked: read only
    there), with erin logged in and each of `artifacts` packaged from `triage` and signed by her. The serving
    tests still find the lab as training left it. Returns the copy's environment."""
    root, env = lab
    if run_appliance("artifacts", "show", "triage", env=env).returncode != 0:
        pytest.fail("these tests need the adapter the training tests release (run the integration tier)")
    home = dst / "home"
    home.mkdir(mode=0o700)
    for item in (root / "home").iterdir():
        if item.name == "models":
            (home / item.name).symlink_to(item)
        elif item.name == "runs":  # new runs get folders of their own here
            (home / "runs").mkdir(mode=0o700)
            for run in item.iterdir():
                (home / "runs" / run.name).symlink_to(run)
        elif item.name.startswith("appliance.db") or item.name == "run":
            continue
        elif item.is_dir():
            shutil.copytree(item, home / item.name, symlinks=True)
        else:
            shutil.copy2(item, home / item.name)
    with sqlite3.connect(root / "home" / "appliance.db") as src, sqlite3.connect(home / "appliance.db") as out:
        src.backup(out)  # the driver's online backup: a consistent copy of the file, not a query
    for name in ("passphrase", "alice.pw", "erin.pw", "oscar.pw", "ursula.pw"):
        shutil.copy2(root / name, dst / name)
    env = {**env, "APPLIANCE_HOME": str(home), "APPLIANCE_KEY_PASSPHRASE_FILE": str(dst / "passphrase"),
           "APPLIANCE_SESSION_FILE": str(dst / "session")}
    steps = [("login", "erin", "--password-file", dst / "erin.pw")]
    for name in artifacts:
        steps += [("package", "triage", "--name", name), ("sign", name)]
    for args in steps:
        result = run_appliance(*args, env=env)
        assert result.returncode == 0, f"{args}: {result.stderr[-2000:]}"
    return env
