"""`appliance backup` and `appliance restore`."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli.app import App, cli, emit_json, pass_app
from appliance.cli.params import OutFile
from appliance.userfiles import OutputFile


@cli.command("backup")
@click.option("--out", "out", required=True, type=OutFile(exclusive=True),
              help="The archive to write (a new file outside the home; written as you).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def backup_cmd(app: App, out: OutputFile, as_json: bool) -> None:
    """Back up the home and its database into one archive (admin).

    SQLite is copied with its online backup API and PostgreSQL with pg_dump, so the appliance may keep
    running. The audit trail must verify first; the archive lists the sha256 of every file and is written
    0600: it holds the encrypted keys and the database, so keep it as carefully as the home."""
    from appliance.backup import backup

    summary = backup(app.ctx, out, say=lambda line: click.echo(line, err=True))
    if as_json:
        emit_json(summary)
        return
    click.echo(f"backup {summary['archive']}: {summary['files']} files and the {summary['database']} database, "
               f"{summary['bytes']:,} bytes; audit trail {summary['audit_events']} events")


@cli.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True,
              help="Restore over a home (or PostgreSQL database) that is not empty: the home is moved aside to "
                   "HOME.before-restore-TIMESTAMP first (a PostgreSQL database to NAME_before_restore_TIMESTAMP).")
@click.option("--audit-key", metavar="SHA256",
              help="Verify the restored audit trail against this audit key (its fingerprint, as `appliance keys "
                   "list` shows it) instead of the keys pinned here; the archive's own keys are never trusted.")
@click.option("--reason", help="Why, when the restore loses events the anchor file witnessed (an older backup): "
                               "recorded in the signed restore marker that `audit verify` names.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def restore_cmd(archive: Path, force: bool, audit_key: str | None, reason: str | None, as_json: bool) -> None:
    """Restore a backup into APPLIANCE_HOME (run as the appliance's system user, with the services stopped).

    Every file is checked against the archive's manifest before anything is put in place, the restored audit
    trail must verify against this install's pinned audit keys (or --audit-key), and only then is the restored
    home renamed into place; a PostgreSQL dump goes into a scratch database that replaces the live one only
    after it verifies. Restoring a backup older than what the anchor file witnessed loses the events since: it
    needs --reason, and appends a restore marker signed with the audit key (the lost range, the signed decisions
    among them, the archive, who ran it and why) that `audit verify` then names; a revocation it lost keeps its
    adapter from being served."""
    from appliance.backup import restore
    from appliance.config import load_settings

    summary = restore(load_settings(), archive, force=force, audit_key=audit_key, reason=reason,
                      say=lambda line: click.echo(line, err=True))
    if as_json:
        emit_json(summary)
        return
    click.echo(f"restored {summary['files']} files into {summary['home']}; audit trail verified "
               f"({summary['audit_events']} events)"
               + (f"; the previous home is at {summary['moved_aside']}" if summary["moved_aside"] else "")
               + (f"; events {summary['lost'][0]}..{summary['lost'][1]} lost, marked in the anchor file"
                  if summary["lost"] else ""))
