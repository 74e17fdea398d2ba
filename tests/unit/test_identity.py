"""Users, roles, sessions, tokens and keys through the CLI, as people would use them."""

import json
import os
import subprocess
import sys
import zipfile

import pytest
from sqlalchemy import select, update

from appliance.db.tables import api_token, audit_event, auth_session
from appliance.identity.users import REFUSAL
from tests.conftest import PASSWORDS, home_db, pw_file, token_secret

pytestmark = pytest.mark.unit


def events(home, action=None):
    e = audit_event.c
    query = select(e.actor, e.action, e.outcome, e.reason, e.object_id, e.details).order_by(e.seq)
    with home_db(home).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query.where(e.action == action) if action else query)]


def test_init_with_admin_creates_encrypted_keys_and_the_admin(cli, home):
    result = cli("init", "--admin", "alice", "--password-file", pw_file(home, "alice"))
    assert result.code == 0, result.err
    assert "created artifact key" in result.out and "created audit key" in result.out
    keys = sorted(p.name for p in (home / "keys").iterdir())
    private = [k for k in keys if k.endswith(".key.pem")]
    assert len(private) == 2
    for name in private:
        path = home / "keys" / name
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert path.stat().st_mode & 0o777 == 0o600
    assert [e["action"] for e in events(home)][:4] == ["appliance.init", "key.create", "key.create", "user.create"]
    again = cli("init", "--admin", "alice", "--password-file", pw_file(home, "alice"))
    assert again.code == 0 and "admin 'alice' already exists" in again.out


def test_init_without_a_passphrase_fails_before_writing_keys(cli, home, monkeypatch):
    monkeypatch.delenv("APPLIANCE_KEY_PASSPHRASE_FILE")
    result = cli("init", "--admin", "alice", "--password-file", pw_file(home, "alice"))
    assert result.code == 2 and "no key passphrase" in result.err
    assert list((home / "keys").iterdir()) == []


@pytest.mark.parametrize("password, fragment", [
    ("short1!", "at least 12 characters"),
    ("Password1234", "too common"),
    ("alice-is-the-admin-9", "must not contain the user name"),
    ("aaaaaaaaaaaaaaaab", "too few distinct characters"),
])
def test_weak_passwords_are_refused(cli, home, tmp_path, password, fragment):
    f = tmp_path / "weak.pw"
    f.write_text(password + "\n")
    result = cli("init", "--admin", "alice", "--password-file", f)
    assert result.code == 2 and fragment in result.err
    assert result.err.count("\n") == 1


def test_password_is_never_an_argument(cli, home):
    result = cli("login", "alice", "--password", "x")
    assert result.code == 2 and "No such option" in result.err


def test_no_password_without_a_terminal_is_a_clear_error(cli, staff, monkeypatch):
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    result = cli("login", "alice")
    assert result.code == 2 and "give --password-file FILE" in result.err


def test_login_whoami_logout(cli, staff, tmp_path):
    staff.login("oscar")
    who = json.loads(cli("whoami", "--json").out)
    assert who["user"] == "oscar" and who["role"] == "officer" and who["auth"] == "session"
    session = tmp_path / "session.json"
    assert session.stat().st_mode & 0o777 == 0o600
    assert PASSWORDS["oscar"] not in session.read_text()
    assert cli("logout").out.strip() == "logged out"
    assert not session.exists()
    result = cli("whoami")
    assert result.code == 6 and "not logged in" in result.err


def test_a_stolen_session_file_stops_working_after_logout(cli, staff, tmp_path):
    stolen = (tmp_path / "session.json").read_text()
    cli("logout")
    (tmp_path / "session.json").write_text(stolen)
    result = cli("whoami")
    assert result.code == 6 and "session revoked" in result.err


def test_an_expired_session_is_refused(cli, staff):
    with home_db(staff.home).begin() as conn:
        conn.execute(update(auth_session).values(expires_at="2000-01-01T00:00:00+00:00"))
    result = cli("models", "list")
    assert result.code == 6 and "session expired" in result.err
    assert events(staff.home, "authenticate")[-1]["outcome"] == "denied"


