"""Numbered, append-only schema migrations.

Each migration is a list of portable SQL statements (SQLite and PostgreSQL). Applied migrations are
recorded with a checksum of their text, so an edited old migration is detected: history is only ever
extended by appending a new number, never rewritten.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert, inspect, select, text
from sqlalchemy.engine import Engine

from appliance.db.engine import writing
from appliance.db.tables import schema_migrations
from appliance.errors import StorageError


@dataclass(frozen=True)
class PerDialect:
    """A statement that differs between SQLite and PostgreSQL (triggers, mostly)."""

    sqlite: str
    postgresql: str


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    statements: tuple[str | PerDialect, ...]

    @property
    def checksum(self) -> str:
        parts = [s if isinstance(s, str) else f"{s.sqlite}\n--\n{s.postgresql}" for s in self.statements]
        return hashlib.sha256("\n;\n".join(parts).encode()).hexdigest()

    def sql_for(self, dialect: str) -> list[str]:
        return [s if isinstance(s, str) else getattr(s, dialect) for s in self.statements]


def _append_only(table: str) -> tuple[PerDialect, ...]:
    """Triggers that refuse UPDATE and DELETE on an audit table. Verification never relies on them."""
    return (
        PerDialect(
            sqlite=f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
            postgresql=f"CREATE TRIGGER {table}_no_update BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION appliance_append_only()",
        ),
        PerDialect(
            sqlite=f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
            postgresql=f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION appliance_append_only()",
        ),
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "base model registry", (
        """CREATE TABLE base_model (
            id VARCHAR(32) PRIMARY KEY,
            name VARCHAR(128) NOT NULL UNIQUE,
            source VARCHAR(32) NOT NULL,
            origin TEXT NOT NULL,
            architecture VARCHAR(64),
            gguf_file TEXT,
            hf_dir TEXT,
            digest VARCHAR(64) NOT NULL,
            source_digest VARCHAR(64) NOT NULL,
            total_bytes BIGINT NOT NULL,
            imported_at VARCHAR(32) NOT NULL,
            imported_by VARCHAR(128) NOT NULL
        )""",
        """CREATE TABLE model_file (
            model_id VARCHAR(32) NOT NULL REFERENCES base_model(id) ON DELETE RESTRICT,
            relpath TEXT NOT NULL,
            sha256 VARCHAR(64) NOT NULL,
            size BIGINT NOT NULL,
            PRIMARY KEY (model_id, relpath)
        )""",
    )),
    Migration(2, "users, sessions, tokens, keys, audit trail", (
        """CREATE TABLE app_user (
            id VARCHAR(32) PRIMARY KEY,
            name VARCHAR(64) NOT NULL UNIQUE,
            role VARCHAR(16) NOT NULL,
            password_hash TEXT NOT NULL,
            disabled BOOLEAN NOT NULL DEFAULT FALSE,
            failed_logins INTEGER NOT NULL DEFAULT 0,
            locked_until VARCHAR(32),
            created_at VARCHAR(32) NOT NULL,
            created_by VARCHAR(64) NOT NULL
        )""",
        """CREATE TABLE auth_session (
            id VARCHAR(32) PRIMARY KEY,
            user_id VARCHAR(32) NOT NULL REFERENCES app_user(id),
            secret_hash VARCHAR(64) NOT NULL,
            os_user VARCHAR(64) NOT NULL,
            created_at VARCHAR(32) NOT NULL,
            expires_at VARCHAR(32) NOT NULL,
            revoked_at VARCHAR(32)
        )""",
        """CREATE TABLE api_token (
            id VARCHAR(32) PRIMARY KEY,
            user_id VARCHAR(32) NOT NULL REFERENCES app_user(id),
            secret_hash VARCHAR(64) NOT NULL,
            adapters TEXT,
            created_at VARCHAR(32) NOT NULL,
            created_by VARCHAR(64) NOT NULL,
            expires_at VARCHAR(32),
            revoked_at VARCHAR(32)
        )""",
        """CREATE TABLE signing_key (
            key_id VARCHAR(64) PRIMARY KEY,
            purpose VARCHAR(16) NOT NULL,
            status VARCHAR(16) NOT NULL,
            public_pem TEXT NOT NULL,
            private_file TEXT NOT NULL,
            created_at VARCHAR(32) NOT NULL,
            retired_at VARCHAR(32),
            revoked_at VARCHAR(32),
            revoked_reason TEXT
        )""",
        """CREATE TABLE audit_event (
            seq BIGINT PRIMARY KEY,
            event_id VARCHAR(32) NOT NULL UNIQUE,
            ts VARCHAR(32) NOT NULL,
            actor VARCHAR(64) NOT NULL,
            actor_role VARCHAR(16) NOT NULL,
            auth_method VARCHAR(16) NOT NULL,
            action VARCHAR(64) NOT NULL,
            object_type VARCHAR(32) NOT NULL,
            object_id TEXT NOT NULL,
            object_sha256 VARCHAR(64) NOT NULL,
            outcome VARCHAR(8) NOT NULL,
            reason TEXT NOT NULL,
            correlation_id VARCHAR(32) NOT NULL,
            details TEXT NOT NULL,
            leaf_hash VARCHAR(64) NOT NULL
        )""",
        "CREATE INDEX audit_event_ts ON audit_event (ts)",
        "CREATE INDEX audit_event_actor ON audit_event (actor)",
        "CREATE INDEX audit_event_action ON audit_event (action)",
        """CREATE TABLE audit_node (
            level INTEGER NOT NULL,
            idx BIGINT NOT NULL,
            hash VARCHAR(64) NOT NULL,
            PRIMARY KEY (level, idx)
        )""",
        """CREATE TABLE audit_checkpoint (
            tree_size BIGINT PRIMARY KEY,
            root VARCHAR(64) NOT NULL,
            ts VARCHAR(32) NOT NULL,
            key_id VARCHAR(64) NOT NULL,
            signature TEXT NOT NULL
        )""",
        PerDialect(
            sqlite="SELECT 1",
            postgresql="CREATE OR REPLACE FUNCTION appliance_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only'; END $$",
        ),
        *_append_only("audit_event"),
        *_append_only("audit_node"),
        *_append_only("audit_checkpoint"),
    )),
    Migration(3, "dataset versions and canaries", (
        """CREATE TABLE dataset_version (
            id VARCHAR(32) PRIMARY KEY,
            name VARCHAR(64) NOT NULL,
            version INTEGER NOT NULL,
            digest VARCHAR(64) NOT NULL,
            format VARCHAR(16) NOT NULL,
            records INTEGER NOT NULL,
            train_records INTEGER NOT NULL,
            eval_records INTEGER NOT NULL,
            rejected INTEGER NOT NULL,
            path TEXT NOT NULL,
            policy_digest VARCHAR(64) NOT NULL,
            policy_strictness INTEGER NOT NULL,
            created_at VARCHAR(32) NOT NULL,
            created_by VARCHAR(64) NOT NULL,
            lineage TEXT NOT NULL,
            scrub_report TEXT NOT NULL,
            lint_report TEXT NOT NULL,
            rejects TEXT NOT NULL,
            UNIQUE (name, version)
        )""",
        """CREATE TABLE dataset_canary (
            dataset_id VARCHAR(32) NOT NULL REFERENCES dataset_version(id),
            canary_id VARCHAR(32) NOT NULL,
            secret TEXT NOT NULL,
            sentence TEXT NOT NULL,
            repetitions INTEGER NOT NULL,
            record_ids TEXT NOT NULL,
            PRIMARY KEY (dataset_id, canary_id)
        )""",
    )),
    Migration(4, "training runs and their metrics", (
        """CREATE TABLE training_run (
            id VARCHAR(32) PRIMARY KEY,
            name VARCHAR(64) NOT NULL UNIQUE,
            status VARCHAR(16) NOT NULL,
            method VARCHAR(8) NOT NULL,
            engine VARCHAR(16) NOT NULL,
            engine_reason TEXT NOT NULL,
            recipe_file TEXT NOT NULL,
            recipe_digest VARCHAR(64) NOT NULL,
            recipe TEXT NOT NULL,
            base_model VARCHAR(128) NOT NULL,
            base_digest VARCHAR(64) NOT NULL,
            dataset_ref VARCHAR(80) NOT NULL,
            dataset_digest VARCHAR(64) NOT NULL,
            seed INTEGER NOT NULL,
            max_steps INTEGER NOT NULL,
            steps_done INTEGER NOT NULL,
            final_loss DOUBLE PRECISION,
            path TEXT NOT NULL,
            environment TEXT NOT NULL,
            error TEXT,
            created_by VARCHAR(64) NOT NULL,
            created_at VARCHAR(32) NOT NULL,
            started_at VARCHAR(32),
            finished_at VARCHAR(32)
        )""",
        """CREATE TABLE run_metric (
            run_id VARCHAR(32) NOT NULL REFERENCES training_run(id),
            step INTEGER NOT NULL,
            loss DOUBLE PRECISION,
            learning_rate DOUBLE PRECISION,
            tokens_per_second DOUBLE PRECISION,
            ts VARCHAR(32) NOT NULL,
            PRIMARY KEY (run_id, step)
        )""",
    )),
    Migration(5, "evaluation results", (
        """CREATE TABLE eval_result (
            id VARCHAR(32) PRIMARY KEY,
            run_id VARCHAR(32) NOT NULL REFERENCES training_run(id),
            run_name VARCHAR(64) NOT NULL,
            created_at VARCHAR(32) NOT NULL,
            created_by VARCHAR(64) NOT NULL,
            adapter_digest VARCHAR(64) NOT NULL,
            policy_digest VARCHAR(64) NOT NULL,
            suite_digest VARCHAR(64) NOT NULL,
            judge_model VARCHAR(128),
            passed INTEGER NOT NULL,
            result TEXT NOT NULL,
            report_path TEXT NOT NULL,
            override_by VARCHAR(64),
            override_reason TEXT,
            override_at VARCHAR(32)
        )""",
        "CREATE INDEX eval_result_run ON eval_result (run_name, created_at)",
    )),
    Migration(6, "release artifacts", (
        """CREATE TABLE artifact (
            id VARCHAR(32) PRIMARY KEY,
            name VARCHAR(64) NOT NULL UNIQUE,
            run_id VARCHAR(32) NOT NULL REFERENCES training_run(id),
            run_name VARCHAR(64) NOT NULL,
            eval_id VARCHAR(32) NOT NULL REFERENCES eval_result(id),
            status VARCHAR(16) NOT NULL,
            path TEXT NOT NULL,
            files TEXT NOT NULL,
            manifest_digest VARCHAR(64) NOT NULL,
            packaged_by VARCHAR(64) NOT NULL,
            packaged_at VARCHAR(32) NOT NULL,
            signed_by VARCHAR(64),
            signed_at VARCHAR(32),
            signing_key_id VARCHAR(64),
            decided_by VARCHAR(64),
            decided_at VARCHAR(32),
            decision_reason TEXT
        )""",
    )),
    Migration(7, "scheduled evaluations of served adapters", (
        """CREATE TABLE drift_check (
            id VARCHAR(32) PRIMARY KEY,
            artifact VARCHAR(64) NOT NULL,
            eval_id VARCHAR(32) NOT NULL REFERENCES eval_result(id),
            checked_at VARCHAR(32) NOT NULL,
            checked_by VARCHAR(64) NOT NULL,
            status VARCHAR(16) NOT NULL,
            task_metric VARCHAR(32),
            task_value DOUBLE PRECISION,
            task_baseline DOUBLE PRECISION,
            suite_value DOUBLE PRECISION,
            suite_baseline DOUBLE PRECISION,
            max_drop DOUBLE PRECISION NOT NULL,
            detail TEXT NOT NULL
        )""",
        "CREATE INDEX drift_check_artifact ON drift_check (artifact, checked_at)",
    )),
    Migration(8, "OS accounts behind events and sessions, one-time passwords, token scopes, policy digests", (
        # The operating-system account behind each event (NULL for events written before: canonical form 1).
        "ALTER TABLE audit_event ADD COLUMN os_user VARCHAR(64)",
        "ALTER TABLE audit_event ADD COLUMN os_uid BIGINT",
        "ALTER TABLE audit_event ADD COLUMN os_source VARCHAR(8)",
        # A session is bound to the OS account that logged in; an older session (NULL) is refused.
        "ALTER TABLE auth_session ADD COLUMN os_uid BIGINT",
        # A password set by someone else (users add, reset) must be changed at the first login.
        "ALTER TABLE app_user ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE",
        "ALTER TABLE app_user ADD COLUMN password_changed_at VARCHAR(32)",
        # gateway (queries only) or control (the CLI); a control token is bound to one OS account.
        "ALTER TABLE api_token ADD COLUMN scope VARCHAR(16) NOT NULL DEFAULT 'gateway'",
        "ALTER TABLE api_token ADD COLUMN os_uid BIGINT",
        # The installed training policy a run was checked against.
        "ALTER TABLE training_run ADD COLUMN policy_digest VARCHAR(64)",
        "CREATE INDEX audit_event_object ON audit_event (object_type, object_id)",
    )),
    Migration(9, "training leases: the process training a run and its last heartbeat", (
        "ALTER TABLE training_run ADD COLUMN lease_owner VARCHAR(200)",
        "ALTER TABLE training_run ADD COLUMN heartbeat_at VARCHAR(32)",
    )),
    Migration(10, "a run names its training framework (unsloth or trl); engine is the database's word", (
        "ALTER TABLE training_run RENAME COLUMN engine TO framework",
        "ALTER TABLE training_run RENAME COLUMN engine_reason TO framework_reason",
    )),
    Migration(11, "personal signing keys as enrolled (root pins them); accounts bound to OS accounts", (
        """CREATE TABLE personal_key (
            key_id VARCHAR(64) PRIMARY KEY,
            user_name VARCHAR(64) NOT NULL,
            role VARCHAR(16) NOT NULL,
            public_pem TEXT NOT NULL,
            os_user VARCHAR(64) NOT NULL,
            os_uid BIGINT NOT NULL,
            os_source VARCHAR(8) NOT NULL,
            enrolled_at VARCHAR(32) NOT NULL
        )""",
        "CREATE INDEX personal_key_user ON personal_key (user_name)",
        # Each account is one person's: bound to the OS account chosen at its creation (or at its first login).
        "ALTER TABLE app_user ADD COLUMN os_user VARCHAR(64)",
        "ALTER TABLE app_user ADD COLUMN os_uid BIGINT",
        # Failed logins back off per (account, OS account): a guesser locks out only their own attempts.
        """CREATE TABLE login_failure (
            user_id VARCHAR(32) NOT NULL REFERENCES app_user(id),
            os_uid BIGINT NOT NULL,
            failures INTEGER NOT NULL,
            locked_until VARCHAR(32),
            PRIMARY KEY (user_id, os_uid)
        )""",
    )),
    Migration(12, "the adapters a user may query and their gateway limits belong to the user, not the token", (
        "ALTER TABLE app_user ADD COLUMN adapters TEXT",
        "ALTER TABLE app_user ADD COLUMN limits TEXT",
    )),
)

_LEDGER = schema_migrations.name


def _ensure_ledger(engine: Engine) -> None:
    with writing(engine).begin() as conn:
        conn.execute(text(  # DDL, like the migrations: the ledger exists before any of them
            f"CREATE TABLE IF NOT EXISTS {_LEDGER} ("
            "number INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum VARCHAR(64) NOT NULL, "
            "applied_at VARCHAR(32) NOT NULL)"
        ))


def applied_migrations(engine: Engine) -> dict[int, str]:
    """Applied migration numbers and their recorded checksums; empty when the database is new."""
    if not inspect(engine).has_table(_LEDGER):
        return {}
    with engine.connect() as conn:
        t = schema_migrations
        rows = conn.execute(select(t.c.number, t.c.checksum).order_by(t.c.number)).all()
    return {int(n): c for n, c in rows}


def _check_history(applied: dict[int, str]) -> None:
    known = {m.number: m for m in MIGRATIONS}
    newer = sorted(n for n in applied if n not in known)
    if newer:
        raise StorageError(f"the database has migration {newer[0]}, which this version does not know: "
                           "it was written by a newer version of the appliance")
    for number, checksum in applied.items():
        if known[number].checksum != checksum:
            raise StorageError(f"migration {number} ({known[number].name}) differs from the one applied "
                               "to this database: migrations are append-only")


def migrate(engine: Engine) -> list[int]:
    """Apply every pending migration, each in its own transaction; returns the numbers applied."""
    _ensure_ledger(engine)
    applied = applied_migrations(engine)
    _check_history(applied)
    done = []
    for migration in MIGRATIONS:
        if migration.number in applied:
            continue
        with writing(engine).begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(7245001)))
                again = conn.execute(select(schema_migrations.c.number)
                                     .where(schema_migrations.c.number == migration.number)).first()
                if again:
                    continue
            for statement in migration.sql_for(conn.dialect.name):
                conn.exec_driver_sql(statement)  # the migration itself: DDL, kept as written (checksummed)
            conn.execute(insert(schema_migrations).values(
                number=migration.number, name=migration.name, checksum=migration.checksum,
                applied_at=datetime.now(UTC).isoformat(timespec="seconds")))
        done.append(migration.number)
    return done


def require_current(engine: Engine) -> None:
    """Refuse to work on a database that is not initialised or not at this version's schema."""
    applied = applied_migrations(engine)
    if not applied:
        raise StorageError("the appliance is not initialised here: run `appliance init` first")
    _check_history(applied)
    latest = MIGRATIONS[-1].number
    if max(applied) < latest:
        raise StorageError(f"the database schema is at migration {max(applied)}, this version needs {latest}: "
                           "run `appliance init` to migrate")
