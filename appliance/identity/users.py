"""Users: create, list, disable, change role, passwords (change, reset, one-time), and authenticate with a
lockout after repeated failures, counted per account and OS account (`login_failure`): someone guessing from their
own OS account locks out only their own attempts, never the account's owner.

A password set by someone else (`users add`, `users reset-password`, the first admin of `init`) is one-time:
until its owner changes it the account may do nothing else. Failed logins are counted in one atomic UPDATE,
so N parallel wrong guesses count N; every refusal reads the same whether or not the account exists.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, false, func, insert, select, update

from appliance.audit.events import Event
from appliance.audit.log import record, record_alone
from appliance.context import Actor, Context
from appliance.db import session_scope
from appliance.db.tables import api_token, auth_session, login_failure
from appliance.db.tables import app_user as t
from appliance.errors import AlreadyExists, InputError, NotFound, PermissionDenied
from appliance.identity import passwords
from appliance.identity.access import UserLimits, read_adapters
from appliance.identity.roles import ROLES, require

NAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
REFUSAL = "invalid user name or password, or the account is locked or disabled"


@dataclass(frozen=True)
class User:
    id: str
    name: str
    role: str
    disabled: bool
    failed_logins: int
    locked_until: str | None
    created_at: str
    created_by: str
    must_change_password: bool = False
    password_changed_at: str | None = None
    os_user: str | None = None  # the OS account this account is used from; None until its first login
    os_uid: int | None = None
    adapters: list[str] | None = None  # the adapters they may query at the gateway; None for every one
    limits: UserLimits | None = None  # their own gateway limits; None for the serving policy's

    def as_dict(self) -> dict:
        found = {k: getattr(self, k) for k in ("name", "role", "disabled", "failed_logins", "locked_until",
                                               "created_at", "created_by", "must_change_password",
                                               "password_changed_at", "os_user", "os_uid", "adapters")}
        return {**found, "limits": self.limits.as_dict() if self.limits else None}

    def actor(self, auth: str) -> Actor:
        return Actor(self.name, self.role, auth, self.must_change_password)


_USER = [t.c[f.name] for f in fields(User)]  # every column but the password's hash


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime | None = None) -> str:
    return (moment or _now()).isoformat(timespec="seconds")


def _user(row) -> User:
    values = {f.name: row._mapping[f.name] for f in fields(User)}  # Boolean columns read back as bool
    values["os_uid"] = None if values["os_uid"] is None else int(values["os_uid"])
    values["adapters"], values["limits"] = read_adapters(values["adapters"]), UserLimits.read(values["limits"])
    return User(**values)


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InputError(f"user name {name!r}: use 2-64 lowercase letters, digits, '.', '_' or '-', "
                         "starting with a letter")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InputError(f"role {role!r}: must be one of {', '.join(ROLES)}")
    return role


def _one(engine, column: str, value: str) -> User:
    with engine.connect() as conn:
        row = conn.execute(select(*_USER).where(t.c[column] == value)).first()
    if row is None:
        raise NotFound(f"no user named {value!r}" if column == "name" else f"no user with id {value!r}")
    return _user(row)


def get_user(engine, name: str) -> User:
    return _one(engine, "name", name)


def user_by_id(engine, user_id: str) -> User:
    return _one(engine, "id", user_id)


def list_users(ctx: Context) -> list[User]:
    require(ctx, "users.manage", "user", "*")
    with ctx.engine.connect() as conn:
        return [_user(r) for r in conn.execute(select(*_USER).order_by(t.c.name)).all()]


def count_users(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t)).scalar())


def os_account(os_user: str) -> int:
    """The uid of an OS account of this host (the directory's, where SSSD or LDAP provides it)."""
    import pwd

    try:
        return pwd.getpwnam(os_user).pw_uid
    except KeyError:
        raise InputError(f"no OS account named {os_user!r} on this host", param="os_user") from None


def add_user(ctx: Context, name: str, role: str, password: str, os_user: str | None = None) -> User:
    """A new account whose password, chosen by the admin (or the installer), must be changed at first login. It is
    bound to the OS account `os_user`, or (when none is given) to the one its first login comes from."""
    check_name(name)
    check_role(role)
    require(ctx, "users.manage", "user", name)
    passwords.check_policy(name, password, ctx.settings.file.identity.min_password_length)
    uid = os_account(os_user) if os_user else None
    pw_hash = passwords.hash_password(password)
    user = User(uuid.uuid4().hex, name, role, False, 0, None, _stamp(), ctx.actor.user, True, None, os_user, uid)
    with session_scope(ctx.engine) as s:
        if s.execute(select(t.c.id).where(t.c.name == name)).first():
            raise AlreadyExists(f"user {name!r} already exists")
        s.execute(insert(t).values(id=user.id, name=name, role=role, password_hash=pw_hash, disabled=False,
                                   failed_logins=0, created_at=user.created_at, created_by=user.created_by,
                                   must_change_password=True, os_user=os_user, os_uid=uid))
        record(ctx, s, Event("user.create", "user", name, details={"role": role, "one_time": True,
                                                                    "bound_os_user": os_user}))
    return user


def bind_os_account(ctx: Context, user: User) -> User:
    """The account's one OS account: refused (the one refusal text) from any other; an account created without one
    is bound to the OS account of its first login from the command line, and that is audited."""
    if user.os_uid is not None:
        if user.os_uid != ctx.os.uid:
            _refuse(ctx, user.name, f"OS account {ctx.os.describe()} is not the one {user.name} is bound to "
                                    f"({user.os_user}, uid {user.os_uid})", user.actor("password"))
        return user
    with session_scope(ctx.engine) as s:
        bound = s.execute(update(t).where(t.c.id == user.id, t.c.os_uid.is_(None))
                          .values(os_user=ctx.os.name, os_uid=ctx.os.uid).returning(t.c.id)).first()
        if bound is not None:
            record(ctx, s, Event("user.bind", "user", user.name, details={"os_user": ctx.os.name, "os_uid": ctx.os.uid,
                                                                         "how": "first login"}),
                   user.actor("password"))
    fresh = get_user(ctx.engine, user.name)
    return bind_os_account(ctx, fresh) if bound is None else fresh


def _revoke_access(s, user_id: str, *, sessions_too: bool = True, tokens_too: bool = False,
                   keep_session: str | None = None) -> None:
    stamp = _stamp()
    if sessions_too:
        c = auth_session.c
        s.execute(update(auth_session).where(c.user_id == user_id, c.revoked_at.is_(None), c.id != (keep_session or ""))
                  .values(revoked_at=stamp))
    if tokens_too:
        c = api_token.c
        s.execute(update(api_token).where(c.user_id == user_id, c.revoked_at.is_(None)).values(revoked_at=stamp))


def set_disabled(ctx: Context, name: str, disabled: bool = True) -> User:
    require(ctx, "users.manage", "user", name)
    user = get_user(ctx.engine, name)
    if name == ctx.actor.user and disabled:
        raise InputError("you cannot disable yourself")
    with session_scope(ctx.engine) as s:
        s.execute(update(t).where(t.c.id == user.id).values(disabled=disabled))
        if disabled:
            _revoke_access(s, user.id)
        record(ctx, s, Event("user.disable" if disabled else "user.enable", "user", name))
    return get_user(ctx.engine, name)


def set_role(ctx: Context, name: str, role: str) -> User:
    check_role(role)
    require(ctx, "users.manage", "user", name)
    user = get_user(ctx.engine, name)
    if name == ctx.actor.user:
        raise InputError("you cannot change your own role")
    with session_scope(ctx.engine) as s:
        s.execute(update(t).where(t.c.id == user.id).values(role=role))
        _revoke_access(s, user.id, tokens_too=True)  # what they held was minted under the old role
        record(ctx, s, Event("user.set_role", "user", name, details={
            "from": user.role, "to": role, "revoked": "every session and API token of theirs"}))
    return get_user(ctx.engine, name)


def one_time_password(name: str, min_length: int) -> str:
    while True:
        candidate = secrets.token_urlsafe(max(min_length, 18))
        try:
            passwords.check_policy(name, candidate, min_length)
            return candidate
        except InputError:
            continue


def reset_password(ctx: Context, name: str) -> str:
    """Admin: give NAME a new one-time password (returned, shown once) and revoke every session and token of
    theirs; they must change it at the next login."""
    require(ctx, "users.manage", "user", name)
    user = get_user(ctx.engine, name)
    if name == ctx.actor.user:
        raise InputError("reset your own password with `appliance passwd` (the old password is needed)")
    password = one_time_password(name, ctx.settings.file.identity.min_password_length)
    pw_hash = passwords.hash_password(password)
    with session_scope(ctx.engine) as s:
        s.execute(update(t).where(t.c.id == user.id).values(password_hash=pw_hash, must_change_password=True,
                                                            failed_logins=0, locked_until=None))
        s.execute(delete(login_failure).where(login_failure.c.user_id == user.id))
        _revoke_access(s, user.id, tokens_too=True)
        record(ctx, s, Event("user.reset_password", "user", name,
                             details={"revoked": "every session and API token of theirs"}))
    return password


def change_password(ctx: Context, old: str, new: str, *, keep_session: str | None = None) -> User:
    """The acting user changes their own password: the old one is checked (a wrong one counts towards the
    lockout), the new one must pass the policy and differ; their other sessions end."""
    require(ctx, "password.change", "user", ctx.actor.user)
    user = authenticate(ctx, ctx.actor.user, old)
    if new == old:
        raise InputError("the new password must differ from the old one", param="new_password")
    passwords.check_policy(user.name, new, ctx.settings.file.identity.min_password_length)
    pw_hash = passwords.hash_password(new)
    with session_scope(ctx.engine) as s:
        s.execute(update(t).where(t.c.id == user.id).values(password_hash=pw_hash, must_change_password=False,
                                                            password_changed_at=_stamp()))
        _revoke_access(s, user.id, keep_session=keep_session)
        record(ctx, s, Event("user.passwd", "user", user.name,
                             details={"was_one_time": user.must_change_password}))
    return get_user(ctx.engine, user.name)


def _count_failure(s, user_id: str, os_uid: int) -> int:
    """One more failure for (account, OS account), in one atomic statement: N parallel guesses count N."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
    f = login_failure.c
    statement = dialect.insert(login_failure).values(user_id=user_id, os_uid=os_uid, failures=1)
    statement = statement.on_conflict_do_update(index_elements=[f.user_id, f.os_uid],
                                                set_={"failures": f.failures + 1}).returning(f.failures)
    return int(s.execute(statement).scalar())


def failures(engine, name: str, os_uid: int) -> tuple[int, str | None]:
    """(failures counted, locked until) for this account from this OS account."""
    f = login_failure.c
    with engine.connect() as conn:
        row = conn.execute(select(f.failures, f.locked_until).join_from(login_failure, t, t.c.id == f.user_id)
                           .where(t.c.name == name, f.os_uid == os_uid)).first()
    return (0, None) if row is None else (int(row[0]), row[1])


def _refuse(ctx: Context, name: str, reason: str, actor: Actor, **details) -> None:
    record_alone(ctx, Event("user.login", "user", name, outcome="denied", reason=reason, details=details), actor)
    raise PermissionDenied(REFUSAL)


def authenticate(ctx: Context, name: str, password: str) -> User:
    """Check a password; failures count towards a lockout, and every outcome is audited. Every refusal says
    the same (REFUSAL) and costs one password verification, whatever the reason."""
    cfg = ctx.settings.file.identity
    anonymous = Actor(name if NAME_RE.match(name) else "unknown", "none", "password")
    with ctx.engine.connect() as conn:
        row = conn.execute(select(t.c.password_hash, *_USER).where(t.c.name == name)).first()
    if row is None:
        passwords.dummy_verify(password)
        _refuse(ctx, anonymous.user, "unknown user", anonymous)
    stored_hash, user = row.password_hash, _user(row)
    actor = user.actor("password")
    matches = passwords.verify_password(stored_hash, password)
    now = _now()
    if user.disabled:
        _refuse(ctx, name, "user is disabled", actor)
    f = login_failure.c
    mine = (f.user_id == user.id, f.os_uid == ctx.os.uid)  # failures count per account and OS account
    with ctx.engine.connect() as conn:
        locked_until = conn.execute(select(f.locked_until).where(*mine)).scalar()
    if locked_until and datetime.fromisoformat(locked_until) > now:
        _refuse(ctx, name, "locked out", actor, until=locked_until, os_uid=ctx.os.uid)
    if not matches:
        with session_scope(ctx.engine) as s:
            failures = _count_failure(s, user.id, ctx.os.uid)
            record(ctx, s, Event("user.login", "user", name, outcome="denied", reason="wrong password",
                                 details={"failures": failures}), actor)
            if failures >= cfg.lockout_attempts:
                until = _stamp(now + timedelta(minutes=cfg.lockout_minutes))
                s.execute(update(login_failure).where(*mine).values(failures=0, locked_until=until))
                record(ctx, s, Event("user.lockout", "user", name, outcome="denied",
                                     reason=f"{failures} failed logins from OS account {ctx.os.name}",
                                     details={"minutes": cfg.lockout_minutes, "until": until,
                                              "os_uid": ctx.os.uid}), actor)
        raise PermissionDenied(REFUSAL)
    with session_scope(ctx.engine) as s:
        # Still not locked (a parallel guess may have locked it meanwhile): the check and the reset are one step.
        unlocked = f.locked_until.is_(None) | (f.locked_until <= _stamp(now))
        enabled = s.execute(select(t.c.id).where(t.c.id == user.id, t.c.disabled == false())).first()
        held = s.execute(select(f.locked_until).where(*mine)).first()
        cleared = enabled is not None and (held is None or s.execute(
            update(login_failure).where(*mine, unlocked).values(failures=0, locked_until=None)
            .returning(f.user_id)).first() is not None)
    if not cleared:
        _refuse(ctx, name, "locked out", actor)
    return user