def test_wrong_password_is_refused_and_audited(cli, staff, tmp_path):
    bad = tmp_path / "bad.pw"
    bad.write_text("not-the-password-123\n")
    result = cli("login", "oscar", "--password-file", bad)
    assert result.code == 6 and result.err.strip() == f"error: {REFUSAL}"
    denied = events(staff.home, "user.login")[-1]
    assert (denied["actor"], denied["outcome"], denied["reason"]) == ("oscar", "denied", "wrong password")
    assert "not-the-password" not in json.dumps(events(staff.home))
    unknown = cli("login", "mallory", "--password-file", bad)
    assert unknown.err == result.err  # the same words whether or not the account exists
    assert events(staff.home, "user.login")[-1]["reason"] == "unknown user"


def test_repeated_failures_lock_the_account(cli, staff, tmp_path):
    bad = tmp_path / "bad.pw"
    bad.write_text("not-the-password-123\n")
    for _ in range(5):
        assert cli("login", "oscar", "--password-file", bad).code == 6
    result = cli("login", "oscar", "--password-file", pw_file(staff.home, "oscar"))
    assert result.code == 6 and result.err.strip() == f"error: {REFUSAL}"  # the right password, locked out
    assert events(staff.home, "user.login")[-1]["reason"] == "locked out"
    lockouts = events(staff.home, "user.lockout")
    assert len(lockouts) == 1 and lockouts[0]["object_id"] == "oscar"
    # The guesses locked out only their own OS account's attempts: oscar's password still works from another.
    from appliance.config import load_settings
    from appliance.context import Context, OsIdentity
    from appliance.db import connect
    from appliance.identity.users import authenticate

    settings = load_settings()
    elsewhere = Context(settings, connect(settings), os=OsIdentity.of_peer(os.geteuid() + 4242))
    assert authenticate(elsewhere, "oscar", PASSWORDS["oscar"]).name == "oscar"
    assert json.loads(lockouts[0]["details"])["os_uid"] == os.geteuid()


def test_disabled_user_cannot_log_in_and_loses_sessions(cli, staff):
    staff.login("oscar")
    staff.login("alice")
    assert cli("users", "disable", "oscar").code == 0
    result = cli("login", "oscar", "--password-file", pw_file(staff.home, "oscar"))
    assert result.code == 6 and result.err.strip() == f"error: {REFUSAL}"
    assert events(staff.home, "user.login")[-1]["reason"] == "user is disabled"


@pytest.mark.parametrize("who, args, permission", [
    ("erin", ("users", "add", "zed", "--role", "admin"), "users manage"),
    ("erin", ("audit", "verify"), "audit verify"),
    ("oscar", ("models", "import", "--embedded", "smollm2"), "models import"),
    ("ursula", ("models", "list"), "read"),
    ("ursula", ("tokens", "create", "--user", "erin"), "tokens manage"),
    ("alice", ("train", "policies/recipes/smollm2-135m-lora-sft.yaml", "--dataset", "x"), "train"),
    ("alice", ("package", "run"), "package"),
    ("alice", ("sign", "artifact"), "sign"),
    ("alice", ("approve", "artifact", "--reason", "the admin approving"), "artifacts approve"),
    ("alice", ("data", "ingest", "examples/helpdesk.jsonl", "--name", "x"), "data ingest"),
    ("oscar", ("keys", "rotate", "--purpose", "audit"), "keys manage"),
])
def test_roles_acting_outside_their_rights_are_refused_and_audited(cli, staff, who, args, permission):
    staff.login(who)
    result = cli(*args)
    assert result.code == 6, result.err
    assert f"may not {permission}" in result.err
    denial = events(staff.home)[-1]
    assert denial["actor"] == who and denial["outcome"] == "denied"


def test_admin_manages_users(cli, staff):
    staff.login("alice")
    listed = {u["name"]: u for u in json.loads(cli("users", "list", "--json").out)}
    assert {n: u["role"] for n, u in listed.items()} == {"alice": "admin", "erin": "engineer", "oscar": "officer",
                                                        "ursula": "user"}
    minted = json.loads(cli("tokens", "create", "--user", "ursula", "--json").out)  # under her old role
    assert cli("users", "set-role", "ursula", "engineer").code == 0
    assert cli("users", "set-role", "alice", "user").code == 2  # not your own role
    assert cli("users", "add", "erin", "--role", "user", "--password-file", pw_file(staff.home, "erin")).code == 3
    change = events(staff.home, "user.set_role")[-1]
    assert json.loads(change["details"]) == {"from": "user", "to": "engineer",
                                             "revoked": "every session and API token of theirs"}
    tokens = {t["id"]: t for t in json.loads(cli("tokens", "list", "--json").out)}
    assert tokens[minted["id"]]["revoked_at"]  # a role change ends what was minted under the old one


