"""`appliance config check`: validate a settings file before it is put in place (Ansible's `validate:`)."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli.app import cli


@cli.group("config")
def config_group() -> None:
    """The settings file, `APPLIANCE_HOME/appliance.toml`."""


@config_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def check_cmd(path: Path) -> None:
    """Validate PATH as an `appliance.toml` without using it: every problem named, exit 2 if any.

    Needs no home and no database, so a configuration manager can check a rendered file before installing it."""
    from appliance.config import check_config_file

    check_config_file(path)
    click.echo(f"{path}: valid")
