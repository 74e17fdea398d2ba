"""People on one host, as an installed appliance has them: real OS accounts (a service account owning the home,
two people in its group), `appliance service` on its socket, and every person's command going through it.

Proves: each person acts as their own appliance user, recorded with their OS account as the kernel reports it;
nobody can read another's session, the database, the keys or the passphrase; a copied session file is refused;
a file the person cannot read is refused even when the service could read it (the service never opens it), and
the person's own private file is read by their own process; outputs are written as the person; one person with
two appliance accounts cannot approve what they packaged and signed. Needs root (it makes the OS accounts);
`.ci/run` runs as root. Uses a copy of the trained integration home (the adapter `triage`)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from appliance.db.tables import audit_event
from tests.conftest import PASSWORDS, home_db

pytestmark = pytest.mark.multiuser
REPO = Path(__file__).resolve().parents[2]
SERVICE, ANA, BEN = "apl-people-svc", "apl-people-ana", "apl-people-ben"
IDA = "apl-people-ida"  # the admin: a person of her own, so that nobody else's account was made from their own
PYTHON = "/usr/bin/python3"  # the host's own Python: this test's interpreter may sit where others cannot reach
EXAMPLE = REPO / "examples" / "helpdesk.jsonl"
GIVEN = {"ana-e": "One-time-given-1a", "ana-o": "One-time-given-2b", "ben-o": "One-time-given-3c"}


@dataclass
class Host:
    root: Path
    home: Path
    socket: Path
    launcher: Path
    service: subprocess.Popen

    def run(self, person: str, *args, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
        """`appliance ARGS` as PERSON, from their home folder, with the operators' environment only."""
        base = {"PATH": "/usr/bin:/bin", "HOME": f"/home/{person}", "LANG": "C.UTF-8",
                "APPLIANCE_HOME": str(self.home), "APPLIANCE_SOCKET": str(self.socket),
                "APPLIANCE_PERSONAL_PASSPHRASE_FILE": f"/home/{person}/personal.pass"}
        return subprocess.run(["runuser", "-u", person, "--", "env", "-i",
                               *[f"{k}={v}" for k, v in {**base, **(env or {})}.items()],
                               str(self.launcher), *map(str, args)],
                              capture_output=True, text=True, cwd=f"/home/{person}", timeout=timeout)

    def ok(self, person: str, *args, **kw) -> str:
        done = self.run(person, *args, **kw)
        assert done.returncode == 0, f"{person} {args}: {done.stdout[-1500:]}{done.stderr[-2500:]}"
        return done.stdout

    def as_root(self, *args) -> subprocess.CompletedProcess:
        """`appliance ARGS` as root, in its own process (as `keys pin` runs on an install)."""
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "APPLIANCE_HOME": str(self.home),
               "APPLIANCE_POLICIES": str(self.root / "etc" / "policies"), "APPLIANCE_TRUST_DIR": str(self.root / "etc")}
        return subprocess.run(["env", "-i", *[f"{k}={v}" for k, v in env.items()], str(self.launcher), *map(str, args)],
                              capture_output=True, text=True, timeout=300)

    def enroll(self, person: str) -> str:
        """The person enrols a personal key (made in their own process, in their home); root pins it."""
        self.give(person, "personal.pass", f"{person}'s own key passphrase\n")
        out = self.ok(person, "keys", "enroll")
        fingerprint = re.search(r"enrolled personal key ([0-9a-f]{64})", out).group(1)
        pinned = self.as_root("keys", "pin", fingerprint)
        assert pinned.returncode == 0, pinned.stdout + pinned.stderr
        return fingerprint

    def as_user(self, person: str, *argv) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", person, "--", *map(str, argv)], capture_output=True, text=True)

    def give(self, person: str, name: str, text: str, mode: int = 0o600) -> Path:
        path = Path(f"/home/{person}") / name
        path.write_text(text)
        os.chown(path, pwd.getpwnam(person).pw_uid, pwd.getpwnam(person).pw_gid)
        os.chmod(path, mode)
        return path

    def first_login(self, person: str, account: str, given: str, chosen: str) -> None:
        one_time = self.give(person, f"{account}.first", given + "\n")
        own = self.give(person, f"{account}.pw", chosen + "\n")
        assert "appliance passwd" in self.ok(person, "login", account, "--password-file", one_time)
        self.ok(person, "passwd", "--old-password-file", one_time, "--new-password-file", own)


