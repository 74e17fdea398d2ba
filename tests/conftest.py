"""Shared fixtures: an isolated APPLIANCE_HOME, the CLI run in-process, and the database backends."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

TIERS = {"unit", "integration", "browser", "ansible", "postgres", "multiuser"}
REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    """Every test belongs to a tier, so `make test-fast` and CI select what they mean to."""
    unmarked = [item.nodeid for item in items if not TIERS.intersection(m.name for m in item.iter_markers())]
    if unmarked:
        raise pytest.UsageError(f"tests without a tier marker ({', '.join(sorted(TIERS))}): {unmarked[:5]}")
    # The console and serving tests use the adapter the training tests release (one trained adapter for the
    # whole tier); serving last, since it revokes it.
    late = ("tests/integration/test_console.py", "tests/integration/test_console_browser.py",
            "tests/integration/test_people.py", "tests/integration/test_serving.py",
            "tests/integration/test_serving_api.py")
    items.sort(key=lambda item: next((i + 1 for i, f in enumerate(late) if item.nodeid.startswith(f)), 0))


# A test counts toward the first of these tiers that it carries (a unit test on PostgreSQL is the postgres tier's).
_TIER_ORDER = ("postgres", "browser", "ansible", "multiuser", "integration", "unit")
_tier_seconds: dict[str, float] = {}
_tier_tests: dict[str, int] = {}


def pytest_runtest_logreport(report):
    tier = next((t for t in _TIER_ORDER if t in report.keywords), "other")
    _tier_seconds[tier] = _tier_seconds.get(tier, 0.0) + report.duration
    if report.when == "call":
        _tier_tests[tier] = _tier_tests.get(tier, 0) + 1


def pytest_terminal_summary(terminalreporter):
    """Each tier's time (setup, call and teardown of its tests), beside the slowest tests (`--durations`)."""
    if not _tier_seconds:
        return
    terminalreporter.section("time per tier")
    for tier in sorted(_tier_seconds, key=_tier_seconds.get, reverse=True):
        terminalreporter.write_line(f"{tier:<12} {_tier_seconds[tier]:8.1f} s  {_tier_tests.get(tier, 0):4d} tests")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


PASSWORDS = {"alice": "Kv9!xq2Lm-admin-staple", "erin": "R4#pw8Zt-engineer-lamp", "oscar": "M2$ty6Qs-officer-door",
             "ursula": "B7%nc3Wd-user-window"}
# The one-time password each account is created with; the first login replaces it with PASSWORDS[name].
FIRST_PASSWORDS = {name: f"first-{pw[::-1]}" for name, pw in PASSWORDS.items()}
ROLES = {"alice": "admin", "erin": "engineer", "oscar": "officer", "ursula": "user"}
PASSPHRASE = "correct horse battery staple 42"
PERSONAL_PASSPHRASE = "my own key, my own decision 7"  # every test person's personal signing key


def personal_env(folder: Path) -> dict[str, str]:
    """Where the test people keep their personal signing keys (one folder, a key a person) and the passphrase
    file their own processes read."""
    (folder / "personal-passphrase").write_text(PERSONAL_PASSPHRASE + "\n")
    return {"APPLIANCE_PERSONAL_KEYS": str(folder / "personal-keys"),
            "APPLIANCE_PERSONAL_PASSPHRASE_FILE": str(folder / "personal-passphrase")}


def personal_keys(ctx, folder: Path, *argv: str):
    """`ctx` with the acting person's own signing key, as their process holds it for the command line `argv`."""
    import dataclasses

    from appliance.keys.personal import LocalPersonalKeys

    folder.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(ctx, personal=LocalPersonalKeys(personal_env(folder), list(argv)))


def enrolled(ctx, folder: Path) -> str:
    """The acting person (officer or engineer) enrols a personal key and the home's owner pins it; its key id."""
    from appliance.keys import enrolment

    entry = enrolment.enroll(personal_keys(ctx, folder, "keys", "enroll"))
    return enrolment.pin(ctx.settings, ctx.engine, entry.key_id).key_id


def enroll_and_pin(cli, name: str, password_file: Path) -> str:
    """NAME logs in and enrols a personal key; the home's owner (root, on an install) pins it. Its fingerprint."""
    assert cli("login", name, "--password-file", password_file).code == 0
    result = cli("keys", "enroll")
    assert result.code == 0, result.err
    fingerprint = re.search(r"enrolled personal key ([0-9a-f]{64})", result.out).group(1)
    result = cli("keys", "pin", fingerprint)
    assert result.code == 0, result.err
    return fingerprint


