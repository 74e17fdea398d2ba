"""`appliance keys ...`."""

from __future__ import annotations

import click

from appliance.cli.app import App, cli, emit_json, pass_app
from appliance.cli.params import OutFile
from appliance.userfiles import OutputFile


@cli.group()
def keys() -> None:
    """Signing keys: artifacts and audit checkpoints (admin)."""


@keys.command("init")
@pass_app
def keys_init(app: App) -> None:
    """Create an artifact key and an audit key where none is active."""
    from appliance.keys import store

    created = store.init_keys(app.ctx)
    for k in created:
        click.echo(f"created {k.purpose} key {k.key_id}")
    if not created:
        click.echo("keys already initialised")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def keys_list(app: App, as_json: bool) -> None:
    """List keys with purpose and status (active, retired, revoked)."""
    from appliance.identity.roles import require
    from appliance.keys import store

    require(app.ctx, "read", "key", "*")
    found = store.list_keys(app.engine)
    if as_json:
        emit_json([{k: getattr(x, k) for k in ("key_id", "purpose", "status", "created_at", "retired_at",
                                               "revoked_at", "revoked_reason", "public_pem")} for x in found])
        return
    for x in found:
        click.echo(f"{x.key_id[:16]}  {x.purpose:<8} {x.status:<8} created {x.created_at}"
                   + (f"  revoked: {x.revoked_reason}" if x.revoked_reason else ""))


@keys.command("rotate")
@click.option("--purpose", type=click.Choice(["artifact", "audit"]), required=True)
@pass_app
def keys_rotate(app: App, purpose: str) -> None:
    """Replace the active key; the old one stays trusted for what it signed."""
    from appliance.keys import store

    k = store.rotate(app.ctx, purpose)
    click.echo(f"new {purpose} key {k.key_id}")


@keys.command("revoke")
@click.argument("key_id")
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@pass_app
def keys_revoke(app: App, key_id: str, reason: str) -> None:
    """Put a key on the revocation list; nothing it signed verifies afterwards."""
    from appliance.keys import store

    k = store.revoke(app.ctx, key_id, reason)
    click.echo(f"revoked {k.purpose} key {k.key_id[:16]}")


@keys.command("export-public")
@click.option("--out", required=True, type=OutFile(mode=0o644), help="Where to write the PEM.")
@click.option("--purpose", type=click.Choice(["artifact", "audit"]), default="artifact", show_default=True)
@pass_app
def keys_export_public(app: App, out: OutputFile, purpose: str) -> None:
    """Write the active public key (PEM); artifact signatures verify with it."""
    from appliance.identity.roles import require
    from appliance.keys import store

    require(app.ctx, "read", "key", purpose)
    k = store.export_public(app.ctx, out, purpose)
    click.echo(f"wrote {purpose} public key {k.key_id[:16]} to {out}")


@keys.command("enroll")
@pass_app
def keys_enroll(app: App) -> None:
    """Make your personal signing key (officer, engineer), in your own process, and enrol it.

    The key stays in your home (APPLIANCE_PERSONAL_KEYS, default ~/.local/share/appliance/keys), encrypted under
    a passphrase of yours (APPLIANCE_PERSONAL_PASSPHRASE_FILE, or asked on your terminal); or, with
    APPLIANCE_PERSONAL_PKCS11 naming your token's PKCS#11 module (APPLIANCE_PERSONAL_TOKEN its label where there
    are several), it is made on your smart card, USB key or HSM and never leaves it (its PIN from
    APPLIANCE_PERSONAL_PIN_FILE, or asked). It signs your decisions once root has pinned it: read its
    fingerprint, printed here, to whoever runs `appliance keys pin`."""
    from appliance.keys import enrolment

    entry = enrolment.enroll(app.ctx)
    click.echo(f"enrolled personal key {entry.key_id} for {entry.user} ({entry.role}), from OS account "
               f"{entry.os_user} (uid {entry.os_uid})")
    click.echo(f"it signs nothing that counts until root pins it: appliance keys pin {entry.key_id}")


