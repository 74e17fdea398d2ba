"""`appliance backup` / `restore`: a round trip on SQLite and PostgreSQL with the audit trail verified after it,
and every way a restore must refuse: a damaged archive, a home in use, the wrong database, the wrong user."""

import json
import tarfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import delete, insert, select, update

from appliance.db.tables import audit_checkpoint, audit_event, signing_key
from tests.conftest import audit_events, first_login, home_db, pw_file, write_password_files

pytestmark = pytest.mark.unit


def _pw(tmp_path: Path, name: str, which: str = "pw") -> Path:
    write_password_files(tmp_path)
    return tmp_path / f"{name}.{which}"


@pytest.fixture
def empty_postgres(database_url):
    """A second, empty database beside the fixture's (the restore target); None on SQLite."""
    if database_url.startswith("sqlite"):
        yield None
        return
    # the server's databases: DDL, which SQLAlchemy does not express
    admin = sqlalchemy.create_engine(database_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = f"appliance_restore_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    yield database_url.rsplit("/", 1)[0] + f"/{name}"
    from appliance.db.engine import _engine_for

    _engine_for(database_url.rsplit("/", 1)[0] + f"/{name}").dispose()
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _audit_key(cli) -> str:
    """The active audit key's whole fingerprint, as the operator reads it on the old appliance."""
    keys = json.loads(cli("keys", "list", "--json").out)
    return next(k["key_id"] for k in keys if k["purpose"] == "audit" and k["status"] == "active")


def _resign(archive: Path, out: Path) -> str:
    """The insider's archive: an audit key of their own in the database (and in the home's pin file), the stored
    checkpoints replaced by one they signed over the whole log, the manifest recomputed. Returns their key id."""
    import base64
    import hashlib
    import io

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from appliance.audit import merkle
    from appliance.audit.checkpoints import Checkpoint
    from appliance.keys.crypto import key_id_of

    foreign = ec.generate_private_key(ec.SECP256R1())
    pem = foreign.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key_id = key_id_of(foreign.public_key())
    work = out.parent / "forge"
    work.mkdir()
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    files = {}
    for member, data in members:
        if member.name == "database/appliance.db":
            db = work / "appliance.db"
            db.write_bytes(data)
            with home_db(work).begin() as conn:
                for trigger in ("audit_checkpoint_no_update", "audit_checkpoint_no_delete"):
                    conn.exec_driver_sql(f"DROP TRIGGER {trigger}")  # the triggers: DDL, driver level
                leaves = [bytes.fromhex(h) for h in
                          conn.execute(select(audit_event.c.leaf_hash).order_by(audit_event.c.seq)).scalars()]
                body = Checkpoint(len(leaves), merkle.root_of(leaves).hex(), "2026-12-01T00:00:00+00:00", key_id, "")
                signature = base64.b64encode(foreign.sign(body.body(), ec.ECDSA(hashes.SHA256()))).decode()
                conn.execute(update(signing_key).where(signing_key.c.purpose == "audit").values(status="retired"))
                conn.execute(insert(signing_key).values(key_id=key_id, purpose="audit", status="active",
                                                        public_pem=pem, private_file="x", created_at=body.ts))
                conn.execute(delete(audit_checkpoint))
                conn.execute(insert(audit_checkpoint).values(tree_size=body.tree_size, root=body.root, ts=body.ts,
                                                             key_id=key_id, signature=signature))
            data = db.read_bytes()
        elif member.name == "home/keys/audit-pinned.pem":
            data = pem.encode()
        if member.name != "backup.json":
            files[member.name] = data
    manifest = json.loads(dict((m.name, d) for m, d in members)["backup.json"])
    manifest["files"] = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [*files.items(), ("backup.json", json.dumps(manifest).encode())]:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    return key_id


def test_a_backup_restores_into_a_new_home_with_its_audit_trail_verified(database_url, empty_postgres, cli,
                                                                          tmp_path, monkeypatch):
    monkeypatch.setenv("APPLIANCE_SESSION_FILE", str(tmp_path / "session"))
    assert cli("init", "--admin", "alice", "--password-file", _pw(tmp_path, "alice", "first")).code == 0
    first_login(cli, tmp_path, "alice")
    added = cli("users", "add", "erin", "--role", "engineer", "--password-file", _pw(tmp_path, "erin", "first"))
    assert added.code == 0
    first_login(cli, tmp_path, "erin")
    assert cli("login", "alice", "--password-file", _pw(tmp_path, "alice")).code == 0
    home = Path(tmp_path / "home")
    (home / "datasets" / "notes").mkdir(parents=True)
    (home / "datasets" / "notes" / "kept.txt").write_text("a file in the home\n")
    (home / "keys" / "serve-text.key").write_bytes(b"k" * 32)  # the gateway's, in clear: it stays here

    archive = tmp_path / "out" / "appliance.tar"
    archive.parent.mkdir()
    made = cli("backup", "--out", archive, "--json")
    assert made.code == 0, made.err
    summary = json.loads(made.out)
    assert summary["database"] == ("sqlite" if empty_postgres is None else "postgresql")
    assert archive.stat().st_mode & 0o777 == 0o600 and not list(archive.parent.glob(".*partial"))
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[-1] == "backup.json" and "home/datasets/notes/kept.txt" in names
    assert not [n for n in names if n.startswith("home/appliance.db") or n.startswith("home/run/")]
    assert any(n.startswith("home/keys/") for n in names)  # the keys, encrypted at rest, travel with it
    assert "home/keys/serve-text.key" not in names  # ... the one kept in clear does not

    made_event = json.loads(cli("audit", "log", "--action", "backup.create", "--json").out)
    assert [(e["actor"], e["object_id"]) for e in made_event] == [("alice", "appliance.tar")]
    fingerprint = _audit_key(cli)

    restored = tmp_path / "restored"
    monkeypatch.setenv("APPLIANCE_HOME", str(restored))
    monkeypatch.setenv("APPLIANCE_SESSION_FILE", str(tmp_path / "session2"))
    if empty_postgres:
        monkeypatch.setenv("APPLIANCE_DATABASE_URL", empty_postgres)
    else:
        monkeypatch.delenv("APPLIANCE_DATABASE_URL", raising=False)
    unpinned = cli("restore", archive)  # a new machine pins nothing yet: the archive's own keys are not trusted
    assert unpinned.code == 2 and "give --audit-key SHA256" in unpinned.err, unpinned.err
    assert not restored.exists()
    wrong = cli("restore", archive, "--audit-key", "0" * 64)  # a key that signed nothing here: nothing verifies
    assert wrong.code == 4 and "found only in the database" in wrong.err, wrong.err
    assert not restored.exists()
    if empty_postgres:  # restored into a scratch database, dropped when it did not verify; the target untouched
        admin = sqlalchemy.create_engine(empty_postgres.rsplit("/", 1)[0] + "/postgres")
        target = empty_postgres.rsplit("/", 1)[1]
        with admin.connect() as conn:  # the server's catalog of databases: its own SQL
            assert not conn.execute(sqlalchemy.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                    {"p": f"{target}_restoring_%"}).all()
        admin.dispose()
        probe = sqlalchemy.create_engine(empty_postgres)
        with probe.connect() as conn:
            assert sqlalchemy.inspect(conn).get_table_names(schema="public") == []
        probe.dispose()
    back = cli("restore", archive, "--audit-key", fingerprint, "--json")
    assert back.code == 0, back.err
    assert json.loads(back.out)["audit_events"] == summary["audit_events"]
    assert (restored / "datasets" / "notes" / "kept.txt").read_text() == "a file in the home\n"
    assert restored.stat().st_mode & 0o777 == 0o700 and not list(tmp_path.glob(".restored.restoring-*"))
    assert cli("login", "erin", "--password-file", _pw(tmp_path, "erin")).code == 0  # the users came back
    assert cli("login", "alice", "--password-file", _pw(tmp_path, "alice")).code == 0
    verified = cli("audit", "verify", "--json")
    assert verified.code == 0 and json.loads(verified.out)["ok"], verified.out + verified.err
    events = json.loads(cli("audit", "log", "--action", "backup.*", "--json").out)
    # the backup's own event came after the archive was written: the restored trail ends with the restore
    assert [(e["action"], e["actor"]) for e in events] == [("backup.restore", "system")]


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_postgresql_target_holding_only_a_view_is_not_empty(empty_postgres):
    from appliance.backup_pg import check_target as _pg_check_target
    from appliance.errors import InputError

    _pg_check_target(empty_postgres, force=False)  # empty: accepted
    probe = sqlalchemy.create_engine(empty_postgres)
    with probe.begin() as conn:  # DDL of the test's own, which the appliance never creates
        conn.execute(sqlalchemy.text("CREATE VIEW someone_elses AS SELECT 1 AS one"))
    probe.dispose()
    with pytest.raises(InputError, match="is not empty"):
        _pg_check_target(empty_postgres, force=False)
    _pg_check_target(empty_postgres, force=True)


def test_restore_refuses_a_damaged_archive_and_a_home_in_use(staff, cli, tmp_path, monkeypatch):
    staff.login("alice")
    archive = tmp_path / "b.tar"
    assert cli("backup", "--out", archive).code == 0
    data = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.startswith("home/keys/"))
    data[member.offset_data + 3] ^= 0x01  # one bit of a key file, inside the archive
    damaged = tmp_path / "damaged.tar"
    damaged.write_bytes(bytes(data))
    fingerprint = _audit_key(cli)

    target = tmp_path / "elsewhere"
    monkeypatch.setenv("APPLIANCE_HOME", str(target))
    refused = cli("restore", damaged, "--audit-key", fingerprint)
    assert refused.code == 4 and f"{member.name}: sha256 differs" in refused.err, refused.err
    assert not target.exists() and not list(tmp_path.glob(".elsewhere.restoring-*"))  # nothing left behind
    not_tar = tmp_path / "notes.txt"
    not_tar.write_text("hello\n")
    garbage = cli("restore", not_tar, "--audit-key", fingerprint)
    assert garbage.code == 2 and "not a readable backup archive" in garbage.err

    # An archive re-signed with an insider's key (in its database and its home's pin file) is refused: the trail
    # is verified against this install's pinned keys, or the fingerprint the operator gives.
    forged = tmp_path / "forged.tar"
    their_key = _resign(archive, forged)
    resigned = cli("restore", forged, "--audit-key", fingerprint)
    assert resigned.code == 4 and f"signed by key {their_key[:16]}, found only in the database" in resigned.err, \
        resigned.err
    assert not target.exists()

    monkeypatch.setenv("APPLIANCE_HOME", str(staff.home))  # the live home: refused without --force
    busy = cli("restore", archive)
    assert busy.code == 2 and "is not empty" in busy.err and "--force" in busy.err
    forced_resigned = cli("restore", forged, "--force")  # against the live home's own pins
    assert forced_resigned.code == 4 and "found only in the database" in forced_resigned.err
    assert not list(staff.home.parent.glob("home.before-restore-*"))  # the live home untouched
    anchored = (staff.home / "logs" / "checkpoints.jsonl").read_bytes()
    unexplained = cli("restore", archive, "--force")  # the backup's own event came after it: it would be lost
    assert unexplained.code == 2 and "loses events" in unexplained.err and "--reason" in unexplained.err
    assert not list(staff.home.parent.glob("home.before-restore-*"))
    assert (staff.home / "logs" / "checkpoints.jsonl").read_bytes() == anchored  # no marker for what did not land
    forced = cli("restore", archive, "--force", "--reason", "drill")
    assert forced.code == 0, forced.err
    aside = list(staff.home.parent.glob("home.before-restore-*"))
    assert len(aside) == 1 and (aside[0] / "appliance.db").is_file()
    for result in (resigned, forced_resigned):  # after the archive's progress line, one line of error
        assert "Traceback" not in result.err and result.err.strip().splitlines()[-1].startswith("error: ")
    for result in (refused, garbage, busy):
        assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in unexplained.err and unexplained.err.strip().splitlines()[-1].startswith("error: ")


