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
        click.echo(f"created {k.purpose} key {k.key_id[:16]}")
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
    click.echo(f"new {purpose} key {k.key_id[:16]}")


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
