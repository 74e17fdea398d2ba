"""The integration tier's shared home: one trained, evaluated and released help-desk adapter serves the
training, release and serving tests (the serving tests run after the training module; see tests/conftest.py)."""

from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE, PASSWORDS, run_appliance

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A home with the embedded model imported and the help-desk example ingested; erin (engineer) logged in."""
    root = tmp_path_factory.mktemp("training")
    for name, value in (("passphrase", PASSPHRASE), ("alice.pw", PASSWORDS["alice"]), ("erin.pw", PASSWORDS["erin"]),
                        ("oscar.pw", PASSWORDS["oscar"])):
        (root / name).write_text(value + "\n")
    env = {"APPLIANCE_HOME": str(root / "home"), "APPLIANCE_DATABASE_URL": "", "APPLIANCE_TOKEN": "",
           "APPLIANCE_KEY_PASSPHRASE_FILE": str(root / "passphrase"), "APPLIANCE_SESSION_FILE": str(root / "session")}
    for args in (("init", "--admin", "alice", "--password-file", root / "alice.pw"),
                 ("login", "alice", "--password-file", root / "alice.pw"),
                 ("users", "add", "erin", "--role", "engineer", "--password-file", root / "erin.pw"),
                 ("users", "add", "oscar", "--role", "officer", "--password-file", root / "oscar.pw"),
                 ("login", "erin", "--password-file", root / "erin.pw"),
                 ("models", "import", "--embedded", "smollm2"),
                 ("data", "ingest", ROOT / "examples" / "helpdesk.jsonl", "--name", "helpdesk", "--policy",
                  _canary_policy(root))):
        result = run_appliance(*args, env=env)
        assert result.returncode == 0, f"{args}: {result.stderr}"
    return root, env


def _canary_policy(root: Path) -> Path:
    """The shipped PII policy with canaries planted: one record for each of 1x, 5x and 20x, three controls."""
    text = (ROOT / "policies" / "pii.yaml").read_text()
    for old, new in (("enabled: false", "enabled: true"), ("share: 0.05", "share: 0.15"),
                     ("per_repetition: 2", "per_repetition: 1"), ("controls: 10", "controls: 3")):
        assert old in text
        text = text.replace(old, new)
    (root / "pii-canaries.yaml").write_text(text)
    return root / "pii-canaries.yaml"


