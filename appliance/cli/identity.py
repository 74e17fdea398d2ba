"""`appliance init --admin`, `login`, `logout`, `whoami`, `passwd`, `users ...`, `tokens ...`."""

from __future__ import annotations

import sys

import click

from appliance.cli.app import App, cli, emit_json, pass_app
from appliance.cli.params import InFile
from appliance.errors import InputError
from appliance.userfiles import InputFile

_PASSWORD_FILE = click.option("--password-file", type=InFile(),
                              help="Read the password from the first line of this file (never from argv).")


def read_password(source: InputFile | None, *, confirm: bool, prompt: str = "Password",
                  flag: str = "--password-file") -> str:
    """From a file's first line (read with the caller's permissions), or an interactive prompt on the caller's
    terminal; never from the command line."""
    if source is not None:
        return source.first_line("password")
    if not sys.stdin.isatty():
        raise InputError(f"no password: give {flag} FILE, or run interactively")
    return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)


def bootstrap_admin(app: App, name: str, password: str) -> list[str]:
    """Keys and the first admin of a new install; what was done, in words. Safe to re-run."""
    from appliance.identity import users
    from appliance.keys import store

    done = []
    ctx = app.system_ctx
    created = store.init_keys(ctx)
    done += [f"created {k.purpose} key {k.key_id}" for k in created]  # whole: the installer pins what it created
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
@click.option("--embedded", "embedded", metavar="MODEL", multiple=True,
              help="Also register this model shipped with the appliance, if it is not yet (repeatable; the "
                   "appliance registers it itself, as it creates the keys).")
@pass_app
def init(app: App, admin_name: str | None, password_file: InputFile | None, embedded: tuple[str, ...]) -> None:
    """Create APPLIANCE_HOME (0700) and the database, or migrate them; with --admin, keys and the first admin.

    Safe to re-run. The key passphrase comes from APPLIANCE_KEY_PASSPHRASE_FILE (or [keys] passphrase_file,
    or APPLIANCE_KEY_PASSPHRASE); the admin's password from --password-file or a prompt. It is one-time: the
    admin changes it at the first login (`appliance passwd`).
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
    for name in embedded:
        from appliance.errors import NotFound
        from appliance.models import registry

        try:
            registry.get_model(app.engine, name)
            click.echo(f"embedded model {name!r} already registered")
        except NotFound:
            model = registry.import_embedded(app.system_ctx, name).model
            click.echo(f"registered embedded model {model.name} (sha256 {model.digest[:16]}...)")


@cli.command()
@click.argument("name")
@_PASSWORD_FILE
@pass_app
def login(app: App, name: str, password_file: InputFile | None) -> None:
    """Log in as NAME; later commands by this OS account act as NAME until logout or expiry.

    The session is bound to this OS account: a copy of its file is refused anywhere else. A password set by
    someone else (a new account, a reset) must be changed first: `appliance passwd`."""
    from appliance.identity import sessions

    actor, expires = sessions.login(app.system_ctx, app.who.store, name, read_password(password_file, confirm=False))
    click.echo(f"logged in as {actor.user} ({actor.role}) until {expires}")
    if actor.must_change_password:
        click.echo("your password was set by someone else and works once: choose your own now with "
                   "`appliance passwd` (nothing else is allowed until then)")


@cli.command()
@pass_app
def logout(app: App) -> None:
    """End this OS account's session."""
    from appliance.identity import sessions

    click.echo("logged out" if sessions.logout(app.system_ctx, app.who.store) else "not logged in")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def whoami(app: App, as_json: bool) -> None:
    """Show who commands act as, and as which OS account."""
    from appliance.identity import sessions

    info = sessions.whoami(app.system_ctx, app.who.store, app.who.token)
    if as_json:
        emit_json(info)
    else:
        until = f" until {info['expires_at']}" if info.get("expires_at") else ""
        change = "; must change the password (`appliance passwd`)" if info["must_change_password"] else ""
        click.echo(f"{info['user']} ({info['role']}, {info['auth']}){until}, OS account {info['os_user']} "
                   f"(uid {info['os_uid']}){change}")


@cli.command()
@click.option("--old-password-file", type=InFile(), help="The current password, from this file's first line.")
@click.option("--new-password-file", type=InFile(), help="The new password, from this file's first line.")
@pass_app
def passwd(app: App, old_password_file: InputFile | None, new_password_file: InputFile | None) -> None:
    """Change your own password (the current one is needed); your other sessions end."""
    from appliance.identity import sessions, users

    ctx = app.ctx
    old = read_password(old_password_file, confirm=False, prompt="Current password", flag="--old-password-file")
    new = read_password(new_password_file, confirm=True, prompt="New password", flag="--new-password-file")
    user = users.change_password(ctx, old, new, keep_session=sessions.session_id(app.who.store))
    click.echo(f"password of {user.name} changed")


