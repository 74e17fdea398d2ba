"""`appliance init --admin`, `login`, `logout`, `whoami`, `users ...`, `tokens ...`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from appliance.cli.app import App, cli, emit_json, pass_app
from appliance.errors import InputError

_PASSWORD_FILE = click.option("--password-file", type=click.Path(path_type=Path),
                              help="Read the password from the first line of this file (never from argv).")


def read_password(path: Path | None, *, confirm: bool, prompt: str = "Password") -> str:
    """From a file's first line, or an interactive prompt; never from the command line."""
    if path is not None:
        try:
            lines = path.read_text("utf-8").splitlines()
        except OSError as exc:
            raise InputError(f"{path}: cannot read password file: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: password file is not UTF-8 text") from None
        if not lines or not lines[0]:
            raise InputError(f"{path}: password file is empty")
        return lines[0]
    if not sys.stdin.isatty():
        raise InputError("no password: give --password-file FILE, or run interactively")
    return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)


def bootstrap_admin(app: App, name: str, password: str) -> list[str]:
    """Keys and the first admin of a new install; what was done, in words. Safe to re-run."""
    from appliance.identity import users
    from appliance.keys import store

    done = []
    ctx = app.system_ctx
    created = store.init_keys(ctx)
    done += [f"created {k.purpose} key {k.key_id[:16]}" for k in created]
    if users.count_users(app.engine) == 0:
        users.add_user(ctx, name, "admin", password)
        done.append(f"created admin {name!r}")
    else:
        existing = users.get_user(app.engine, name) if name else None
        if existing is None or existing.role != "admin":
            raise InputError(f"this appliance already has users; {name!r} is not its admin")
        done.append(f"admin {name!r} already exists")
    return done


@cli.command()
@click.option("--admin", "admin_name", metavar="NAME", help="Also create the signing keys and this first admin.")
@_PASSWORD_FILE
@pass_app
def init(app: App, admin_name: str | None, password_file: Path | None) -> None:
    """Create APPLIANCE_HOME (0700) and the database, or migrate them; with --admin, keys and the first admin.

    Safe to re-run. The key passphrase comes from APPLIANCE_KEY_PASSPHRASE_FILE (or [keys] passphrase_file,
    or APPLIANCE_KEY_PASSPHRASE); the admin's password from --password-file or a prompt.
    """
    from appliance.audit.events import Event
    from appliance.audit.log import record_alone
    from appliance.db import connect, migrate
    from appliance.fsutil import ensure_private_dir

    settings = app.settings
    for path in settings.owned_dirs:
        ensure_private_dir(path)
    engine = connect(settings, create=True)
    applied = migrate(engine)
    click.echo(f"home: {settings.home}")
    click.echo(f"database: {engine.dialect.name}; "
               + (f"applied migrations {', '.join(map(str, applied))}" if applied else "schema up to date"))
    if applied:
        record_alone(app.system_ctx, Event("appliance.init", "appliance", str(settings.home),
                                           details={"migrations": applied}))
    if admin_name:
        from appliance.identity.users import check_name
        from appliance.keys.crypto import passphrase

        check_name(admin_name)
        passphrase(settings)  # fail before asking for a password
        for line in bootstrap_admin(app, admin_name, read_password(password_file, confirm=True)):
            click.echo(line)


@cli.command()
@click.argument("name")
@_PASSWORD_FILE
@pass_app
def login(app: App, name: str, password_file: Path | None) -> None:
    """Log in as NAME; later commands by this OS user act as NAME until logout or expiry."""
    from appliance.identity import sessions

    actor, expires = sessions.login(app.system_ctx, name, read_password(password_file, confirm=False))
    click.echo(f"logged in as {actor.user} ({actor.role}) until {expires}")