def test_api_tokens(cli, staff, monkeypatch):
    staff.login("alice")
    created = json.loads(cli("tokens", "create", "--user", "erin", "--adapters", "b,a", "--expires-days", "3",
                             "--json").out)
    gateway_token = created["token"]
    assert gateway_token.startswith("apl_") and created["adapters"] == ["a", "b"] and created["scope"] == "gateway"
    listed = cli("tokens", "list", "--json").out
    assert token_secret(gateway_token) not in listed and created["id"] in listed
    assert gateway_token not in json.dumps(events(staff.home))
    cli("logout")
    monkeypatch.setenv("APPLIANCE_TOKEN", gateway_token)  # a gateway token works the gateway, not the command line
    refused = cli("whoami")
    assert refused.code == 6 and "is for the gateway (queries only), not for the command line" in refused.err
    monkeypatch.delenv("APPLIANCE_TOKEN")
    staff.login("erin")
    own = json.loads(cli("tokens", "create", "--scope", "control", "--json").out)
    assert own["scope"] == "control" and own["user"] == "erin" and own["os_uid"] == os.geteuid()
    cli("logout")
    monkeypatch.setenv("APPLIANCE_TOKEN", own["token"])
    who = json.loads(cli("whoami", "--json").out)
    assert (who["user"], who["role"], who["auth"], who["os_uid"]) == ("erin", "engineer", "token", os.geteuid())
    monkeypatch.delenv("APPLIANCE_TOKEN")
    staff.login("alice")
    assert cli("tokens", "revoke", own["id"]).code == 0
    monkeypatch.setenv("APPLIANCE_TOKEN", own["token"])
    result = cli("models", "list")
    assert result.code == 6 and "API token revoked" in result.err
    assert events(staff.home, "authenticate")[-1]["reason"] == "API token revoked"
    monkeypatch.setenv("APPLIANCE_TOKEN", own["token"][:-3] + "abc")
    assert "API token not recognised" in cli("models", "list").err


def test_an_expired_token_is_refused(cli, staff, monkeypatch):
    staff.login("ursula")
    created = json.loads(cli("tokens", "create", "--scope", "control", "--json").out)
    with home_db(staff.home).begin() as conn:
        conn.execute(update(api_token).values(expires_at="2001-01-01T00:00:00+00:00"))
    monkeypatch.setenv("APPLIANCE_TOKEN", created["token"])
    result = cli("whoami")
    assert result.code == 6 and "API token expired" in result.err


def test_keys_rotate_export_and_revoke(cli, staff, tmp_path):
    staff.login("alice")
    before = {k["key_id"]: k for k in json.loads(cli("keys", "list", "--json").out)}
    assert sorted(k["purpose"] for k in before.values()) == ["artifact", "audit"]
    assert cli("keys", "rotate", "--purpose", "audit").code == 0
    after = {k["key_id"]: k for k in json.loads(cli("keys", "list", "--json").out)}
    old_audit = next(k for k in before.values() if k["purpose"] == "audit")
    assert after[old_audit["key_id"]]["status"] == "retired"
    staff.login("oscar")
    assert cli("audit", "verify").code == 0  # checkpoints signed by the retired key still verify
    staff.login("alice")
    out = tmp_path / "artifact.pub.pem"
    assert cli("keys", "export-public", "--out", out).code == 0
    assert out.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert cli("keys", "revoke", old_audit["key_id"][:16], "--reason", "laptop lost").code == 0
    staff.login("oscar")
    result = cli("audit", "verify")
    assert result.code == 4 and "signed by revoked key" in result.out


def test_doctor_flags_an_unencrypted_private_key(cli, staff):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = next((staff.home / "keys").glob("artifact-*.key.pem"))
    plain = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(plain)
    report = json.loads(cli("doctor", "--json").out)
    check = next(c for c in report["checks"] if c["name"] == "keys")
    assert check["status"] == "fail" and "is not encrypted" in check["detail"]


