"""The root command, what every command needs, and the one place where errors become messages and exit codes."""

from __future__ import annotations

import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from functools import cached_property

import click

from appliance import __version__
from appliance.config import Settings, load_settings
from appliance.errors import ApplianceError

INTERNAL_ERROR = 70


@dataclass
class App:
    """What a command needs, built on first use so `--help` and `version` stay fast."""

    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @cached_property
    def settings(self) -> Settings:
        return load_settings()

    @cached_property
    def engine(self):
        from appliance.db import connect, require_current

        engine = connect(self.settings)
        require_current(engine)
        return engine

    @property
    def system_ctx(self):
        """The appliance acting for itself (bootstrap, login attempts before anyone is identified)."""
        from appliance.context import Context

        return Context(self.settings, self.engine, correlation_id=self.correlation_id)

    @cached_property
    def ctx(self):
        """The logged-in user (session file) or the owner of APPLIANCE_TOKEN; a refusal is audited."""
        from appliance.errors import PermissionDenied
        from appliance.identity import sessions

        try:
            actor = sessions.current_actor(self.settings, self.engine)
        except PermissionDenied as exc:
            sessions.deny_unauthenticated(self.system_ctx, "authenticate", str(exc))
            raise
        return self.system_ctx.acting_as(actor)


pass_app = click.make_pass_decorator(App, ensure=True)


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli() -> None:
    """Air-gapped fine-tuning appliance: scrub, train, evaluate, sign, approve and serve adapters offline.

    Everything it writes lives under APPLIANCE_HOME (default ./var). No command opens a network
    connection except to loopback.
    """


@cli.command()
def version() -> None:
    """Print the appliance's version."""
    click.echo(f"appliance {__version__}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
def doctor(app: App, as_json: bool) -> None:
    """Check the install: versions, home permissions, database, model digests, offline settings."""
    from appliance import doctor as doc

    report = doc.run(app.settings)
    if as_json:
        emit_json(report.as_dict())
    else:
        width = max(len(c.name) for c in report.checks)
        for c in report.checks:
            click.echo(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
        click.echo("healthy" if report.ok else "NOT healthy")
    if not report.ok:
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes become one line on stderr and a non-zero exit, never a traceback."""
    os.umask(0o077)
    try:
        rv = cli.main(args=argv, prog_name="appliance", standalone_mode=False)
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
        click.echo(f"error: {exc}", err=True)
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


def entry() -> None:
    sys.exit(main())