@cli.command()
@pass_app
def logout(app: App) -> None:
    """End this OS user's session."""
    from appliance.identity import sessions

    click.echo("logged out" if sessions.logout(app.system_ctx) else "not logged in")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def whoami(app: App, as_json: bool) -> None:
    """Show who commands act as."""
    from appliance.identity import sessions

    info = sessions.whoami(app.settings, app.engine)
    if as_json:
        emit_json(info)
    else:
        until = f" until {info['expires_at']}" if info.get("expires_at") else ""
        click.echo(f"{info['user']} ({info['role']}, {info['auth']}){until}")


@cli.group()
def users() -> None:
    """Manage users (admin)."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["admin", "engineer", "officer", "user"]))
@_PASSWORD_FILE
@pass_app
def users_add(app: App, name: str, role: str, password_file: Path | None) -> None:
    """Add a user with a role."""
    from appliance.identity import users as u
    from appliance.identity.roles import require

    ctx = app.ctx
    u.check_name(name)
    require(ctx, "users.manage", "user", name)  # before asking for a password
    user = u.add_user(ctx, name, role, read_password(password_file, confirm=True))
    click.echo(f"added {user.name} ({user.role})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def users_list(app: App, as_json: bool) -> None:
    """List users."""
    from appliance.identity import users as u

    found = u.list_users(app.ctx)
    if as_json:
        emit_json([x.as_dict() for x in found])
        return
    for x in found:
        state = "disabled" if x.disabled else ("locked" if x.locked_until else "active")
        click.echo(f"{x.name:<24} {x.role:<9} {state:<9} created {x.created_at} by {x.created_by}")


@users.command("disable")
@click.argument("name")
@pass_app
def users_disable(app: App, name: str) -> None:
    """Disable a user and revoke their sessions."""
    from appliance.identity import users as u

    u.set_disabled(app.ctx, name, True)
    click.echo(f"disabled {name}")


@users.command("enable")
@click.argument("name")
@pass_app
def users_enable(app: App, name: str) -> None:
    """Enable a disabled user."""
    from appliance.identity import users as u

    u.set_disabled(app.ctx, name, False)
    click.echo(f"enabled {name}")


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(["admin", "engineer", "officer", "user"]))
@pass_app
def users_set_role(app: App, name: str, role: str) -> None:
    """Change a user's role."""
    from appliance.identity import users as u

    u.set_role(app.ctx, name, role)
    click.echo(f"{name} is now {role}")


@cli.group()
def tokens() -> None:
    """API tokens for automation and the gateway (admin)."""


@tokens.command("create")
@click.option("--user", "user_name", required=True, help="The user the token acts as.")
@click.option("--adapters", help="Comma-separated adapters the token may query (default: all it may).")
@click.option("--expires-days", type=int, help="Days until the token expires (default: never).")
@click.option("--json", "as_json", is_flag=True, help='Print {"token": ...} as JSON.')
@pass_app
def tokens_create(app: App, user_name: str, adapters: str | None, expires_days: int | None, as_json: bool) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    from appliance.identity import tokens as t

    names = [a.strip() for a in adapters.split(",") if a.strip()] if adapters else None
    secret, info = t.create(app.ctx, user_name, names, expires_days)
    if as_json:
        emit_json({"token": secret, **info.as_dict()})
    else:
        click.echo(secret)
        click.echo(f"token {info.id} for {info.user}; shown once, store it now", err=True)


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def tokens_list(app: App, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    from appliance.identity import tokens as t

    found = t.list_tokens(app.ctx)
    if as_json:
        emit_json([x.as_dict() for x in found])
        return
    for x in found:
        state = "revoked" if x.revoked_at else (f"expires {x.expires_at}" if x.expires_at else "no expiry")
        click.echo(f"{x.id}  {x.user:<20} {state:<32} adapters: {','.join(x.adapters) if x.adapters else 'any'}")


@tokens.command("revoke")
@click.argument("token_id")
@pass_app
def tokens_revoke(app: App, token_id: str) -> None:
    """Revoke a token by its id."""
    from appliance.identity import tokens as t

    t.revoke(app.ctx, token_id)
    click.echo(f"revoked {token_id}")
