"""`appliance bundle ...`: the offline bundle IT carries across the air gap."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli.app import cli, emit_json


@cli.group()
def bundle() -> None:
    """Build the offline bundle on a connected machine; verify it on the target."""


@bundle.command("keygen")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for release-key.pem (encrypted) and release-key.pub.pem.")
def bundle_keygen(out_dir: Path) -> None:
    """Create the release key that signs bundles (encrypted with the key passphrase: APPLIANCE_KEY_PASSPHRASE_FILE).

    Hand release-key.pub.pem, and its fingerprint, to IT by a channel other than the bundle."""
    from appliance.bundle import keygen
    from appliance.config import load_settings
    from appliance.keys.crypto import passphrase

    private, public, print_ = keygen(out_dir, passphrase(load_settings()))
    click.echo(f"release key: {private} (encrypted, 0600); public key: {public}; fingerprint sha256:{print_}")


@bundle.command("build")
@click.option("--profile", type=click.Choice(["cpu", "cuda"]), required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A new (or empty) folder for the bundle.")
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The release key (release-key.pem; its passphrase from APPLIANCE_KEY_PASSPHRASE_FILE).")
@click.option("--model", "models", multiple=True,
              help="Add a model pack: a model registered in APPLIANCE_HOME, its files and digests (repeatable).")
@click.option("--lock", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The lock to fetch (default offline-wheels/requirements-PROFILE.lock).")
@click.option("--find-links", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Also look for wheels in this folder (repeatable).")
@click.option("--no-index", is_flag=True, help="Only --find-links folders and pip's cache; no package index.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def bundle_build(profile: str, out: Path, key_path: Path, models: tuple[str, ...], lock: Path | None,
                 find_links: tuple[Path, ...], no_index: bool, as_json: bool) -> None:
    """Build the offline bundle for PROFILE (on a machine that reaches the package index).

    Every wheel the lock names is fetched and checked against its sha256 (packages published only as source are
    built into wheels); the appliance's own wheel is built from this checkout; the bundle gets its install lock,
    a CycloneDX SBOM and a manifest of every file's sha256 signed with the release key."""
    from appliance.bundle import build
    from appliance.config import load_settings
    from appliance.keys.crypto import passphrase

    settings = load_settings()
    summary = build(profile, out, key_path, passphrase(settings), lock=lock, find_links=find_links,
                    no_index=no_index, models=models, home_settings=settings if models else None,
                    say=lambda line: click.echo(line, err=True))
    if as_json:
        emit_json(summary)
        return
    click.echo(f"bundle {summary['bundle']} ({profile}): {summary['wheels']} wheels, {summary['files']} files, "
               f"signed by release key sha256:{summary['key_fingerprint'][:16]}")


@bundle.command("verify")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--public-key", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The release public key IT received separately (never the copy inside the bundle).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def bundle_verify(directory: Path, public_key: Path, as_json: bool) -> None:
    """Check a bundle offline: the manifest's signature, every file's sha256, nothing missing or added, the
    install lock against the wheels. Exit 0 only if all holds (4 otherwise), naming each problem."""
    from appliance.bundle import verify

    report = verify(directory, public_key)
    if as_json:
        emit_json(report.as_dict())
    elif report.ok:
        click.echo(f"bundle {directory}: verified ({report.profile}, {report.files} files, release key "
                   f"sha256:{report.key_fingerprint[:16]})")
    else:
        click.echo(f"bundle {directory}: NOT verified")
        for problem in report.problems:
            click.echo(f"  {problem}")
    if not report.ok:
        raise SystemExit(4)