def test_audit_log_verify_checkpoint_and_evidence_pack(cli, staff, tmp_path):
    staff.login("oscar")
    logins = json.loads(cli("audit", "log", "--action", "user.log*", "--json").out)
    assert {e["action"] for e in logins} == {"user.login"}
    by_alice = json.loads(cli("audit", "log", "--actor", "alice", "--json").out)
    assert {e["action"] for e in by_alice} >= {"user.create", "user.login"}
    assert json.loads(cli("audit", "log", "--since", "2999-01-01", "--json").out) == []
    assert cli("audit", "log", "--since", "yesterday").code == 2
    verified = cli("audit", "verify", "--json")
    assert verified.code == 0 and json.loads(verified.out)["ok"] is True
    checkpoint = tmp_path / "anchor.json"
    assert cli("audit", "checkpoint", "--out", checkpoint).code == 0
    assert cli("audit", "verify", "--checkpoint", checkpoint).code == 0
    pack = tmp_path / "evidence.zip"
    assert cli("audit", "export", "--out", pack).code == 0
    names = set(zipfile.ZipFile(pack).namelist())
    assert names == {"events.jsonl", "checkpoints.json", "audit-keys.json", "verify_audit.py", "README.md",
                     "manifest.sha256"}
    script = tmp_path / "verify_audit.py"
    script.write_bytes(zipfile.ZipFile(pack).read("verify_audit.py"))
    pinned = staff.home / "keys" / "audit-pinned.pem"  # the key the auditor got from outside the pack
    alone = subprocess.run([sys.executable, script, pack, "--key", pinned, "--checkpoint", checkpoint],
                           capture_output=True, text=True, cwd=tmp_path, env={"PATH": os.environ["PATH"]})
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert alone.stdout.startswith("OK: ")
    kept = tmp_path / "journal-copy.jsonl"  # the SIEM's copy of the anchors, one per line
    kept.write_text((staff.home / "logs" / "checkpoints.jsonl").read_text())
    assert subprocess.run([sys.executable, script, pack, "--key", pinned, "--checkpoint", kept],
                          capture_output=True, text=True).returncode == 0
    unkeyed = subprocess.run([sys.executable, script, pack], capture_output=True, text=True)
    assert unkeyed.returncode == 2 and "give --key" in unkeyed.stdout
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = tmp_path / "other.pem"  # a key that signed nothing here: no checkpoint of the pack is trusted
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    foreign = subprocess.run([sys.executable, script, pack, "--key", other], capture_output=True, text=True)
    assert foreign.returncode == 1 and "not one given with --key (found only in the pack)" in foreign.stdout
    # The auditor's copy is tampered with: one event's actor changes.
    extracted = tmp_path / "pack"
    zipfile.ZipFile(pack).extractall(extracted)
    lines = (extracted / "events.jsonl").read_text().splitlines()
    row = json.loads(lines[3])
    row["actor"] = "mallory"
    lines[3] = json.dumps(row)
    (extracted / "events.jsonl").write_text("\n".join(lines) + "\n")
    tampered = subprocess.run([sys.executable, script, extracted, "--key", pinned], capture_output=True, text=True)
    assert tampered.returncode == 1
    assert "events.jsonl: sha256 differs" in tampered.stdout and "event 4 was modified" in tampered.stdout
    assert "first bad sequence number: 4" in tampered.stdout


