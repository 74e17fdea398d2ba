"""`appliance service`: the control socket people's `appliance` commands reach the appliance through."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli.app import App, cli, pass_app


@cli.command()
@click.option("--socket", "socket_path", type=click.Path(path_type=Path),
              help="Where to listen (default: the socket systemd passes, from appliance-control.socket).")
@pass_app
def service(app: App, socket_path: Path | None) -> None:
    """Serve people's commands on the control socket (runs as the appliance's service account).

    Each connection is one command, run in a child process that knows the caller from the kernel's peer
    credentials: they act as themselves (their own session, bound to their OS account), files they name are
    read by their own `appliance` process, and every audit event records their OS account. The socket is mode
    0660 in the service account's group: membership of that group is CLI access. Stop with SIGTERM."""
    from appliance.control.server import serve
    from appliance.errors import StorageError

    app.service_account_only("`appliance service`")
    app.engine.dispose()  # checks the database is there and current; the children open their own connections
    from appliance.db.engine import _engine_for

    _engine_for.cache_clear()
    app.__dict__.pop("engine", None)
    try:
        serve(socket_path)
    except OSError as exc:
        raise StorageError(f"control socket: {exc}") from None
