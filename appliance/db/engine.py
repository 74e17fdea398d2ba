"""Engines for SQLite (WAL, foreign keys on, busy timeout) and PostgreSQL, and one-transaction sessions."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session

from appliance.config import Settings
from appliance.errors import ConfigError, StorageError


def _sqlite_pragmas(dbapi_conn, _record, busy_ms: int = 30000) -> None:
    dbapi_conn.isolation_level = None  # the driver's own BEGIN is replaced by _sqlite_begin
    cur = dbapi_conn.cursor()  # SQLite's per-connection settings: PRAGMAs, at driver level (no Core construct)
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: the audit indexes stay in memory as the log grows
    cur.close()


_driver_sql: dict[tuple, tuple[str, tuple[str, ...]]] = {}


def driver_sql(dialect, statement) -> tuple[str, tuple[str, ...]]:
    """A Core statement (module-level, built once) as the driver's SQL with positional parameters, and the names
    of its parameters in their order: for the few hot paths that run at driver level (executemany without
    SQLAlchemy's per-row work, a server-side cursor), still built from `db/tables.py` rather than written out."""
    key = (dialect.name, statement)
    if key not in _driver_sql:
        positional = dialect if dialect.paramstyle in ("qmark", "format") else type(dialect)(paramstyle="format")
        compiled = statement.compile(dialect=positional)
        _driver_sql[key] = (compiled.string, tuple(compiled.positiontup or ()))
    return _driver_sql[key]


WRITE = {"appliance_write": True}


def _sqlite_begin(conn) -> None:
    """A writing transaction (`session_scope`, `writing(engine).begin()`) takes the write lock up front, so
    concurrent appenders queue on busy_timeout instead of failing when a read snapshot is upgraded to a write;
    a read (`engine.connect()`) takes a WAL snapshot and never blocks, nor is blocked by, a writer."""
    # SQLite's own transaction modes, which SQLAlchemy does not express: driver level
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("appliance_write") else "BEGIN")


_writing: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def writing(engine: Engine) -> Engine:
    """The engine for a transaction that writes: on SQLite it begins IMMEDIATE (one per engine, made once)."""
    if engine.get_execution_options().get("appliance_write"):
        return engine
    if engine not in _writing:
        _writing[engine] = engine.execution_options(**WRITE)
    return _writing[engine]


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


def bounded_engine(url: str, wait_seconds: float) -> Engine:
    """An engine of its own whose writes give up after `wait_seconds` (SQLite's busy timeout, PostgreSQL's lock
    and statement timeouts) instead of the usual 30 s: a writer that must fail fast rather than hold requests."""
    from functools import partial

    parsed = make_url(url)
    ms = int(wait_seconds * 1000)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": wait_seconds})
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_ms=ms))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True,
                         connect_args={"options": f"-c lock_timeout={ms} -c statement_timeout={ms}"})


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
    """One writing transaction: committed when the block ends, rolled back on any exception."""
    with Session(writing(engine), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
