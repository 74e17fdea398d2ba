"""`appliance console`: the Streamlit admin console."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path

import click

from appliance.cli.app import App, cli, pass_app


def streamlit_command(host: str, port: int) -> list[str]:
    """`streamlit run` on the console script: headless, XSRF protection on, usage statistics off, no file
    watcher, no development mode."""
    script = Path(__file__).resolve().parents[1] / "console" / "app.py"
    return [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--server.enableXsrfProtection", "true", "--server.enableCORS", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--global.developmentMode", "false", "--client.toolbarMode", "minimal",
            "--server.maxUploadSize", "200", "--theme.base", "light"]


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback exposes the console to the network.")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
@click.option("--gateway", "gateway_url", default="http://127.0.0.1:8000", show_default=True,
              help="The gateway (`appliance serve`) the Serving and Playground pages talk to.")
@pass_app
def console(app: App, host: str, port: int, gateway_url: str) -> None:
    """Open the admin console (Streamlit) for this appliance home.

    Users sign in with their appliance password; pages and buttons follow their role, and every action is
    the same library call as the CLI's, with the same checks and audit events. Stop with Ctrl-C."""
    from appliance import offline
    from appliance.errors import InputError

    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise InputError(f"--host {host!r}: give an IP address (127.0.0.1, ::1, or an interface's)") from None
    if not loopback:
        click.echo(f"warning: listening on {host}, reachable from the network; put TLS in front", err=True)
    env = {**os.environ, **offline.OFFLINE_ENV, "APPLIANCE_HOME": str(app.settings.home),
           "APPLIANCE_GATEWAY_URL": gateway_url, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    click.echo(f"console for {app.settings.home} at http://{host}:{port}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    command = streamlit_command(host, port)
    # Streamlit replaces this process, so a service manager's SIGTERM reaches the server itself.
    os.execve(command[0], command, env)
