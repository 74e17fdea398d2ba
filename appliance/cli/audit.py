"""`appliance audit ...`."""

from __future__ import annotations

import json

import click

from appliance.cli.app import App, cli, emit_json, pass_app
from appliance.cli.params import InFile, OutFile
from appliance.identity.roles import require
from appliance.userfiles import InputFile, OutputFile


@cli.group()
def audit() -> None:
    """The tamper-evident audit trail (officer, admin)."""


@audit.command("verify")
@click.option("--checkpoint", "checkpoint_file", type=InFile(),
              help="Checkpoints kept elsewhere (one exported, or JSON lines: a copy of the anchor file or of the "
                   "journal's appliance-audit lines): proves no truncation or rewrite since.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
def audit_verify(app: App, checkpoint_file: InputFile | None, as_json: bool) -> None:
    """Recompute every event's hash and the Merkle tree; check every event against its leaf anchored outside the
    database as it was committed, every signed checkpoint (stored, anchored, given) against the pinned audit keys,
    and that events not yet anchored are within the audit policy's cadence. Exit 0 only if all holds."""
    from appliance.audit import actions
    from appliance.audit.verify import read_checkpoint_file

    exported = read_checkpoint_file(checkpoint_file) if checkpoint_file else None
    report = actions.verify(app.ctx, exported)
    if as_json:
        emit_json(report.as_dict())
    else:
        for problem in report.problems:
            click.echo(f"FAIL: {problem}")
        for note in report.notes:
            click.echo(f"note: {note}")
        if report.ok:
            click.echo(f"OK: {report.events} events, {report.checkpoints_checked} checkpoint comparisons, "
                       f"tree head {report.root}")
            click.echo(f"anchored outside the database: {report.anchored} events; not yet anchored: "
                       f"{report.unanchored} (within the cadence)")
        elif report.first_bad_seq is not None:
            click.echo(f"first bad sequence number: {report.first_bad_seq}")
    if not report.ok:
        raise SystemExit(4)


@audit.command("checkpoint")
@click.option("--out", required=True, type=OutFile(mode=0o644), help="Where to write the checkpoint JSON.")
@pass_app
def audit_checkpoint(app: App, out: OutputFile) -> None:
    """Sign a checkpoint of the log as it is now and export it, for anchoring elsewhere."""
    from appliance.audit import actions

    cp = actions.checkpoint(app.ctx)
    out.write_bytes((json.dumps(cp.as_dict(), indent=1) + "\n").encode())
    click.echo(f"checkpoint: {cp.tree_size} events, root {cp.root}, written to {out}")


@audit.command("log")
@click.option("--since", help="Only events at or after this UTC time (ISO 8601, e.g. 2026-11-28 or 2026-11-28T10:00).")
@click.option("--actor", help="Only events by this user.")
@click.option("--action", help="Only this action (e.g. user.login); a trailing * matches a prefix.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def audit_log(app: App, since: str | None, actor: str | None, action: str | None, limit: int,
              as_json: bool) -> None:
    """Show audit events, newest last: who (appliance user, OS account; * when the kernel named it) and what."""
    from appliance.audit.query import search

    require(app.ctx, "audit.read", "audit", "log")
    events = search(app.engine, since=since, actor=actor, action=action, limit=limit)
    if as_json:
        emit_json(events)
        return
    from appliance.terminal import safe

    for e in events:  # what people and clients wrote is shown escaped: no escape sequence reaches the terminal
        obj = safe(f"{e['object_type']}:{e['object_id']}")
        why = f" ({safe(e['reason'])})" if e["reason"] else ""
        who = safe(f"{e['actor']} ({e['os_user']}{'*' if e['os_source'] == 'peer' else ''})" if e["os_user"]
                   else e["actor"])
        click.echo(f"{e['seq']:>7}  {safe(e['ts'][:19])}  {who:<28} {safe(e['action']):<22} {safe(e['outcome']):<6} "
                   f"{obj}{why}")


@audit.command("export")
@click.option("--out", required=True, type=OutFile(), help="The evidence pack, F.zip.")
@pass_app
def audit_export(app: App, out: OutputFile) -> None:
    """Write an evidence pack: events, checkpoints, public keys, a standalone verifier and a README."""
    from appliance.audit import actions

    summary = actions.export(app.ctx, out)
    click.echo(f"evidence pack: {summary['events']} events, {summary['checkpoints']} checkpoints -> {out}")