def _sh(*argv) -> None:
    subprocess.run(list(map(str, argv)), check=True, capture_output=True, text=True)


def _remove_accounts() -> None:
    for person in (ANA, BEN, IDA, SERVICE):
        subprocess.run(["userdel", "-r", person], capture_output=True)
    subprocess.run(["groupdel", SERVICE], capture_output=True)


def _launcher(root: Path) -> Path:
    """`appliance` for the host's Python, reading this checkout and its environment's packages (nothing else of
    the host's Python), as an installed release's wrapper runs its own virtual environment."""
    site, checkout = Path(sysconfig.get_paths()["purelib"]), REPO
    probe = subprocess.run(["runuser", "-u", ANA, "--", PYTHON, "-S", "-c",
                            f"import os; os.listdir({str(site)!r}); os.listdir({str(checkout / 'appliance')!r})"],
                           capture_output=True, text=True)
    if probe.returncode != 0:  # the checkout lies under a folder others may not enter: show it elsewhere
        mount = root / "checkout"
        mount.mkdir()
        _sh("mount", "--bind", "-o", "ro", checkout, mount)
        site = mount / site.relative_to(checkout) if site.is_relative_to(checkout) else site
        checkout = mount
    launcher = root / "bin" / "appliance"
    launcher.parent.mkdir()
    launcher.parent.chmod(0o755)  # modes are set, never left to this process's umask
    launcher.write_text(f"#!{PYTHON} -S\nimport site, sys\nsys.path.insert(0, {str(checkout)!r})\n"
                        f"site.addsitedir({str(site)!r})\nfrom appliance.cli import entry\nentry()\n")
    launcher.chmod(0o755)
    return launcher


def _copy_home(lab_root: Path, home: Path, uid: int, gid: int) -> None:
    source = lab_root / "home"
    shutil.copytree(source, home, ignore=shutil.ignore_patterns("appliance.db*", "run"))
    with sqlite3.connect(source / "appliance.db") as src, sqlite3.connect(home / "appliance.db") as out:
        src.backup(out)  # the driver's online backup: a consistent copy of the file, not a query
        # The lab's accounts were used in-process by the lab's own account; here the admin's is handed to a person,
        # as an installer hands over the first admin: bound to the OS account of its next login.
        out.execute("UPDATE app_user SET os_user = NULL, os_uid = NULL WHERE name = 'alice'")
    for path in [home, *home.rglob("*")]:
        os.lchown(path, uid, gid)
        if not path.is_symlink():
            os.chmod(path, 0o700 if path.is_dir() else 0o600)


