"""Engines for SQLite (WAL, foreign keys on, busy timeout) and PostgreSQL, and one-transaction sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import Session, create_engine

from appliance.config import Settings
from appliance.errors import ConfigError, StorageError


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # the driver's own BEGIN is replaced by _sqlite_begin
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: the audit indexes stay in memory as the log grows
    cur.close()


def placeholder(dialect) -> str:
    """The driver's positional parameter marker, for driver-level SQL (sqlite3: ?, psycopg: %s)."""
    return "?" if dialect.paramstyle == "qmark" else "%s"


def _sqlite_begin(conn) -> None:
    """Every transaction takes the write lock up front, so concurrent appenders queue on busy_timeout
    instead of failing when a read snapshot is upgraded to a write."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("database URL is not a valid SQLAlchemy URL") from None
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def connect(settings: Settings, create: bool = False) -> Engine:
    """The engine for these settings; opening it is checked so a bad URL or dead server is one clear error.
    A SQLite file is only created when `create` is set (by `appliance init`)."""
    if settings.uses_sqlite and not create:
        path = make_url(settings.database_url).database
        if path and path != ":memory:" and not Path(path).is_file():
            raise StorageError(f"the appliance is not initialised here ({settings.home}): run `appliance init` first")
    engine = _engine_for(settings.database_url)
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "cannot connect"
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        raise StorageError(f"database {where}: {reason}") from None
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back on any exception."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
