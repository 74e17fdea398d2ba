"""`appliance policies ...`: the installed gating policies, and a dry run of a candidate."""

from __future__ import annotations

import click

from appliance.cli.app import App, cli, emit_json, pass_app
from appliance.cli.params import InFile
from appliance.userfiles import InputFile


@cli.group()
def policies() -> None:
    """The gating policies (pii, training, release, serving), installed by root in the policy folder."""


@policies.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def policies_list(app: App, as_json: bool) -> None:
    """Each installed policy with its digest; a change since last seen is recorded (policy.change)."""
    from appliance import policies as p
    from appliance.identity.roles import require

    require(app.ctx, "read", "policy", "*")
    report = p.installed_report(app.ctx)
    if as_json:
        emit_json(report)
        return
    for entry in report:
        digest = entry["digest"][:16] + "..." if entry["digest"] else "INVALID"
        extra = f"  strictness {entry['strictness']}" if "strictness" in entry else ""
        click.echo(f"{entry['policy']:<9} {digest:<20} {entry['admitted']} version(s) in the audit trail  "
                   f"{entry['file']}{extra}")
        if not entry["valid"]:
            click.echo(f"          {entry['error']}")


@policies.command("check")
@click.argument("file", type=InFile())
@click.option("--kind", type=click.Choice(["pii", "training", "release", "serving", "audit"]),
              help="Which policy FILE is (default: its name, e.g. pii.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def policies_check(file: InputFile, kind: str | None, as_json: bool) -> None:
    """Validate FILE as a policy without installing it; for a scrub policy, the strictness it would get."""
    from appliance import policies as p

    report = p.check_file(file, kind)
    if as_json:
        emit_json(report)
        return
    extra = f"; strictness {report['strictness']} (scrubs {', '.join(report['covered']) or 'nothing'})" \
        if "strictness" in report else ""
    click.echo(f"{report['file']}: valid {report['policy']} policy, sha256 {report['digest'][:16]}...{extra}")