@pytest.fixture(scope="module")
def host(lab):
    if os.geteuid() != 0:
        pytest.fail("the multiuser tier creates OS accounts: run it as root (`.ci/run` does)")
    lab_root, lab_env = lab
    _remove_accounts()
    _sh("groupadd", "--system", SERVICE)
    _sh("useradd", "--system", "--gid", SERVICE, "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE)
    for person in (ANA, BEN, IDA):
        _sh("useradd", "--create-home", "--shell", "/bin/sh", "--groups", SERVICE, person)
        os.chmod(f"/home/{person}", 0o700)
    svc = pwd.getpwnam(SERVICE)
    root = Path(tempfile.mkdtemp(prefix="appliance-people-", dir="/var/tmp"))
    root.chmod(0o755)
    service = None
    try:
        launcher = _launcher(root)
        home = root / "home"
        _copy_home(lab_root, home, svc.pw_uid, svc.pw_gid)
        etc = root / "etc"
        shutil.copytree(lab_root / "policies", etc / "policies")  # root's, readable by all, writable by root only
        for pinned, trusted in (("audit-pinned.pem", "audit-keys.pem"), ("artifact-pinned.pem", "artifact-keys.pem"),
                                ("people-pinned.jsonl", "people-keys.jsonl")):  # what root pinned, in root's folder
            shutil.move(home / "keys" / pinned, etc / trusted)
        for path in [etc, *etc.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        passphrase = etc / "key-passphrase"
        shutil.copy(Path(lab_env["APPLIANCE_KEY_PASSPHRASE_FILE"]), passphrase)
        os.chown(passphrase, svc.pw_uid, 0)
        passphrase.chmod(0o400)
        run = root / "run"
        run.mkdir()
        os.chown(run, svc.pw_uid, svc.pw_gid)
        run.chmod(0o750)
        sock = run / "control.sock"
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "APPLIANCE_HOME": str(home),
               "APPLIANCE_POLICIES": str(etc / "policies"), "APPLIANCE_KEY_PASSPHRASE_FILE": str(passphrase),
               "APPLIANCE_TRUST_DIR": str(etc)}
        log = open(root / "service.log", "w")  # noqa: SIM115
        service = subprocess.Popen(["runuser", "-u", SERVICE, "--", "env", "-i",
                                    *[f"{k}={v}" for k, v in env.items()], str(launcher), "service", "--socket",
                                    str(sock)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert service.poll() is None, (root / "service.log").read_text()
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)
        yield Host(root, home, sock, launcher, service)
    finally:
        if service is not None:
            os.killpg(service.pid, signal.SIGTERM)
            service.wait(timeout=60)
        if (root / "checkout").is_mount():
            subprocess.run(["umount", str(root / "checkout")], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        _remove_accounts()


@pytest.fixture(scope="module")
def people(host):
    """ida signs in as the admin (alice) and gives ana an engineer and an officer account and ben an officer
    account, each with a one-time password that its owner replaces at the first login."""
    alice = host.give(IDA, "alice.pw", PASSWORDS["alice"] + "\n")
    host.ok(IDA, "login", "alice", "--password-file", alice)
    for account, role in (("ana-e", "engineer"), ("ana-o", "officer"), ("ben-o", "officer")):
        given = host.give(IDA, f"{account}.given", GIVEN[account] + "\n")
        host.ok(IDA, "users", "add", account, "--role", role, "--password-file", given)
    host.first_login(ANA, "ana-e", GIVEN["ana-e"], "Chosen-by-her-1x")
    host.first_login(BEN, "ben-o", GIVEN["ben-o"], "Chosen-by-him-2y")
    host.enroll(ANA)
    host.enroll(BEN)
    return host


def _db_events(host: Host, action: str, object_id: str | None = None) -> list[tuple]:
    e = audit_event.c
    query = select(e.actor, e.outcome, e.os_user, e.os_uid, e.os_source, e.reason, e.details) \
        .where(e.action == action).order_by(e.seq)
    with home_db(host.home).connect() as conn:
        return [tuple(r) for r in conn.execute(query if object_id is None else query.where(e.object_id == object_id))]


def test_each_person_acts_as_their_own_user_and_the_trail_names_their_os_account(people):
    ana, ben = pwd.getpwnam(ANA), pwd.getpwnam(BEN)
    assert json.loads(people.ok(ANA, "whoami", "--json"))["user"] == "ana-e"
    who = json.loads(people.ok(BEN, "whoami", "--json"))
    assert (who["user"], who["role"], who["os_user"], who["os_uid"]) == ("ben-o", "officer", BEN, ben.pw_uid)
    assert _db_events(people, "user.passwd", "ana-e")[-1][:5] == ("ana-e", "ok", ANA, ana.pw_uid, "peer")
    ida = pwd.getpwnam(IDA)
    assert _db_events(people, "user.create", "ana-o")[-1][:5] == ("alice", "ok", IDA, ida.pw_uid, "peer")
    refused = people.run(ANA, "users", "list")  # ana's engineer account may not manage users
    assert refused.returncode == 6 and "ana-e (engineer) may not users manage" in refused.stderr
    assert _db_events(people, "users.manage")[-1][:5] == ("ana-e", "denied", ANA, ana.pw_uid, "peer")
    log = people.ok(BEN, "audit", "log", "--actor", "ana-e", "--limit", "3")
    assert f"ana-e ({ANA}*)" in log


def test_nobody_reads_another_persons_session_nor_the_appliances_secrets(people):
    sessions = list(Path(f"/home/{ANA}/.local/state/appliance").glob("session-*.json"))
    assert len(sessions) == 1 and sessions[0].stat().st_mode & 0o777 == 0o600
    assert sessions[0].stat().st_uid == pwd.getpwnam(ANA).pw_uid
    for person in (ANA, BEN):
        for secret in (people.home / "appliance.db", people.root / "etc" / "key-passphrase",
                       next((people.home / "keys").glob("*.key.pem"))):
            assert people.as_user(person, "cat", secret).returncode != 0, (person, secret)
    assert people.as_user(BEN, "cat", sessions[0]).returncode != 0
    # Copied to ben (by someone who could), ana's session is worth nothing to him.
    stolen = Path(f"/home/{BEN}/.local/state/appliance") / sessions[0].name
    shutil.copy(sessions[0], stolen)
    os.chown(stolen, pwd.getpwnam(BEN).pw_uid, pwd.getpwnam(BEN).pw_gid)
    try:
        refused = people.run(BEN, "models", "list")
        assert refused.returncode == 6 and f"this session belongs to OS account {ANA}" in refused.stderr
        assert _db_events(people, "authenticate")[-1][2] == BEN
    finally:
        stolen.unlink()
    assert people.run(BEN, "login", "ben-o", "--password-file", f"/home/{BEN}/ben-o.pw").returncode == 0


def test_files_are_read_and_written_with_the_persons_own_permissions(people):
    ana = pwd.getpwnam(ANA)
    # A file the service account could read but ana cannot: refused, so the service never opened it itself.
    theirs = people.root / "service-only.jsonl"
    shutil.copy(EXAMPLE, theirs)
    os.chown(theirs, pwd.getpwnam(SERVICE).pw_uid, 0)
    theirs.chmod(0o600)
    refused = people.run(ANA, "data", "ingest", theirs, "--name", "stolen")
    assert refused.returncode == 2 and f"{theirs}: Permission denied" in refused.stderr
    assert "stolen" not in people.ok(ANA, "data", "list")
    # ana's own private file, in a home the service account cannot enter: read by ana's own process.
    own = people.give(ANA, "tickets.jsonl", "".join(EXAMPLE.read_text().splitlines(keepends=True)[:40]))
    assert people.as_user(SERVICE, "cat", own).returncode != 0
    assert "tickets@v1: 40 records" in people.ok(ANA, "data", "ingest", own, "--name", "tickets")
    out = Path(f"/home/{ANA}/eval.jsonl")
    people.ok(ANA, "data", "export", "tickets", "--split", "train", "--out", out)
    assert (out.stat().st_uid, out.stat().st_mode & 0o777) == (ana.pw_uid, 0o600)
    assert not list(out.parent.glob(".*.part"))
    served = people.run(ANA, "serve")
    assert served.returncode == 2 and "runs as the appliance's service account" in served.stderr


def test_one_person_with_two_accounts_cannot_approve_their_own_artifact(people):
    ana = pwd.getpwnam(ANA)
    people.ok(ANA, "package", "triage", "--name", "people-triage")
    people.ok(ANA, "sign", "people-triage")
    people.first_login(ANA, "ana-o", GIVEN["ana-o"], "Chosen-by-her-3z")  # ana's second account
    refused = people.run(ANA, "approve", "people-triage", "--reason", "looks fine to my other account")
    assert refused.returncode == 6
    assert (f"four-eyes rule (os-account): OS account {ANA} (uid {ana.pw_uid}) also packaged the artifact and "
            "signed the artifact") in refused.stderr, refused.stderr
    denial = _db_events(people, "artifact.approve", "people-triage")[-1]
    assert denial[:3] == ("ana-o", "denied", ANA) and json.loads(denial[6])["rule"] == "four-eyes:os-account"
    people.ok(BEN, "approve", "people-triage", "--reason", "reviewed by a second person")
    approved = _db_events(people, "artifact.approve", "people-triage")[-1]
    assert approved[:3] == ("ben-o", "ok", BEN)
    assert json.loads(approved[6])["os_account_rule"].startswith(f"checked: {BEN}")
    statement = json.loads(approved[6])["statement"]  # made by ben's own process with the key in his home
    from appliance.artifacts import decisions
    from appliance.config import load_settings
    from appliance.keys import people as pins

    trust = load_settings({"APPLIANCE_HOME": str(people.home), "APPLIANCE_TRUST_DIR": str(people.root / "etc")})
    found, why = decisions.check(statement, pins.read(trust), decision="approve", subject="people-triage",
                                 digest=json.loads(people.ok(BEN, "artifacts", "show", "people-triage", "--json"))[
                                     "manifest_digest"])
    assert why is None and (found.key.user, found.key.os_user, found.key.os_source) == ("ben-o", BEN, "peer")


def test_a_personal_key_lives_in_its_holders_home_and_signs_only_what_they_asked(people):
    key = Path(f"/home/{ANA}/.local/share/appliance/keys/ana-e.key.pem")
    assert key.stat().st_uid == pwd.getpwnam(ANA).pw_uid and key.stat().st_mode & 0o777 == 0o600
    assert json.loads(key.read_text())["kdf"] == "scrypt" and "ENCRYPTED PRIVATE KEY" in key.read_text()
    for other in (SERVICE, BEN):
        assert people.as_user(other, "cat", key).returncode != 0, other
    enrolled = _db_events(people, "key.enroll")
    assert [(e[0], e[2], e[4]) for e in enrolled[-2:]] == [("ana-e", ANA, "peer"), ("ben-o", BEN, "peer")]
    refused = people.as_root("keys", "pin", "ab" * 32)
    assert refused.returncode != 0 and "no enrolled key" in refused.stderr
    nobody = people.run(ANA, "keys", "pin", "ab" * 32)  # not root: the pin file is root's
    assert nobody.returncode != 0 and "only its owner pins personal keys" in nobody.stderr, nobody.stderr
    assert {g.gr_name for g in grp.getgrall() if ANA in g.gr_mem} >= {SERVICE}


def test_the_admins_puppet_officer_approves_nothing_and_an_account_works_from_its_own_os_account_only(people):
    """ida, the admin, makes an officer account for herself (`users add`, first login as it, `passwd`): the
    account is bound to ida's OS account, and what it approves is refused (appointed-by-self). Nobody uses an
    account from another OS account, even with its password."""
    ida = pwd.getpwnam(IDA)
    people.ok(IDA, "login", "alice", "--password-file", f"/home/{IDA}/alice.pw")
    given = "One-time-given-9p"
    people.ok(IDA, "users", "add", "ida-puppet", "--role", "officer",
              "--password-file", people.give(IDA, "puppet.given", given + "\n"))
    people.first_login(IDA, "ida-puppet", given, "Chosen-by-the-puppet-4q")
    people.ok(ANA, "login", "ana-e", "--password-file", f"/home/{ANA}/ana-e.pw")
    people.ok(ANA, "package", "triage", "--name", "puppet-triage")
    people.ok(ANA, "sign", "puppet-triage")
    refused = people.run(IDA, "approve", "puppet-triage", "--reason", "my own officer says yes")
    assert refused.returncode == 6, refused.stderr
    assert (f"four-eyes rule (appointed-by-self): the account ida-puppet was created by alice from OS account "
            f"{IDA} (uid {ida.pw_uid}), the one this approval comes from") in refused.stderr, refused.stderr
    assert json.loads(_db_events(people, "artifact.approve", "puppet-triage")[-1][6])["rule"] == \
        "four-eyes:appointed-by-self"
    borrowed = people.run(ANA, "login", "ben-o", "--password-file", people.give(ANA, "ben.pw", "Chosen-by-him-2y\n"))
    assert borrowed.returncode == 6 and "invalid user name or password" in borrowed.stderr
    denial = _db_events(people, "user.login", "ben-o")[-1]
    assert denial[:3] == ("ben-o", "denied", ANA) and f"is not the one ben-o is bound to ({BEN}" in denial[5]