def test_an_older_backup_restored_leaves_a_signed_marker_that_verify_names(cli, staff, tmp_path):
    """The events since the backup are lost for a reason the restoring person gives; verify names the loss
    instead of reporting the trail cut short, a revocation among them keeps its adapter from being served, and a
    marker edited afterwards (or one someone wrote without the audit key) fails."""
    from appliance.audit.events import Event
    from appliance.audit.follow import TrailFollower
    from appliance.audit.log import record_alone
    from appliance.config import load_settings
    from appliance.context import Actor, Context
    from appliance.db import connect

    staff.login("alice")
    archive = tmp_path / "older.tar"
    assert cli("backup", "--out", archive).code == 0
    settings = load_settings()
    engine = connect(settings)
    # a revocation after the backup (the trail's event as `artifacts revoke` leaves it, for an artifact this
    # small home does not hold)
    record_alone(Context(settings, engine, Actor("oscar", "officer", "session")),
                 Event("artifact.revoke", "artifact", "triage", reason="leaks ticket numbers"))
    engine.dispose()
    assert cli("users", "disable", "ursula").code == 0
    before = json.loads(cli("audit", "verify", "--json").out)["events"]

    back = cli("restore", archive, "--force", "--reason", "the disk of the live home failed", "--json")
    assert back.code == 0, back.err
    lost = json.loads(back.out)["lost"]
    assert lost[0] < before <= lost[1]  # to the newest event (verify records its own)
    anchor_file = staff.home / "logs" / "checkpoints.jsonl"
    marker = json.loads(next(line for line in anchor_file.read_text().splitlines()
                             if '"appliance audit restore v1"' in line))
    assert marker["reason"] == "the disk of the live home failed" and marker["os_user"]
    assert [(d["action"], d["object"]) for d in marker["lost_decisions"]] == [("artifact.revoke", "triage")]
    assert cli("login", "alice", "--password-file", pw_file(staff.home, "alice")).code == 0
    verified = cli("audit", "verify", "--json")
    report = json.loads(verified.out)
    assert verified.code == 0 and report["ok"], verified.out + verified.err
    note = next(n for n in report["notes"] if "were lost at the restore" in n)
    assert f"events {lost[0]}..{lost[1]}" in note and "the disk of the live home failed" in note
    assert "artifact.revoke triage" in note
    assert cli("users", "disable", "ursula").code == 0  # lost with the rest: made again, the trail goes on
    again = json.loads(cli("audit", "verify", "--json").out)
    assert again["ok"] and again["events"] > lost[0], again

    settings = load_settings()
    engine = connect(settings)
    follower = TrailFollower(settings, engine)
    follower.start()
    assert follower.problem is None and "triage" in follower.lost_revocations
    from appliance.artifacts.release import prove

    refusal, _ = prove(settings, follower, "triage", "0" * 64, "smollm2")
    assert "its revocation was lost at the restore" in refusal
    engine.dispose()

    # the auditor's own verifier, away from the appliance, with a copy of the anchor file: the same loss, named
    import subprocess
    import sys
    import zipfile

    pack = tmp_path / "evidence.zip"
    assert cli("audit", "export", "--out", pack).code == 0
    script = tmp_path / "verify_audit.py"
    script.write_bytes(zipfile.ZipFile(pack).read("verify_audit.py"))
    kept = tmp_path / "kept.jsonl"
    kept.write_text(anchor_file.read_text())
    alone = subprocess.run([sys.executable, script, pack, "--key", staff.home / "keys" / "audit-pinned.pem",
                            "--checkpoint", kept], capture_output=True, text=True)
    assert alone.returncode == 0, alone.stdout
    assert f"note: events {lost[0]}..{lost[1]} were lost at the restore of older.tar" in alone.stdout
    kept.write_text(anchor_file.read_text().replace("the disk of the live home failed", "routine"))
    edited_copy = subprocess.run([sys.executable, script, pack, "--key", staff.home / "keys" / "audit-pinned.pem",
                                  "--checkpoint", kept], capture_output=True, text=True)
    assert edited_copy.returncode == 1 and "signature does not verify" in edited_copy.stdout

    text = anchor_file.read_text()  # the marker's reason rewritten (a copy: the real file is append-only)
    anchor_file.write_text(text.replace("the disk of the live home failed", "routine"))
    edited = json.loads(cli("audit", "verify", "--json").out)
    assert not edited["ok"] and any("restore marker" in p and "signature does not verify" in p
                                    for p in edited["problems"])


