"""The root command, what every command needs, and the one place where errors become messages and exit codes.

A command runs in this process when the home is the invoking account's own, and inside the appliance service
otherwise (`control/`): the same code either way, with the caller (`cli/caller.py`) telling who is on the other
end and how to reach their files and session.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from functools import cached_property

import click

from appliance import __version__
from appliance.config import Settings, load_settings
from appliance.errors import ApplianceError, InputError

INTERNAL_ERROR = 70


@dataclass
class App:
    """What a command needs, built on first use so `--help` and `version` stay fast."""

    caller: object | None = None  # cli.caller.Caller; None: this process's own account
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    argv: list[str] = field(default_factory=list)  # the command line being run

    @cached_property
    def settings(self) -> Settings:
        return load_settings()

    @cached_property
    def engine(self):
        from appliance.db import connect, require_current

        engine = connect(self.settings)
        require_current(engine)
        return engine

    @cached_property
    def who(self):
        """The caller: given (through the control socket) or this process's own account."""
        from appliance.cli.caller import local_caller

        return self.caller if self.caller is not None else local_caller(self.settings, self.argv)

    @property
    def remote(self) -> bool:
        return bool(getattr(self.caller, "remote", False))

    @property
    def system_ctx(self):
        """The appliance acting for itself (bootstrap, login attempts before anyone is identified), on behalf
        of the caller's OS account."""
        from appliance.context import Context

        return Context(self.settings, self.engine, correlation_id=self.correlation_id, os=self.who.os)

    @cached_property
    def ctx(self):
        """The logged-in user (this OS account's session) or the owner of a control token; a refusal is audited."""
        from appliance.errors import PermissionDenied
        from appliance.identity import sessions

        system = self.system_ctx
        try:
            actor = sessions.current_actor(system, self.who.store, self.who.token)
        except PermissionDenied as exc:
            sessions.deny_unauthenticated(system, "authenticate", str(exc))
            raise
        return dataclasses.replace(system.acting_as(actor), personal=self.who.keys)

    def service_account_only(self, what: str) -> None:
        """Refuse, through the control socket, what only the service account runs (its own units)."""
        if self.remote:
            raise InputError(f"{what} runs as the appliance's service account (its systemd unit), not through "
                             "the control socket")


pass_app = click.make_pass_decorator(App, ensure=True)


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli() -> None:
    """Air-gapped fine-tuning appliance: scrub, train, evaluate, sign, approve and serve adapters offline.

    Everything it writes lives under APPLIANCE_HOME (default ./var). A home that belongs to another account
    (the service account of an installed appliance) is reached through the appliance service's socket
    (APPLIANCE_SOCKET, default /run/appliance/control.sock): you act as yourself, your files are read with
    your permissions. No command opens a network connection except to loopback.
    """


@cli.command()
def version() -> None:
    """Print the appliance's version."""
    click.echo(f"appliance {__version__}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--gateway", metavar="URL",
              help="Also ask the gateway running at URL (e.g. http://127.0.0.1:8000) whether it is ready and what "
                   "it serves.")
@pass_app
def doctor(app: App, as_json: bool, gateway: str | None) -> None:
    """Check the install: versions, home permissions, database, model digests, offline settings."""
    from appliance import doctor as doc

    report = doc.run(app.settings, gateway=gateway)
    if as_json:
        emit_json(report.as_dict())
    else:
        width = max(len(c.name) for c in report.checks)
        for c in report.checks:
            click.echo(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
        click.echo("healthy" if report.ok else "NOT healthy")
    if not report.ok:
        raise SystemExit(1)


def _param_label(argv: list[str], param: str | None) -> str | None:
    """How the command line spells a library parameter: its option (`--expires-days`) or argument (`RUN`)."""
    if not param:
        return None
    from appliance.control.routing import command_path

    command: click.Command = cli
    for word in command_path(argv, cli):
        command = command.commands[word]  # type: ignore[attr-defined]
    for p in command.params:
        if p.name in (param, f"{param}_file"):  # a secret's parameter is the file it is read from
            if isinstance(p, click.Option):
                return max(p.opts, key=len)
            return p.human_readable_name
    return "--" + param.replace("_", "-")


def run_command(argv: list[str], app: App) -> int:
    """Run one command line; user mistakes become one line on stderr and a non-zero exit, never a traceback."""
    app.argv = list(argv)
    try:
        from appliance.control.routing import service_only

        if app.remote and service_only(argv, cli):
            app.service_account_only(f"`appliance {' '.join(w for w in argv if not w.startswith('-'))[:40]}`")
        rv = cli.main(args=argv, prog_name="appliance", standalone_mode=False, obj=app)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except ApplianceError as exc:
        click.echo(f"error: {exc.render(_param_label(argv, exc.param), 0)}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:
        if os.environ.get("APPLIANCE_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (set APPLIANCE_DEBUG=1 for a traceback)",
                   err=True)
        return INTERNAL_ERROR


def main(argv: list[str] | None = None) -> int:
    """Entry point: in this process, or through the appliance service when the home is another account's."""
    os.umask(0o077)
    from appliance.chatter import silence

    silence()  # before any command imports the libraries that chatter
    argv = list(sys.argv[1:] if argv is None else argv)
    from appliance.control.routing import home_of, route

    socket_path = route(argv, os.environ, cli)
    if socket_path is not None:
        from appliance.control.client import Client
        from appliance.identity.session_file import session_path

        return Client(socket_path, os.environ, session_path(os.environ, str(home_of(os.environ)))).run(argv)
    return run_command(argv, App())


def entry() -> None:
    sys.exit(main())
