"""Which side a command runs on. A home that belongs to the person running `appliance` (a developer's
machine, the demo, the tests) is used in-process. A home that belongs to someone else (the service account
of an installed appliance) is reached through the appliance service's socket. A few commands need no home
and always run here; a few are the service account's own and never go through the socket."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_SOCKET = "/run/appliance/control.sock"
CLIENT_SIDE = (("version",), ("config", "check"), ("bundle",), ("policies", "check"))
SERVICE_ONLY = (("serve",), ("worker",), ("console",), ("service",), ("init",), ("restore",))


def command_path(argv: list[str]) -> tuple[str, ...]:
    """The command's words (`("data", "ingest")`), found by walking the command groups."""
    import click

    from appliance.cli.app import cli

    command: click.Command = cli
    words: list[str] = []
    for token in argv:
        if not isinstance(command, click.Group):
            break
        if token.startswith("-"):
            continue
        sub = command.commands.get(token)
        if sub is None:
            break
        words.append(token)
        command = sub
    return tuple(words)


def _matches(words: tuple[str, ...], table) -> bool:
    return any(words[:len(prefix)] == prefix for prefix in table)


def home_of(env: Mapping[str, str]) -> Path:
    value = env.get("APPLIANCE_HOME", "").strip()
    return Path(os.path.abspath(Path(value).expanduser() if value else Path.cwd() / "var"))


def route(argv: list[str], env: Mapping[str, str]) -> Path | None:
    """The service's socket when this command must go through it; None to run it in this process."""
    words = command_path(argv)
    if not words or "--help" in argv or "-h" in argv or _matches(words, CLIENT_SIDE):
        return None
    try:
        owned = os.stat(home_of(env)).st_uid == os.geteuid()
    except PermissionError:  # a home this account may not even look at
        owned = False
    except OSError:  # no home (yet): `init` makes one here, unless a service is named
        return Path(env["APPLIANCE_SOCKET"]) if env.get("APPLIANCE_SOCKET") else None
    if owned:
        return None
    return Path(env.get("APPLIANCE_SOCKET") or DEFAULT_SOCKET)


def service_only(argv: list[str]) -> bool:
    return _matches(command_path(argv), SERVICE_ONLY)
