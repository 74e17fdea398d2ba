"""Every table, declared once as SQLAlchemy Core: the one place that names the columns every query uses.

The schema itself is made by the numbered migrations (`migrations.py`); these declarations describe it and never
create it. `tests/unit/test_tables.py` checks the two agree on SQLite and PostgreSQL: tables, columns, types,
nullability, primary and foreign keys.
"""

from __future__ import annotations

from sqlalchemy import (
    DOUBLE_PRECISION,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()


def _id() -> Column:
    return Column("id", String(32), primary_key=True)


def _required(name: str, type_, *args, **kw) -> Column:
    return Column(name, type_, *args, nullable=False, **kw)


def _stamp(name: str, nullable: bool = False) -> Column:
    """A moment as ISO 8601 text (sortable; the same on both databases)."""
    return Column(name, String(32), nullable=nullable)


# The migration ledger (created by migrations.py itself, before migration 1).
schema_migrations = Table(
    "schema_migrations", metadata,
    Column("number", Integer, primary_key=True),
    _required("name", Text),
    _required("checksum", String(64)),
    _stamp("applied_at"),
)

# Migration 1: the base-model registry.
base_model = Table(
    "base_model", metadata,
    _id(),
    _required("name", String(128), unique=True),
    _required("source", String(32)),  # "embedded" or "path"
    _required("origin", Text),  # the package and version, or the path it was imported from
    Column("architecture", String(64)),
    Column("gguf_file", Text),  # relative to the model's folder
    Column("hf_dir", Text),  # relative to the model's folder
    _required("digest", String(64)),  # sha256 over the canonical manifest of the stored files
    _required("source_digest", String(64)),  # the same over what was imported, to recognise a re-import
    _required("total_bytes", BigInteger),
    _stamp("imported_at"),
    _required("imported_by", String(128)),
)

model_file = Table(
    "model_file", metadata,
    Column("model_id", String(32), ForeignKey("base_model.id", ondelete="RESTRICT"), primary_key=True),
    Column("relpath", Text, primary_key=True),
    _required("sha256", String(64)),
    _required("size", BigInteger),
)

# Migration 2 (and 8): people, their sessions and tokens, keys, the audit trail.
app_user = Table(
    "app_user", metadata,
    _id(),
    _required("name", String(64), unique=True),
    _required("role", String(16)),
    _required("password_hash", Text),
    _required("disabled", Boolean, server_default=false()),
    _required("failed_logins", Integer, server_default="0"),
    _stamp("locked_until", nullable=True),
    _stamp("created_at"),
    _required("created_by", String(64)),
    _required("must_change_password", Boolean, server_default=false()),
    _stamp("password_changed_at", nullable=True),
    Column("os_user", String(64)),  # the one OS account this account is used from (migration 11)
    Column("os_uid", BigInteger),  # NULL until bound: at creation (`--os-user`) or at the first login
    Column("adapters", Text),  # migration 12: a JSON list of the adapters they may query; NULL for every one
    Column("limits", Text),  # migration 12: a JSON object of their gateway limits; NULL for the serving policy's
)

auth_session = Table(
    "auth_session", metadata,
    _id(),
    _required("user_id", String(32), ForeignKey("app_user.id")),
    _required("secret_hash", String(64)),
    _required("os_user", String(64)),
    _stamp("created_at"),
    _stamp("expires_at"),
    _stamp("revoked_at", nullable=True),
    Column("os_uid", BigInteger),  # NULL for a session from before sessions were bound: refused
)

api_token = Table(
    "api_token", metadata,
    _id(),
    _required("user_id", String(32), ForeignKey("app_user.id")),
    _required("secret_hash", String(64)),
    Column("adapters", Text),  # a JSON list of the adapters it may query; NULL for every adapter
    _stamp("created_at"),
    _required("created_by", String(64)),
    _stamp("expires_at", nullable=True),
    _stamp("revoked_at", nullable=True),
    _required("scope", String(16), server_default="gateway"),
    Column("os_uid", BigInteger),  # the one OS account a control token works for
)

signing_key = Table(
    "signing_key", metadata,
    Column("key_id", String(64), primary_key=True),
    _required("purpose", String(16)),
    _required("status", String(16)),
    _required("public_pem", Text),
    _required("private_file", Text),
    _stamp("created_at"),
    _stamp("retired_at", nullable=True),
    _stamp("revoked_at", nullable=True),
    Column("revoked_reason", Text),
)

# Append-only (triggers refuse UPDATE and DELETE): nothing here ever updates or deletes a row of the audit tables.
audit_event = Table(
    "audit_event", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    _required("event_id", String(32), unique=True),
    _stamp("ts"),
    _required("actor", String(64)),
    _required("actor_role", String(16)),
    _required("auth_method", String(16)),
    _required("action", String(64)),
    _required("object_type", String(32)),
    _required("object_id", Text),
    _required("object_sha256", String(64)),
    _required("outcome", String(8)),
    _required("reason", Text),
    _required("correlation_id", String(32)),
    _required("details", Text),
    _required("leaf_hash", String(64)),
    Column("os_user", String(64)),  # NULL for events written before OS accounts were recorded (canonical form 1)
    Column("os_uid", BigInteger),
    Column("os_source", String(8)),
)

audit_node = Table(
    "audit_node", metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    _required("hash", String(64)),
)

audit_checkpoint = Table(
    "audit_checkpoint", metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    _required("root", String(64)),
    _stamp("ts"),
    _required("key_id", String(64)),
    _required("signature", Text),
)

# Migration 3: dataset versions and their canaries.
dataset_version = Table(
    "dataset_version", metadata,
    _id(),
    _required("name", String(64)),
    _required("version", Integer),
    _required("digest", String(64)),
    _required("format", String(16)),
    _required("records", Integer),
    _required("train_records", Integer),
    _required("eval_records", Integer),
    _required("rejected", Integer),
    _required("path", Text),
    _required("policy_digest", String(64)),
    _required("policy_strictness", Integer),
    _stamp("created_at"),
    _required("created_by", String(64)),
    _required("lineage", Text),
    _required("scrub_report", Text),
    _required("lint_report", Text),
    _required("rejects", Text),
    UniqueConstraint("name", "version"),
)

dataset_canary = Table(
    "dataset_canary", metadata,
    Column("dataset_id", String(32), ForeignKey("dataset_version.id"), primary_key=True),
    Column("canary_id", String(32), primary_key=True),
    _required("secret", Text),
    _required("sentence", Text),
    _required("repetitions", Integer),
    _required("record_ids", Text),
)

# Migration 4 (and 8, 9, 10): training runs and their metrics.
training_run = Table(
    "training_run", metadata,
    _id(),
    _required("name", String(64), unique=True),
    _required("status", String(16)),
    _required("method", String(8)),
    _required("framework", String(16)),  # unsloth or trl (named engine until migration 10)
    _required("framework_reason", Text),
    _required("recipe_file", Text),
    _required("recipe_digest", String(64)),
    _required("recipe", Text),
    _required("base_model", String(128)),
    _required("base_digest", String(64)),
    _required("dataset_ref", String(80)),
    _required("dataset_digest", String(64)),
    _required("seed", Integer),
    _required("max_steps", Integer),
    _required("steps_done", Integer),
    Column("final_loss", DOUBLE_PRECISION),
    _required("path", Text),
    _required("environment", Text),
    Column("error", Text),
    _required("created_by", String(64)),
    _stamp("created_at"),
    _stamp("started_at", nullable=True),
    _stamp("finished_at", nullable=True),
    Column("policy_digest", String(64)),
    Column("lease_owner", String(200)),  # the trainer process holding the run (train/lease.py)
    _stamp("heartbeat_at", nullable=True),
)

run_metric = Table(
    "run_metric", metadata,
    Column("run_id", String(32), ForeignKey("training_run.id"), primary_key=True),
    Column("step", Integer, primary_key=True, autoincrement=False),
    Column("loss", DOUBLE_PRECISION),
    Column("learning_rate", DOUBLE_PRECISION),
    Column("tokens_per_second", DOUBLE_PRECISION),
    _stamp("ts"),
)

# Migration 5: evaluation results.
eval_result = Table(
    "eval_result", metadata,
    _id(),
    _required("run_id", String(32), ForeignKey("training_run.id")),
    _required("run_name", String(64)),
    _stamp("created_at"),
    _required("created_by", String(64)),
    _required("adapter_digest", String(64)),
    _required("policy_digest", String(64)),
    _required("suite_digest", String(64)),
    Column("judge_model", String(128)),
    _required("passed", Integer),  # 0 or 1
    _required("result", Text),  # JSON
    _required("report_path", Text),
    Column("override_by", String(64)),
    Column("override_reason", Text),
    _stamp("override_at", nullable=True),
)

# Migration 6: release artifacts.
artifact = Table(
    "artifact", metadata,
    _id(),
    _required("name", String(64), unique=True),
    _required("run_id", String(32), ForeignKey("training_run.id")),
    _required("run_name", String(64)),
    _required("eval_id", String(32), ForeignKey("eval_result.id")),
    _required("status", String(16)),
    _required("path", Text),
    _required("files", Text),  # JSON: relative path -> sha256
    _required("manifest_digest", String(64)),
    _required("packaged_by", String(64)),
    _stamp("packaged_at"),
    Column("signed_by", String(64)),
    _stamp("signed_at", nullable=True),
    Column("signing_key_id", String(64)),
    Column("decided_by", String(64)),
    _stamp("decided_at", nullable=True),
    Column("decision_reason", Text),
)

# Migration 7: scheduled evaluations of served adapters.
drift_check = Table(
    "drift_check", metadata,
    _id(),
    _required("artifact", String(64)),
    _required("eval_id", String(32), ForeignKey("eval_result.id")),
    _stamp("checked_at"),
    _required("checked_by", String(64)),
    _required("status", String(16)),
    Column("task_metric", String(32)),
    Column("task_value", DOUBLE_PRECISION),
    Column("task_baseline", DOUBLE_PRECISION),
    Column("suite_value", DOUBLE_PRECISION),
    Column("suite_baseline", DOUBLE_PRECISION),
    _required("max_drop", DOUBLE_PRECISION),
    _required("detail", Text),
)

# Migration 11: personal signing keys as enrolled; whether one counts is root's pin file, never this table.
personal_key = Table(
    "personal_key", metadata,
    Column("key_id", String(64), primary_key=True),
    _required("user_name", String(64)),
    _required("role", String(16)),
    _required("public_pem", Text),
    _required("os_user", String(64)),
    _required("os_uid", BigInteger),
    _required("os_source", String(8)),
    _stamp("enrolled_at"),
)

# Migration 11: failed logins, per account and OS account.
login_failure = Table(
    "login_failure", metadata,
    Column("user_id", String(32), ForeignKey("app_user.id"), primary_key=True),
    Column("os_uid", BigInteger, primary_key=True, autoincrement=False),
    _required("failures", Integer),
    _stamp("locked_until", nullable=True),
)