def test_a_password_set_by_someone_else_works_once_then_only_for_passwd(cli, staff, tmp_path):
    staff.login("alice")
    (tmp_path / "dave.first").write_text("Given-by-alice-77\n")
    (tmp_path / "dave.pw").write_text("Chosen-by-himself-88\n")
    assert cli("users", "add", "dave", "--role", "engineer", "--password-file", tmp_path / "dave.first").code == 0
    login = cli("login", "dave", "--password-file", tmp_path / "dave.first")
    assert login.code == 0 and "`appliance passwd`" in login.out
    refused = cli("models", "list")
    assert refused.code == 6 and "must be changed first; run `appliance passwd`" in refused.err
    assert events(staff.home, "read")[-1]["reason"] == "the password was set by someone else and must be changed first"
    who = json.loads(cli("whoami", "--json").out)
    assert who["must_change_password"] is True
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-what-alice-gave\n")
    assert cli("passwd", "--old-password-file", wrong, "--new-password-file", tmp_path / "dave.pw").code == 6
    assert events(staff.home, "user.login")[-1]["reason"] == "wrong password"  # counts towards the lockout
    same = cli("passwd", "--old-password-file", tmp_path / "dave.first", "--new-password-file", tmp_path / "dave.first")
    assert same.code == 2 and "--new-password-file: the new password must differ" in same.err
    assert cli("passwd", "--old-password-file", tmp_path / "dave.first", "--new-password-file",
               tmp_path / "dave.pw").code == 0
    assert cli("models", "list").code == 0  # the same session, now a full one
    assert cli("login", "dave", "--password-file", tmp_path / "dave.first").code == 6  # the old one is gone
    assert json.loads(events(staff.home, "user.passwd")[-1]["details"]) == {"was_one_time": True}


def test_an_admin_resets_a_password_to_a_one_time_one_and_ends_every_session_and_token(cli, staff, monkeypatch):
    staff.login("oscar")
    token = json.loads(cli("tokens", "create", "--scope", "control", "--json").out)["token"]
    session = (staff.home.parent / "session.json").read_text()
    staff.login("erin")
    assert cli("users", "reset-password", "oscar").code == 6  # only an admin
    staff.login("alice")
    assert cli("users", "reset-password", "alice").code == 2  # one's own: `appliance passwd`
    reset = cli("users", "reset-password", "oscar")
    assert reset.code == 0 and "shown once" in reset.err
    one_time = reset.out.strip()
    assert one_time and one_time not in json.dumps(events(staff.home))
    (staff.home.parent / "session.json").write_text(session)
    assert "session revoked" in cli("whoami").err
    monkeypatch.setenv("APPLIANCE_TOKEN", token)
    assert "API token revoked" in cli("whoami").err
    monkeypatch.delenv("APPLIANCE_TOKEN")
    assert cli("login", "oscar", "--password-file", pw_file(staff.home, "oscar")).code == 6
    given = staff.home.parent / "oscar.reset"
    given.write_text(one_time + "\n")
    login = cli("login", "oscar", "--password-file", given)
    assert login.code == 0 and "appliance passwd" in login.out
    assert cli("audit", "log").code == 6  # nothing but passwd until he chooses his own


def test_parallel_wrong_guesses_each_count(staff):
    from concurrent.futures import ThreadPoolExecutor

    from appliance.config import load_settings
    from appliance.context import Context
    from appliance.db import connect
    from appliance.errors import PermissionDenied
    from appliance.identity.users import authenticate, failures

    (staff.home / "appliance.toml").write_text("[identity]\nlockout_attempts = 5\n")
    settings = load_settings()
    ctx = Context(settings, connect(settings))

    def guess(_):
        with pytest.raises(PermissionDenied):
            authenticate(ctx, "oscar", "a wrong guess, in parallel")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(guess, range(4)))
    assert failures(ctx.engine, "oscar", ctx.os.uid) == (4, None)  # none lost to a race
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(guess, range(3)))
    counted, locked_until = failures(ctx.engine, "oscar", ctx.os.uid)
    assert locked_until is not None and counted <= 2  # locked at the fifth (a guess after it may count again)
    with pytest.raises(PermissionDenied):
        authenticate(ctx, "oscar", PASSWORDS["oscar"])  # locked: the right password does not help


def test_nobody_mints_a_token_with_someone_elses_powers(cli, staff, monkeypatch):
    staff.login("alice")
    refused = cli("tokens", "create", "--user", "oscar", "--scope", "control")
    assert refused.code == 6 and "only oscar may create one for oscar" in refused.err
    assert events(staff.home, "token.create")[-1]["outcome"] == "denied"
    assert "name the OS account" in cli("tokens", "create", "--user", "ursula", "--scope", "control").err
    service = json.loads(cli("tokens", "create", "--user", "ursula", "--scope", "control", "--os-user", "nobody",
                             "--json").out)
    assert service["os_uid"] == 65534
    assert "adapters limit gateway tokens" in cli("tokens", "create", "--scope", "control", "--adapters", "a").err
    gateway = json.loads(cli("tokens", "create", "--user", "oscar", "--json").out)  # queries only
    cli("logout")
    monkeypatch.setenv("APPLIANCE_TOKEN", service["token"])  # presented from another OS account than its own
    assert "bound to OS account nobody" in cli("whoami").err
    monkeypatch.setenv("APPLIANCE_TOKEN", gateway["token"])
    result = cli("approve", "anything", "--reason", "with a token that is not mine")
    assert result.code == 6 and "is for the gateway" in result.err