def test_only_an_admin_backs_up_and_never_into_the_home(staff, cli, tmp_path):
    denied = cli("backup", "--out", tmp_path / "b.tar")  # erin is logged in
    assert denied.code == 6 and not (tmp_path / "b.tar").exists()
    staff.login("alice")
    inside = cli("backup", "--out", staff.home / "b.tar")
    assert inside.code == 2 and "inside the home" in inside.err
    (tmp_path / "taken.tar").write_text("")
    taken = cli("backup", "--out", tmp_path / "taken.tar")
    assert taken.code == 2 and "already exists" in taken.err
    denials = audit_events(staff.home, "backup", "actor", "outcome")
    assert denials == [("erin", "denied")]  # the refusal is in the trail


def test_an_older_backup_restored_on_an_install_marks_the_loss_in_the_anchor_file_outside_the_home(
        database_url, cli, tmp_path, monkeypatch):
    """As on an install: the anchor file lies outside the home (/var/log/appliance there), so a restore cannot
    bring back an older copy of it; the marker goes into the live file, on SQLite and PostgreSQL alike."""
    monkeypatch.setenv("APPLIANCE_SESSION_FILE", str(tmp_path / "session"))
    anchor_file = tmp_path / "var-log-appliance" / "checkpoints.jsonl"
    home = tmp_path / "home"
    (home / "appliance.toml").write_text(f'[audit]\nanchor_file = "{anchor_file}"\n')
    assert cli("init", "--admin", "alice", "--password-file", _pw(tmp_path, "alice", "first")).code == 0
    first_login(cli, tmp_path, "alice")
    archive = tmp_path / "out" / "older.tar"
    archive.parent.mkdir()
    assert cli("backup", "--out", archive).code == 0
    assert cli("users", "add", "erin", "--role", "engineer", "--password-file", _pw(tmp_path, "erin", "first")).code \
        == 0
    witnessed = anchor_file.read_bytes()

    refused = cli("restore", archive, "--force")
    assert refused.code == 2 and f"which {anchor_file} anchored: say why with --reason" in refused.err
    assert anchor_file.read_bytes() == witnessed and not list(tmp_path.glob("home.before-restore-*"))
    back = cli("restore", archive, "--force", "--reason", "rolled back a bad upgrade", "--json")
    assert back.code == 0, back.err
    lines = anchor_file.read_bytes()
    assert lines.startswith(witnessed)  # appended to, never replaced
    marker = json.loads(lines[len(witnessed):].splitlines()[0])
    assert marker["format"] == "appliance audit restore v1" and marker["reason"] == "rolled back a bad upgrade"
    assert not (home / "logs" / "checkpoints.jsonl").exists()
    assert cli("login", "alice", "--password-file", _pw(tmp_path, "alice")).code == 0
    assert cli("users", "list").out.count("erin") == 0  # the restored trail: erin was added after the backup
    verified = cli("audit", "verify", "--json")
    report = json.loads(verified.out)
    assert verified.code == 0 and report["ok"], verified.out + verified.err
    assert any("were lost at the restore of older.tar" in n and "rolled back a bad upgrade" in n
               for n in report["notes"])
