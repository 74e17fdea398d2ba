"""`appliance package`, `sign`, `verify`, `approve`, `reject`, `revoke` and `appliance artifacts ...`."""

from __future__ import annotations

import click

from appliance.cli.app import App, cli, emit_json, pass_app
from appliance.identity.roles import require


@cli.command()
@click.argument("run")
@click.option("--name", help="Artifact name (default: the run's name).")
@click.option("--json", "as_json", is_flag=True, help="Print the artifact record as JSON (its directory as \"path\").")
@pass_app
def package(app: App, run: str, name: str | None, as_json: bool) -> None:
    """Package an evaluated RUN: adapter, GGUF LoRA, provenance, eval report, verdict and model card."""
    from appliance.artifacts.package import package as do_package

    artifact = do_package(app.ctx, run, name=name, say=lambda line: click.echo(line, err=True))
    directory = artifact.directory(app.settings)
    if as_json:
        emit_json({**artifact.as_dict(), "path": str(directory)})
        return
    click.echo(f"artifact {artifact.name}: packaged, {len(artifact.files)} files in {directory}")


@cli.command()
@click.argument("artifact")
@pass_app
def sign(app: App, artifact: str) -> None:
    """Sign ARTIFACT (name or directory) with the appliance's artifact key: writes ARTIFACT/model.sig."""
    from appliance.artifacts.signing import sign as do_sign

    signed = do_sign(app.ctx, artifact)
    click.echo(f"artifact {signed.name}: signed with key {signed.signing_key_id[:16]} "
               f"({signed.directory(app.settings) / 'model.sig'})")


@cli.command()
@click.argument("artifact")
@click.option("--json", "as_json", is_flag=True, help="Print every check as JSON.")
@pass_app
def verify(app: App, artifact: str, as_json: bool) -> None:
    """Verify ARTIFACT: signature, trust store and revocations, files, registry and provenance digests.

    ARTIFACT is a name, or a folder holding a copy (a path with a '/', read with your own permissions), which
    is checked against the registry's record of the same name. Exit status 0 only when every check holds,
    4 otherwise."""
    from appliance.artifacts.signing import verify as do_verify
    from appliance.cli.params import InTree

    ref = InTree().convert(artifact, None, click.get_current_context()) if "/" in artifact else artifact
    result = do_verify(app.ctx, ref)
    if as_json:
        emit_json(result.as_dict())
    else:
        for check in result.checks:
            click.echo(f"{'ok' if check['ok'] else 'FAIL':<4}  {check['check']:<10}  {check['detail']}")
        click.echo(f"artifact {result.artifact}: {'verified' if result.ok else 'NOT verified'}")
    if not result.ok:
        raise SystemExit(4)


def _decision(action: str):
    @click.argument("artifact")
    @click.option("--reason", required=True, help="Why; kept in the audit trail.")
    @pass_app
    def command(app: App, artifact: str, reason: str) -> None:
        from appliance.artifacts.approval import decide

        done = decide(app.ctx, artifact, action, reason)
        click.echo(f"artifact {done.name}: {done.status} by {done.decided_by}")

    return command


cli.command("approve", help="Officer: approve a signed ARTIFACT for serving (four eyes; gates must pass).")(
    _decision("approve"))
cli.command("reject", help="Officer: reject a packaged or signed ARTIFACT.")(_decision("reject"))
cli.command("revoke", help="Officer: revoke an approved ARTIFACT; it is no longer served.")(_decision("revoke"))


@cli.group()
def artifacts() -> None:
    """Packaged adapters."""


@artifacts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def artifacts_list(app: App, as_json: bool) -> None:
    """List artifacts and their state."""
    from appliance.artifacts import registry

    require(app.ctx, "read", "artifact", "*")
    found = registry.list_artifacts(app.engine)
    if as_json:
        emit_json([{**a.as_dict(), "path": str(a.directory(app.settings))} for a in found])
        return
    if not found:
        click.echo("no artifacts")
    for a in found:
        click.echo(f"{a.name:<36} {a.status:<9} run {a.run_name:<24} packaged by {a.packaged_by}"
                   + (f", {a.status} by {a.decided_by}" if a.decided_by else ""))


@artifacts.command("show")
@click.argument("artifact")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, with every file's sha256.")
@pass_app
def artifacts_show(app: App, artifact: str, as_json: bool) -> None:
    """Show one artifact: state, who did what, files."""
    from appliance.artifacts import registry

    found = registry.get(app.engine, app.settings, artifact)
    require(app.ctx, "read", "artifact", found.name)
    if as_json:
        emit_json({**found.as_dict(), "path": str(found.directory(app.settings))})
        return
    for key in ("name", "status", "run_name", "eval_id", "packaged_by", "packaged_at", "signed_by", "signed_at",
                "signing_key_id", "decided_by", "decided_at", "decision_reason", "manifest_digest"):
        click.echo(f"{key:<16} {getattr(found, key)}")
    click.echo(f"{'path':<16} {found.directory(app.settings)}")
    for name, digest in sorted(found.files.items()):
        click.echo(f"  {digest}  {name}")