def test_a_session_belongs_to_the_os_account_that_logged_in(cli, staff):
    with home_db(staff.home).begin() as conn:
        conn.execute(update(auth_session).values(os_uid=4242))
    result = cli("whoami")
    assert result.code == 6 and "belongs to OS account" in result.err and f"uid {os.geteuid()}" in result.err


def test_no_command_takes_a_policy_of_its_own_choosing(cli, staff, tmp_path):
    weak = tmp_path / "pii.yaml"
    weak.write_text("entities: {EMAIL_ADDRESS: {operator: replace}}\n")
    for args in (("data", "ingest", "examples/helpdesk.jsonl", "--name", "x", "--policy", weak),
                 ("train", "r.yaml", "--dataset", "x", "--policy", weak), ("eval", "run", "--policy", weak),
                 ("serve", "--policy", weak), ("advise", "x", "--policy", weak)):
        result = cli(*args)
        assert result.code == 2 and "No such option '--policy'" in result.err, args


def test_a_token_works_only_where_its_scope_says(cli, staff):
    from appliance.config import load_settings
    from appliance.db import connect
    from appliance.errors import PermissionDenied
    from appliance.identity import tokens

    control = json.loads(cli("tokens", "create", "--scope", "control", "--json").out)["token"]
    engine = connect(load_settings())
    with pytest.raises(PermissionDenied, match="is for the command line, not for the gateway"):
        tokens.resolve(engine, control)  # the gateway's default scope
    user, info = tokens.resolve(engine, control, scope=tokens.CONTROL, os_uid=os.geteuid())
    assert (user.name, info.scope) == ("erin", "control")


def test_an_account_is_used_from_its_own_os_account_only(cli, staff, tmp_path):
    """Bound at creation (`--os-user`), or to the OS account of its first login; a login from any other, even with
    the right password, is refused with the one refusal text and audited."""
    staff.login("alice")
    given = tmp_path / "given"
    given.write_text("One-time-given-7x\n")
    added = cli("users", "add", "nora", "--role", "officer", "--os-user", "nobody", "--password-file", given)
    assert added.code == 0 and "bound to OS account nobody" in added.out, added.err
    refused = cli("login", "nora", "--password-file", given)  # this test runs as another OS account
    assert refused.code == 6 and "invalid user name or password" in refused.err
    login = events(staff.home, "user.login")[-1]
    assert (login["actor"], login["outcome"]) == ("nora", "denied")
    assert "is not the one nora is bound to (nobody, uid" in login["reason"]
    unknown = cli("users", "add", "nina", "--role", "user", "--os-user", "no-such-account", "--password-file", given)
    assert unknown.code == 2 and "no OS account named 'no-such-account'" in unknown.err
    assert cli("users", "add", "otto", "--role", "user", "--password-file", given).code == 0
    assert cli("login", "otto", "--password-file", given).code == 0
    bound = events(staff.home, "user.bind")[-1]
    assert bound["object_id"] == "otto" and json.loads(bound["details"])["how"] == "first login"
    staff.login("alice")
    shown = {u["name"]: u for u in json.loads(cli("users", "list", "--json").out)}
    assert (shown["otto"]["os_user"], shown["nora"]["os_user"]) == (staff_os_user(), "nobody")