def _pin_file_is_mine() -> None:
    """Refuse at once unless this account may append to the pin file: its place comes from APPLIANCE_TRUST_DIR and
    the home alone, so nothing of the home need be read to tell."""
    import os

    from appliance.config import FileSettings, Settings
    from appliance.control.routing import home_of
    from appliance.keys import people

    people.check_writable(Settings(home_of(os.environ), FileSettings(), "", dict(os.environ)))


def _keep_database_owner(settings):
    """Root opening a SQLite home in place may create its -wal/-shm files: they go back to the home's owner."""
    import contextlib
    import os

    if not settings.uses_sqlite or os.geteuid() != 0:
        return contextlib.nullcontext()
    database = settings.home / "appliance.db"

    @contextlib.contextmanager
    def keep():
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                owner = database.stat()
                for suffix in ("-wal", "-shm"):
                    side = database.with_name(database.name + suffix)
                    if side.exists() and side.stat().st_uid != owner.st_uid:
                        os.chown(side, owner.st_uid, owner.st_gid)
    return keep()


@keys.command("pin")
@click.argument("fingerprint")
@pass_app
def keys_pin(app: App, fingerprint: str) -> None:
    """Root: pin the enrolled personal key FINGERPRINT (the whole sha256 its holder reads out to you).

    Runs here, never through the control socket: the pin file (APPLIANCE_TRUST_DIR/people-keys.jsonl on an
    install) is root's, and only what is pinned there signs decisions. Prints whom the key was enrolled by."""
    from appliance.audit.events import Event
    from appliance.audit.log import record_alone
    from appliance.context import Actor
    from appliance.keys import enrolment

    _pin_file_is_mine()  # before the home (which only the service account reads) is opened
    with _keep_database_owner(app.settings):
        key = enrolment.pin(app.settings, app.engine, fingerprint)
        click.echo(f"pinned {key.key_id} for {key.user} ({key.role}), enrolled from OS account {key.os_user} "
                   f"(uid {key.os_uid}, {'from the kernel' if key.os_source == 'peer' else 'in-process'}) in "
                   f"{app.settings.people_keys_path}")
        record_alone(app.system_ctx, Event("key.pin", "key", key.key_id, details={
            "user": key.user, "role": key.role, "pin_file": str(app.settings.people_keys_path)}),
            Actor(app.who.os.name, "system", "local"))


@keys.command("unpin")
@click.argument("fingerprint")
@click.option("--reason", required=True, help="Why; kept in the pin file and the audit trail.")
@pass_app
def keys_unpin(app: App, fingerprint: str, reason: str) -> None:
    """Root: revoke a pinned personal key; nothing it signed counts any more, whenever it was signed."""
    from appliance.audit.events import Event
    from appliance.audit.log import record_alone
    from appliance.context import Actor
    from appliance.keys import people

    _pin_file_is_mine()
    with _keep_database_owner(app.settings):
        key = people.revoke(app.settings, fingerprint, reason)
        click.echo(f"revoked personal key {key.key_id} of {key.user} in {app.settings.people_keys_path}")
        record_alone(app.system_ctx, Event("key.unpin", "key", key.key_id, reason=reason,
                                           details={"user": key.user}), Actor(app.who.os.name, "system", "local"))


@keys.command("people")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def keys_people(app: App, as_json: bool) -> None:
    """List enrolled personal keys and whether root pinned (or revoked) them."""
    from appliance.identity.roles import require
    from appliance.keys import enrolment, people

    require(app.ctx, "read", "key", "people")
    pinned = people.read(app.settings)
    rows = []
    for e in enrolment.enrolments(app.engine):
        key = pinned.get(e.key_id)
        state = "not pinned" if key is None else f"revoked ({key.revoked})" if key.revoked else "pinned"
        rows.append({"key_id": e.key_id, "user": e.user, "role": e.role, "os_user": e.os_user, "os_uid": e.os_uid,
                     "enrolled_at": e.enrolled_at, "state": state})
    if as_json:
        emit_json({"keys": rows, "pin_file_problem": pinned.problem})
        return
    for r in rows:
        click.echo(f"{r['key_id'][:16]}  {r['user']:<16} {r['role']:<9} {r['os_user']:<12} {r['state']}")
    if not rows:
        click.echo("no personal key enrolled")
