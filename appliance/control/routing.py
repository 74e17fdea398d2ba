"""Which side a command runs on. APPLIANCE_SOCKET set: through that socket (the operators' `appliance`
wrapper of an install sets it). Otherwise a home that belongs to the person running `appliance` (a developer's
machine, the demo, the tests) is used in-process, and a home that belongs to someone else (the service account
of an installed appliance) is reached through the default socket. A few commands need no home and always run
here; a few are the service account's own and are refused through the socket."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_SOCKET = "/run/appliance/control.sock"
# `keys pin`/`unpin` are root's acts on root's pin file: in its own process, wherever the home is.
CLIENT_SIDE = (("version",), ("config", "check"), ("bundle",), ("policies", "check"), ("keys", "pin"),
               ("keys", "unpin"))
SERVICE_ONLY = (("serve",), ("worker",), ("console",), ("service",), ("init",), ("restore",))


def command_path(argv: list[str], root) -> tuple[str, ...]:
    """The command's words (`("data", "ingest")`), found by walking the command groups from `root`."""
    import click

    command: click.Command = root
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


def route(argv: list[str], env: Mapping[str, str], root) -> Path | None:
    """The service's socket when this command (of the command group `root`) must go through it; None to run it
    in this process."""
    words = command_path(argv, root)
    if not words or "--help" in argv or "-h" in argv or _matches(words, CLIENT_SIDE):
        return None
    if env.get("APPLIANCE_SOCKET"):
        return Path(env["APPLIANCE_SOCKET"])
    try:
        owned = os.stat(home_of(env)).st_uid == os.geteuid()
    except PermissionError:  # a home this account may not even look at
        owned = False
    except OSError:  # no home (yet): `init` makes one here
        return None
    return None if owned else Path(DEFAULT_SOCKET)


def service_only(argv: list[str], root) -> bool:
    return _matches(command_path(argv, root), SERVICE_ONLY)