def staff_os_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def test_what_people_and_clients_wrote_reaches_the_terminal_escaped(cli, staff):
    """A reason, an object or an actor carrying escape sequences (a client's text, a person's reason) could clear
    or rewrite the lines an officer reads: `audit log` shows them as visible escapes, and JSON escapes them too."""
    from appliance.audit.events import Event
    from appliance.audit.log import record_alone
    from appliance.config import load_settings
    from appliance.context import Actor, Context
    from appliance.db import connect

    settings = load_settings()
    record_alone(Context(settings, connect(settings)),
                 Event("serve.request", "model", "x\x1b[2K\rrevoked\u202e", reason="fine\x1b]0;title\x07\nforged line"),
                 Actor("erin", "engineer", "token"))
    staff.login("oscar")
    shown = cli("audit", "log", "--limit", "3")
    assert shown.code == 0
    assert "\x1b" not in shown.out and "\r" not in shown.out and "\u202e" not in shown.out
    line = next(line for line in shown.out.splitlines() if "serve.request" in line)
    assert r"model:x\x1b[2K\x0drevoked\u202e (fine\x1b]0;title\x07\x0aforged line)" in line
    data = cli("audit", "log", "--limit", "3", "--json").out
    assert "\x1b" not in data and "\\u001b" in data


def test_an_enrolment_is_made_whole_or_again_with_the_same_key(cli, staff):
    """The key is made in the person's process before the service records it: an enrolment that did not land is
    made again with the key already held, and one that did is not made twice."""
    staff.login("oscar")
    again = cli("keys", "enroll")  # oscar's key is enrolled and pinned (the staff home)
    assert again.code == 2 and "is enrolled already (pinned)" in again.err and "already in" in again.err
    listed = json.loads(cli("keys", "people", "--json").out)
    assert [k["user"] for k in listed["keys"]].count("oscar") == 1


def test_the_adapters_a_user_may_query_and_their_limits_are_the_users_not_a_tokens(cli, staff, monkeypatch):
    """A user who mints tokens of their own gets no adapter the admin withheld and no second share of limits."""
    from appliance.config import load_settings
    from appliance.db import connect
    from appliance.serve.gateway import ApiError, RateLimiter
    from appliance.serve.gateway.auth import Authenticator

    staff.login("alice")
    before = json.loads(cli("tokens", "create", "--user", "ursula", "--json").out)["token"]  # minted before
    done = cli("users", "limit", "ursula", "--adapters", "triage,billing", "--max-concurrent", "2",
               "--requests-per-minute", "30")
    assert done.code == 0, done.err
    assert "ursula may query billing, triage; limits: requests per minute 30, max concurrent 2" in done.out
    assert json.loads(events(staff.home, "user.access")[-1]["details"]) == {
        "adapters": {"from": None, "to": ["billing", "triage"]},
        "limits": {"from": None, "to": {"requests_per_minute": 30.0, "max_concurrent": 2}}}
    assert cli("users", "limit", "ursula", "--burst", "-3").code == 2  # a usage error, nothing changed
    assert cli("users", "limit", "ursula").code != 0  # nothing named
    staff.login("ursula")
    assert cli("users", "limit", "ursula", "--adapters", "any").code == 6  # not their own to widen
    wider = cli("tokens", "create", "--adapters", "triage,secret", "--json")
    assert wider.code == 2 and "may query only billing, triage: a token cannot add secret" in wider.err
    own = json.loads(cli("tokens", "create", "--json").out)["token"]
    narrow = json.loads(cli("tokens", "create", "--adapters", "triage", "--json").out)["token"]

    settings = load_settings()
    engine = connect(settings)
    try:
        auth = Authenticator(engine, 0.0)
        callers = [auth.authenticate(f"Bearer {t}") for t in (before, own, narrow)]
        assert [c.adapters for c in callers] == [["billing", "triage"], ["billing", "triage"], ["triage"]]
        assert all(c.limits.max_concurrent == 2 and c.limits.requests_per_minute == 30 for c in callers)
        limiter = RateLimiter(rate_per_minute=600, burst=60, max_concurrent=8)
        for caller in callers[:2]:  # one slot on each of two tokens: the user's two
            limiter.acquire(caller.actor.user, caller.limits)
        with pytest.raises(ApiError) as third:
            limiter.acquire(callers[2].actor.user, callers[2].limits)
        assert third.value.code == "concurrency_limit" and "across all their tokens" in third.value.message
        limiter.acquire("erin")  # another user keeps the policy's own
        staff.login("alice")
        back = cli("users", "limit", "ursula", "--adapters", "any", "--max-concurrent", "policy")
        assert back.code == 0 and "ursula may query any adapter; limits: requests per minute 30" in back.out
        again = auth.authenticate(f"Bearer {own}")
        assert again.adapters is None and again.limits.max_concurrent is None
    finally:
        engine.dispose()
