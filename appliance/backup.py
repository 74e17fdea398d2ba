"""`appliance backup` and `appliance restore`: the home and its database in one archive, checked on the way back.

The archive is a plain tar (models and weights do not compress): `home/...` for every file of the home except
sockets, pid files and staging (`run/`, `tmp/`) and the database files; the database as `database/appliance.db`
(SQLite's online backup API, consistent while the appliance runs) or `database/appliance.pgdump` (pg_dump's
custom format); and `backup.json` last, with the sha256 of every member and the audit trail's size and root as
verified when the backup was taken. Restore checks every member against it before anything is put in place,
restores into a staging folder beside the home, verifies the restored audit trail, and only then renames it
into place. The archive holds secrets (encrypted keys, the database): it is written 0600 and belongs in the
same care as the home itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from appliance import backup_pg
from appliance.audit.events import Event
from appliance.config import Settings
from appliance.context import Context
from appliance.errors import InputError, IntegrityError, StorageError
from appliance.identity.roles import require
from appliance.keys.crypto import pem_of

FORMAT = 1
MANIFEST = "backup.json"
SKIPPED = ("run", "tmp")  # sockets, pid files and staging: nothing a restored appliance needs
Say = Callable[[str], None]


class _Hashing:
    """A file object that hashes what is read through it (tarfile reads each member exactly once)."""

    def __init__(self, f) -> None:
        self.f, self.sha = f, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.sha.update(data)
        return data


# Keys kept in clear because a process without the passphrase uses them (the gateway's key of its audit text
# digests): never carried in a backup. A restored gateway makes a new one; digests of older requests can then no
# longer be matched against a known text.
UNWRAPPED = ("keys/serve-text.key",)


def _home_files(home: Path) -> list[Path]:
    found = []
    for path in sorted(home.rglob("*")):
        rel = path.relative_to(home)
        if rel.parts[0] in SKIPPED or rel.name.startswith("appliance.db") or rel.as_posix() in UNWRAPPED:
            continue
        if path.is_file():
            found.append(path)
    return found


def backup(ctx: Context, out, say: Say = lambda _: None) -> dict:
    """Write the home and the database to the archive `out` (a path, or a file the admin asked for:
    `userfiles.OutputFile`), which must not exist and must lie outside the home."""
    from appliance import __version__
    from appliance.audit.log import record_alone
    from appliance.audit.verify import Trust, verify_log
    from appliance.userfiles import LocalOutput, as_output

    require(ctx, "backup", "appliance", "home")
    settings = ctx.settings
    out = as_output(out)
    out.exclusive = True
    if isinstance(out, LocalOutput):
        resolved = Path(os.path.abspath(out.path))
        if resolved.is_relative_to(settings.home):
            raise InputError(f"{out.name}: inside the home it backs up; write it elsewhere", param="out")
        if resolved.exists():
            raise InputError(f"{out.name}: already exists; choose a new file", param="out")
        if not resolved.parent.is_dir():
            raise InputError(f"{out.name}: folder {resolved.parent} does not exist", param="out")
    report = verify_log(ctx.engine, Trust.of(settings))
    if not report.ok:
        raise IntegrityError("the audit trail does not verify (" + "; ".join(report.problems)[:300] + ")",
                             hint="audit.verify")
    sqlite = settings.uses_sqlite
    staging = Path(tempfile.mkdtemp(prefix="appliance-backup-"))
    members: dict[str, str] = {}
    total = 0
    try:
        if sqlite:
            db_file = staging / "appliance.db"
            src = sqlite3.connect(make_url(settings.database_url).database)
            dst = sqlite3.connect(db_file)
            with dst:
                src.backup(dst)  # consistent even while the gateway and worker write
            src.close()
            dst.close()
            db_name = "database/appliance.db"
        else:
            db_file = staging / "appliance.pgdump"
            args, env = backup_pg.connection(settings.database_url)
            done = subprocess.run([backup_pg.tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(db_file),
                                   *args], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise StorageError(f"pg_dump failed: {done.stderr.strip().splitlines()[-1] if done.stderr else ''}")
            db_name = "database/appliance.pgdump"
        say(f"database: {'SQLite online backup' if sqlite else 'pg_dump'}, {db_file.stat().st_size:,} bytes")
        with out.open() as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path, name in [(db_file, db_name)] + [(p, "home/" + p.relative_to(settings.home).as_posix())
                                                      for p in _home_files(settings.home)]:
                info = tar.gettarinfo(str(path), arcname=name)
                info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
                with open(path, "rb") as f:
                    reader = _Hashing(f)
                    tar.addfile(info, reader)
                members[name] = reader.sha.hexdigest()
                total += info.size
            manifest = {"format": FORMAT, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                        "appliance_version": __version__, "database": "sqlite" if sqlite else "postgresql",
                        "audit": {"events": report.events, "root": report.root}, "files": members}
            data = json.dumps(manifest, indent=1, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            tar.addfile(info, _bytes(data))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary = {"archive": out.name, "files": len(members) - 1, "bytes": total, "database": manifest["database"],
               "audit_events": report.events, "audit_root": report.root}
    record_alone(ctx, Event("backup.create", "appliance", Path(out.name).name, details={
        k: summary[k] for k in ("files", "bytes", "database", "audit_events")}))
    return summary


def _bytes(data: bytes):
    import io

    return io.BytesIO(data)


def _manifest(tar: tarfile.TarFile, archive: Path) -> dict:
    try:
        member = tar.getmember(MANIFEST)
        manifest = json.loads(tar.extractfile(member).read())
    except KeyError:
        raise InputError(f"{archive}: not an appliance backup (no {MANIFEST})") from None
    except ValueError:
        raise InputError(f"{archive}: {MANIFEST} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"),
                                                                                              dict):
        raise InputError(f"{archive}: {MANIFEST}: unknown backup format {manifest.get('format')!r}"
                         if isinstance(manifest, dict) else f"{archive}: {MANIFEST}: not an object")
    return manifest


def _extract(tar: tarfile.TarFile, archive: Path, manifest: dict, staging: Path) -> Path:
    """Every member checked against the manifest and written under `staging` (home files into staging/home);
    returns the database file. Nothing outside `staging` is touched."""
    expected = dict(manifest["files"])
    database = None
    for member in tar:
        if member.name == MANIFEST:
            continue
        name = member.name
        parts = Path(name).parts
        if (not member.isfile() or name.startswith("/") or ".." in parts or name not in expected
                or parts[0] not in ("home", "database")):
            raise IntegrityError(f"{archive}: {name}: not listed in {MANIFEST} (or not a plain file)")
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        sha = hashlib.sha256()
        source = tar.extractfile(member)
        with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            while chunk := source.read(1 << 20):
                sha.update(chunk)
                out.write(chunk)
        if sha.hexdigest() != expected.pop(name):
            raise IntegrityError(f"{archive}: {name}: sha256 differs from {MANIFEST}; the archive is damaged")
        if parts[0] == "database":
            database = target
    if expected:
        raise IntegrityError(f"{archive}: missing from the archive: {', '.join(sorted(expected)[:5])}")
    if database is None:
        raise IntegrityError(f"{archive}: no database in the archive")
    return database


def _restore_trust(settings: Settings, fingerprint: str | None):
    """What the restored trail is verified against: this install's pinned audit keys (read before anything is
    replaced), or the one key whose fingerprint the operator gives; never the keys inside the archive."""
    import re

    from appliance.audit.verify import Trust

    if fingerprint and not re.fullmatch(r"(sha256:)?[0-9a-fA-F]{64}", fingerprint):
        raise InputError(f"--audit-key {fingerprint}: give the key's whole sha256 fingerprint, 64 hex digits "
                         "(`appliance keys list --json` shows it)", param="audit_key")
    trust = Trust.of(settings, fingerprint=fingerprint, with_anchors=False)
    if not trust.keys and not fingerprint:
        raise InputError(f"no pinned audit keys here ({trust.problems[0] if trust.problems else 'none'}): give "
                         "--audit-key SHA256, the fingerprint of the audit key you trust (`appliance keys list` "
                         "on the old appliance, or its pinned key file)", param="audit_key")
    return trust


def restore(settings: Settings, archive: Path, *, force: bool = False, say: Say = lambda _: None,
            audit_key: str | None = None, reason: str | None = None) -> dict:
    """Restore `archive` into the home of `settings` (which must be empty or absent unless `force`, which moves
    it aside first). The restored audit trail must verify against this install's pinned audit keys (or the key
    `audit_key` names) and hold at least the events the backup recorded; a PostgreSQL dump is restored into a
    scratch database that replaces the live one only after it verifies. A restore that loses events the anchor
    file witnessed needs a `reason` and leaves a signed restore marker there (`backup_loss.py`)."""
    from appliance import backup_loss
    from appliance.audit import anchors
    from appliance.audit.log import record_alone
    from appliance.audit.verify import verify_log
    from appliance.db import connect
    from appliance.keys import pins

    home = settings.home
    if home.exists() and any(home.iterdir()) and not force:
        raise InputError(f"{home} is not empty; restore into a new home, or give --force to move this one aside")
    trust = _restore_trust(settings, audit_key)
    live, live_exists, live_raw = anchors.read_with_bytes(settings)  # the witness, read once before anything moves
    if live_exists and not live_raw and live.problems:
        raise StorageError(live.problems[0])  # unreadable: nothing to carry on, nothing to measure a loss against
    live_database = (home / "appliance.db").is_file() if settings.uses_sqlite else force
    scratch_url = marker = None
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = home.parent / f".{home.name}.restoring-{uuid.uuid4().hex[:8]}"
    staging.mkdir(mode=0o700)
    try:
        try:
            tar = tarfile.open(archive, mode="r:")
        except (tarfile.TarError, OSError) as exc:
            raise InputError(f"{archive}: not a readable backup archive ({exc})") from None
        with tar:
            manifest = _manifest(tar, archive)
            database = _extract(tar, archive, manifest, staging)
        say(f"archive: {len(manifest['files'])} members match {MANIFEST}")
        restored_home = staging / "home"
        restored_home.mkdir(exist_ok=True, mode=0o700)
        for name in SKIPPED:
            (restored_home / name).mkdir(exist_ok=True, mode=0o700)
        if manifest["database"] == "sqlite":
            if not settings.uses_sqlite:
                raise InputError(f"{archive} holds a SQLite database but this appliance is configured for "
                                 "PostgreSQL; restore with APPLIANCE_DATABASE_URL unset")
            os.rename(database, restored_home / "appliance.db")
            url = f"sqlite:///{restored_home / 'appliance.db'}"
        else:
            if settings.uses_sqlite:
                raise InputError(f"{archive} holds a PostgreSQL dump: set APPLIANCE_DATABASE_URL to the (empty) "
                                 "database to restore into")
            url = settings.database_url
            backup_pg.check_target(url, force)
            scratch_url = backup_pg.restore_dump(url, database)
        check = Settings(home=restored_home, file=settings.file, database_url=scratch_url or url, env=settings.env)
        engine = connect(check)
        try:
            report = verify_log(engine, trust)
            wanted = manifest.get("audit", {}).get("events", 0)
            if not report.ok or report.events < wanted:
                raise IntegrityError("the restored audit trail does not verify: "
                                     + ("; ".join(report.problems)[:300] or f"{report.events} events, the backup "
                                                                             f"had {wanted}"))
            say(f"audit trail verified against {trust.pin_source}: {report.events} events, tree head "
                f"{report.root}")
            lost = backup_loss.lost_by(live, report.leaves, report.events) if live_exists else None
            if lost:
                why = backup_loss.require_reason(reason, archive, settings.anchor_path, lost)
                decisions = backup_loss.live_decisions(settings, lost[0]) if live_database else []
                marker = backup_loss.signed_marker(check, engine, report, lost, archive,
                                                   manifest.get("created_at"), why, decisions, settings.anchor_path)
                again = backup_loss.verify_with(engine, trust, live, marker, settings.anchor_path)
                if not again.ok:
                    raise IntegrityError(f"the restored audit trail does not verify against the anchors of "
                                         f"{settings.anchor_path}, even with the loss of events {lost[0]}..{lost[1]} "
                                         f"marked: {again.problems[0]}"[:400])
        except BaseException:
            engine.dispose()
            if scratch_url:
                backup_pg.drop(scratch_url)
            raise
        engine.dispose()
        if live_exists and settings.anchor_path.is_relative_to(home):
            # The anchor file lives in the home here: the restored home keeps witnessing what the live one
            # witnessed (the archive's own copy ends where the backup did).
            kept = check.anchor_path
            kept.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            kept.write_bytes(live_raw)
            os.chmod(kept, 0o640)
        if marker is not None:
            anchors.append_restore(check, marker)  # before the switch: a marker whose restore did not land
            say(marker.note())                      # leaves the live trail verifying (`verify._still_held`)
        if settings.pinned_keys_path.is_relative_to(home):
            # The pins travel in the home: the restored home keeps the ones it was verified against, not the
            # archive's own.
            restored_pins = restored_home / settings.pinned_keys_path.relative_to(home)
            restored_pins.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            restored_pins.unlink(missing_ok=True)
            for key in _verified_keys(check, trust):
                pins.pin(Settings(home=restored_home, file=settings.file, database_url=url, env=settings.env),
                         pem_of(key))
        if scratch_url:
            backup_pg.switch(url, scratch_url, keep_old=force)
        aside = None
        if home.exists():
            if any(home.iterdir()):
                aside = home.with_name(f"{home.name}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%S}")
                os.rename(home, aside)
            else:
                home.rmdir()
        os.rename(restored_home, home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    final = Settings(home=home, file=settings.file,
                     database_url=f"sqlite:///{home / 'appliance.db'}" if manifest["database"] == "sqlite" else url,
                     env=settings.env)
    engine = connect(final)
    record_alone(Context(final, engine), Event("backup.restore", "appliance", archive.name, details={
        "backup_created_at": manifest.get("created_at"), "audit_events": report.events,
        "moved_aside": str(aside) if aside else None,
        "lost": None if marker is None else {"from": marker.lost_from, "to": marker.lost_to,
                                             "reason": marker.reason, "decisions": marker.lost_decisions}}))
    engine.dispose()
    return {"home": str(home), "files": len(manifest["files"]) - 1, "audit_events": report.events,
            "audit_root": report.root, "moved_aside": str(aside) if aside else None,
            "lost": None if marker is None else [marker.lost_from, marker.lost_to]}


def _verified_keys(check: Settings, trust) -> list:
    """The keys the restore verified with: the pinned ones, and the one given by its fingerprint."""
    from appliance.audit.verify import trusted_audit_keys
    from appliance.db import connect

    engine = connect(check)
    try:
        with engine.connect() as conn:
            return list(trusted_audit_keys(conn, trust)[0].values())
    finally:
        engine.dispose()