@cli.group()
def users() -> None:
    """Manage users (admin)."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["admin", "engineer", "officer", "user"]))
@click.option("--os-user", help="The OS account (uid, or the directory's name under SSSD/LDAP) this person works "
                                "from; a login from any other is refused. Default: the one of their first login.")
@_PASSWORD_FILE
@pass_app
def users_add(app: App, name: str, role: str, os_user: str | None, password_file: InputFile | None) -> None:
    """Add a user with a role, bound to one OS account. The password works once: they choose their own at the
    first login."""
    from appliance.identity import users as u
    from appliance.identity.roles import require

    ctx = app.ctx
    u.check_name(name)
    require(ctx, "users.manage", "user", name)  # before asking for a password
    if os_user:
        u.os_account(os_user)
    user = u.add_user(ctx, name, role, read_password(password_file, confirm=True), os_user=os_user)
    bound = f", bound to OS account {user.os_user}" if user.os_user else ", bound at their first login"
    click.echo(f"added {user.name} ({user.role}){bound}")


@users.command("reset-password")
@click.argument("name")
@pass_app
def users_reset_password(app: App, name: str) -> None:
    """Give NAME a new one-time password (printed once) and end their sessions and tokens."""
    from appliance.identity import users as u

    password = u.reset_password(app.ctx, name)
    click.echo(password)
    click.echo(f"one-time password for {name}; shown once: they must change it at the next login", err=True)


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
        state = ("disabled" if x.disabled else "locked" if x.locked_until else
                 "one-time password" if x.must_change_password else "active")
        bound = x.os_user or "(first login)"
        reach = "" if x.adapters is None else f" adapters {','.join(x.adapters) or '(none)'}"
        limited = " own limits" if x.limits else ""
        click.echo(f"{x.name:<24} {x.role:<9} {state:<9} OS {bound:<14} created {x.created_at} by "
                   f"{x.created_by}{reach}{limited}")


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


def _limit(name: str):
    """The option's text as a number (`identity.access` checks it is a positive one), or "policy"."""
    def parse(ctx, param, value):
        if value is None or value == "policy":
            return value
        try:
            return float(value) if name == "requests_per_minute" else int(value)
        except ValueError:
            raise click.BadParameter(f"{value!r}: a positive number, or 'policy'") from None
    return parse


@users.command("limit")
@click.argument("name")
@click.option("--adapters", help="Comma-separated adapters NAME may query at the gateway, whatever token they use; "
                                 "'any' for every served adapter.")
@click.option("--requests-per-minute", callback=_limit("requests_per_minute"), metavar="N|policy",
              help="Their requests a minute, across all their tokens ('policy': the serving policy's).")
@click.option("--burst", callback=_limit("burst"), metavar="N|policy", help="Requests they may send at once "
                                                                            "before the rate applies.")
@click.option("--max-concurrent", callback=_limit("max_concurrent"), metavar="N|policy",
              help="Their requests in flight at once, across all their tokens.")
@pass_app
def users_limit(app: App, name: str, adapters: str | None, requests_per_minute, burst, max_concurrent) -> None:
    """Set what NAME may use at the gateway: the adapters and their request limits (admin). They hold for the
    user, not a token: a token can narrow its adapters, never add one, and all their tokens share one set of
    limits. Options left out keep their current value."""
    from appliance.identity import access

    given = {"requests_per_minute": requests_per_minute, "burst": burst, "max_concurrent": max_concurrent}
    names: list[str] | None | str = "keep"
    if adapters is not None:
        names = None if adapters.strip() == access.EVERY else [a for a in adapters.split(",") if a.strip()]
    user = access.set_access(app.ctx, name, adapters=names, limits={k: v for k, v in given.items() if v is not None})
    own = user.limits.as_dict() if user.limits else {}
    shown = ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in own.items()) or "the serving policy's"
    reach = "any adapter" if user.adapters is None else ", ".join(user.adapters) or "no adapter"
    click.echo(f"{user.name} may query {reach}; limits: {shown}")


@cli.group()
def tokens() -> None:
    """API tokens: for the gateway, or for the command line (control scope)."""


@tokens.command("create")
@click.option("--user", "user_name", help="The user the token acts as (default: you).")
@click.option("--scope", type=click.Choice(["gateway", "control"]), default="gateway", show_default=True,
              help="gateway: queries served models only. control: the command line (APPLIANCE_TOKEN) with its "
                   "owner's powers: for yourself, or (admin) for a service account of role user.")
@click.option("--os-user", help="control scope, for a service account: the OS account its automation runs as "
                                "(your own token is bound to your OS account).")
@click.option("--adapters", help="Comma-separated adapters the token may query, of those its user may (default: "
                                 "all its user may; `users limit` sets those).")
@click.option("--expires-days", type=int, help="Days until the token expires (default: never).")
@click.option("--json", "as_json", is_flag=True, help='Print {"token": ...} as JSON.')
@pass_app
def tokens_create(app: App, user_name: str | None, scope: str, os_user: str | None, adapters: str | None,
                  expires_days: int | None, as_json: bool) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    from appliance.identity import tokens as t

    names = [a.strip() for a in adapters.split(",") if a.strip()] if adapters else None
    secret, info = t.create(app.ctx, user_name, names, expires_days, scope=scope, os_user=os_user)
    if as_json:
        emit_json({"token": secret, **info.as_dict()})
    else:
        click.echo(secret)
        click.echo(f"{info.scope} token {info.id} for {info.user}; shown once, store it now", err=True)


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def tokens_list(app: App, as_json: bool) -> None:
    """List tokens (never their secrets): every token for an admin, your own otherwise."""
    from appliance.identity import tokens as t

    found = t.list_tokens(app.ctx)
    if as_json:
        emit_json([x.as_dict() for x in found])
        return
    for x in found:
        state = "revoked" if x.revoked_at else (f"expires {x.expires_at}" if x.expires_at else "no expiry")
        click.echo(f"{x.id}  {x.user:<20} {x.scope:<8} {state:<32} "
                   f"adapters: {','.join(x.adapters) if x.adapters else 'any'}")


@tokens.command("revoke")
@click.argument("token_id")
@pass_app
def tokens_revoke(app: App, token_id: str) -> None:
    """Revoke a token by its id (your own, or any as admin)."""
    from appliance.identity import tokens as t

    t.revoke(app.ctx, token_id)
    click.echo(f"revoked {token_id}")