def write_password_files(folder: Path) -> None:
    """NAME.pw (the password each person chooses) and NAME.first (the one-time one they are given)."""
    for name, pw in PASSWORDS.items():
        (folder / f"{name}.pw").write_text(pw + "\n")
        (folder / f"{name}.first").write_text(FIRST_PASSWORDS[name] + "\n")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh, not yet initialised APPLIANCE_HOME on SQLite, with a key passphrase file and a private
    session file for this test."""
    path = tmp_path / "home"
    monkeypatch.setenv("APPLIANCE_HOME", str(path))
    monkeypatch.delenv("APPLIANCE_DATABASE_URL", raising=False)
    monkeypatch.delenv("APPLIANCE_TOKEN", raising=False)
    monkeypatch.delenv("APPLIANCE_KEY_PASSPHRASE", raising=False)
    secret = tmp_path / "secrets"
    secret.mkdir(mode=0o700)
    (secret / "passphrase").write_text(PASSPHRASE + "\n")
    write_password_files(secret)
    monkeypatch.setenv("APPLIANCE_KEY_PASSPHRASE_FILE", str(secret / "passphrase"))
    monkeypatch.setenv("APPLIANCE_SESSION_FILE", str(tmp_path / "session.json"))
    for key, value in personal_env(secret).items():
        monkeypatch.setenv(key, value)
    return path


def installed_policies(folder: Path, edits: dict[str, dict[str, str]] | None = None) -> Path:
    """A copy of the shipped policies in `folder`, as root would install them, with `edits`: per policy kind,
    {old text: new text} replacements, each of which must apply (a shipped file that changed fails loudly)."""
    import shutil

    shutil.copytree(Path(__file__).resolve().parents[1] / "policies", folder)
    for kind, replacements in (edits or {}).items():
        path = folder / f"{kind}.yaml"
        content = path.read_text()
        for old, new in replacements.items():
            assert old in content, f"{path}: {old!r} is not in the shipped policy"
            content = content.replace(old, new)
        path.write_text(content)
    return folder


def token_secret(token: str) -> str:
    """The secret part of an API token, taken by its format `apl_<32 hex id>_<secret>` (a secret may hold '_')."""
    match = re.fullmatch(r"apl_([0-9a-f]{32})_(.+)", token)
    assert match, f"not an API token: {token[:8]}..."
    return match.group(2)


def home_db(home: Path):
    """A home's SQLite database as a test reads or alters it from outside: through `db/tables.py`, on connections
    of its own (no pool, SQLite's defaults), as another process would."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(f"sqlite:///{home / 'appliance.db'}", poolclass=NullPool)


def audit_events(home: Path, action: str, *columns: str) -> list[tuple]:
    """The home's audit events of `action`, oldest first, each as the tuple of `columns`."""
    from sqlalchemy import select

    from appliance.db.tables import audit_event as t

    with home_db(home).connect() as conn:
        rows = conn.execute(select(*(t.c[c] for c in columns)).where(t.c.action == action).order_by(t.c.seq))
        return [tuple(r) for r in rows]


def pw_file(home: Path, name: str) -> Path:
    return home.parent / "secrets" / f"{name}.pw"


def first_pw_file(home: Path, name: str) -> Path:
    return home.parent / "secrets" / f"{name}.first"


def first_login(cli, folder: Path, name: str) -> None:
    """Log in with the one-time password NAME.first and choose NAME.pw (`appliance passwd`)."""
    result = cli("login", name, "--password-file", folder / f"{name}.first")
    assert result.code == 0, result.err
    assert "appliance passwd" in result.out
    result = cli("passwd", "--old-password-file", folder / f"{name}.first", "--new-password-file",
                 folder / f"{name}.pw")
    assert result.code == 0, result.err


@dataclass
class Staff:
    home: Path
    cli: object

    def login(self, name: str) -> None:
        result = self.cli("login", name, "--password-file", pw_file(self.home, name))
        assert result.code == 0, result.err


def _build_staff(cli, home: Path) -> None:
    secrets = home.parent / "secrets"
    result = cli("init", "--admin", "alice", "--password-file", first_pw_file(home, "alice"))
    assert result.code == 0, result.err
    first_login(cli, secrets, "alice")
    for name in ("erin", "oscar", "ursula"):
        assert cli("login", "alice", "--password-file", pw_file(home, "alice")).code == 0
        result = cli("users", "add", name, "--role", ROLES[name], "--password-file", first_pw_file(home, name))
        assert result.code == 0, result.err
        first_login(cli, secrets, name)
    for name in ("oscar", "erin"):  # the officer's and the engineer's personal keys, pinned
        enroll_and_pin(cli, name, pw_file(home, name))
    result = cli("login", "erin", "--password-file", pw_file(home, "erin"))
    assert result.code == 0, result.err


@pytest.fixture(scope="session")
def staff_template(tmp_path_factory) -> Path:
    """The staff home built once (init, four accounts past their first login: a few seconds of Argon2); each
    test that wants it gets a copy."""
    import contextlib
    import io

    from appliance.cli import main

    root = tmp_path_factory.mktemp("staff-template")
    (root / "secrets").mkdir(mode=0o700)
    (root / "secrets" / "passphrase").write_text(PASSPHRASE + "\n")
    write_password_files(root / "secrets")
    env = {"APPLIANCE_HOME": str(root / "home"), "APPLIANCE_KEY_PASSPHRASE_FILE": str(root / "secrets" / "passphrase"),
           "APPLIANCE_SESSION_FILE": str(root / "session.json"), **personal_env(root / "secrets")}

    def run(*args) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
        return CliResult(code, out.getvalue(), err.getvalue())

    with pytest.MonkeyPatch.context() as mp:
        for key in ("APPLIANCE_DATABASE_URL", "APPLIANCE_TOKEN", "APPLIANCE_KEY_PASSPHRASE"):
            mp.delenv(key, raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        _build_staff(run, root / "home")
        from appliance.audit.log import checkpoint_now
        from appliance.config import load_settings
        from appliance.context import Context
        from appliance.db import connect

        settings = load_settings()  # the tail anchored, as a running signer would leave it for whoever copies it
        checkpoint_now(Context(settings, connect(settings)))
    return root


@pytest.fixture
def staff_home(home, staff_template) -> Path:
    """An initialised home with admin alice, engineer erin, officer oscar and user ursula, each past their
    first login (PASSWORDS hold); erin logged in (APPLIANCE_SESSION_FILE). A copy of `staff_template`."""
    import shutil
    import sqlite3

    source = staff_template / "home"
    shutil.copytree(source, home, symlinks=True, ignore=shutil.ignore_patterns("appliance.db*"))
    with sqlite3.connect(source / "appliance.db") as src, sqlite3.connect(home / "appliance.db") as out:
        src.backup(out)  # the driver's online backup: a consistent copy of the file, not a query
    os.chmod(home / "appliance.db", 0o600)
    shutil.copy2(staff_template / "session.json", home.parent / "session.json")
    shutil.copytree(staff_template / "secrets" / "personal-keys", home.parent / "secrets" / "personal-keys")
    return home


@pytest.fixture
def staff(cli, staff_home) -> Staff:
    """`staff_home` with the CLI run in-process."""
    return Staff(staff_home, cli)


@pytest.fixture
def cli(capsys):
    """Run `appliance ARGS...` in this process; returns exit code, stdout and stderr."""
    from appliance.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_appliance(*args: str, env: dict | None = None, prefix: tuple[str, ...] = (), timeout: int = 600):
    """Run the installed `appliance` console script in a child process."""
    exe = Path(sys.executable).with_name("appliance")
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*prefix, str(exe), *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def run_inprocess(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`appliance ARGS` in this process with ENV over the environment: for loops of quick commands, which would
    otherwise each pay an interpreter start and the imports (several seconds)."""
    import contextlib
    import io

    from appliance.cli import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in (env or {}).items():
            mp.setenv(key, str(value))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def _postgres_url() -> str:
    url = os.environ.get("APPLIANCE_TEST_PG_URL")
    if not url:
        pytest.fail("APPLIANCE_TEST_PG_URL is not set: run the suite with `make test`, which starts PostgreSQL "
                    "(scripts/postgres.sh)")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path, monkeypatch) -> str:
    """A fresh empty database on each backend; APPLIANCE_DATABASE_URL points at it."""
    monkeypatch.setenv("APPLIANCE_KEY_PASSPHRASE", PASSPHRASE)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'home' / 'appliance.db'}"
        (tmp_path / "home").mkdir()
        monkeypatch.setenv("APPLIANCE_DATABASE_URL", url)
        monkeypatch.setenv("APPLIANCE_HOME", str(tmp_path / "home"))
        yield url
        return
    import sqlalchemy

    admin_url = _postgres_url()
    name = f"appliance_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # the server's databases: DDL, which SQLAlchemy does not express
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    monkeypatch.setenv("APPLIANCE_DATABASE_URL", url)
    monkeypatch.setenv("APPLIANCE_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    try:
        yield url
    finally:
        from appliance.db.engine import _engine_for

        _engine_for(url).dispose()
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
