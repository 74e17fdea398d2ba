"""Settings: APPLIANCE_HOME, an optional `appliance.toml` inside it, and every path derived from them.

Validation fails closed: unknown keys are rejected, every error is reported at once, and a broken file
never falls back to defaults.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from appliance.errors import ConfigError

CONFIG_FILE = "appliance.toml"
SQLITE_FILE = "appliance.db"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSection(_Strict):
    url: str | None = Field(default=None, description="SQLAlchemy URL; SQLite under the home when unset")
    url_file: str | None = Field(
        default=None, description="a file whose first line is the URL: keeps a database password out of this file "
                                  "(and so out of backups of the home) and out of every process's environment")

    @model_validator(mode="after")
    def _one_source(self):
        if self.url is not None and self.url_file is not None:
            raise ValueError("set url or url_file, not both")
        return self


class LlamaSection(_Strict):
    n_threads: int | None = Field(default=None, ge=1, le=1024, description="CPU threads; all cores when unset")
    n_ctx: int = Field(default=2048, ge=256, le=1_048_576, description="context length for llama.cpp")


class KeysSection(_Strict):
    passphrase_file: str | None = Field(
        default=None, description="file holding the passphrase that encrypts private keys at rest "
                                  "(or APPLIANCE_KEY_PASSPHRASE / APPLIANCE_KEY_PASSPHRASE_FILE)")


class AuditSection(_Strict):
    anchor_file: str | None = Field(
        default=None, description="append-only file every signed checkpoint is also written to, outside the "
                                  "database (default <home>/logs/checkpoints.jsonl; an install: "
                                  "/var/log/appliance/checkpoints.jsonl)")
    journal: bool = Field(default=True, description="also send every checkpoint to the system journal "
                                                    "(syslog identifier appliance-audit)")
    pinned_keys: str | None = Field(
        default=None, description="PEM file of the audit public keys verification trusts; a key found only in "
                                  "the database is refused (default <home>/keys/audit-pinned.pem; an install: "
                                  "/etc/appliance/audit-keys.pem, written by root)")


class IdentitySection(_Strict):
    session_hours: float = Field(default=12, gt=0, le=24 * 30)
    min_password_length: int = Field(default=12, ge=8, le=1024)
    lockout_attempts: int = Field(default=5, ge=1, le=100)
    lockout_minutes: int = Field(default=15, ge=1, le=7 * 24 * 60)


class IngestSection(_Strict):
    max_file_mb: int = Field(default=2048, ge=1, le=1_048_576, description="largest input file")
    max_record_kb: int = Field(default=256, ge=1, le=1_048_576, description="largest single record")
    max_records: int = Field(default=1_000_000, ge=1, le=1_000_000_000, description="most records per ingest")
    eval_share: float = Field(default=0.1, ge=0, lt=1, description="share of records held out for evaluation")
    split_seed: int = 0


class FileSettings(_Strict):
    """What `appliance.toml` may contain."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    database: DatabaseSection = DatabaseSection()
    llama: LlamaSection = LlamaSection()
    keys: KeysSection = KeysSection()
    audit: AuditSection = AuditSection()
    identity: IdentitySection = IdentitySection()
    ingest: IngestSection = IngestSection()


@dataclass(frozen=True)
class Settings:
    home: Path
    file: FileSettings
    database_url: str
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def anchor_path(self) -> Path:
        """Where signed checkpoints are anchored outside the database."""
        return Path(self.file.audit.anchor_file) if self.file.audit.anchor_file else self.logs_dir / "checkpoints.jsonl"

    @property
    def trust_dir(self) -> Path | None:
        """Where root keeps what the appliance trusts (APPLIANCE_TRUST_DIR, an install's /etc/appliance, set in
        root's appliance.env): the pinned audit, artifact and personal keys. Never from appliance.toml, which
        lies in the home the service account can rewrite; None in development, where the home holds them."""
        value = self.env.get("APPLIANCE_TRUST_DIR", "").strip()
        return Path(value) if value else None

    @property
    def pinned_keys_path(self) -> Path:
        """The audit public keys that verification trusts."""
        if self.trust_dir:
            return self.trust_dir / "audit-keys.pem"
        return Path(self.file.audit.pinned_keys) if self.file.audit.pinned_keys else self.keys_dir / "audit-pinned.pem"

    @property
    def pinned_artifact_keys_path(self) -> Path:
        """The artifact public keys whose signatures the gateway and `verify` accept."""
        return self.trust_dir / "artifact-keys.pem" if self.trust_dir else self.keys_dir / "artifact-pinned.pem"

    @property
    def people_keys_path(self) -> Path:
        """The people's personal public keys, pinned (and revoked) by root: whose decisions count."""
        return self.trust_dir / "people-keys.jsonl" if self.trust_dir else self.keys_dir / "people-pinned.jsonl"

    @property
    def tmp_dir(self) -> Path:
        """Scratch space on the same filesystem as the home, so finished work is renamed into place."""
        return self.home / "tmp"

    @property
    def owned_dirs(self) -> tuple[Path, ...]:
        return (self.home, self.models_dir, self.datasets_dir, self.runs_dir, self.artifacts_dir,
                self.keys_dir, self.logs_dir, self.tmp_dir)

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def format_validation_error(source: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{where}: {msg}")
    count = len(parts)
    return f"{source}: {count} error{'s' if count != 1 else ''}: " + "; ".join(parts)


def load_yaml_model(path, model: type[BaseModel], what: str) -> tuple[BaseModel, str]:
    """A YAML policy or recipe file (a path, or a file a person named: `userfiles.InputFile`) validated against
    `model`, and the sha256 of its bytes; every problem in one ConfigError naming the file."""
    if hasattr(path, "read_bytes") and hasattr(path, "name") and not isinstance(path, Path):
        name, raw = path.name, path.read_bytes()  # an InputError names the file already
    else:
        path = Path(path)
        name = str(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from None
    return parse_yaml_model(raw, name, model, what)


def parse_yaml_model(raw: bytes, name: str, model: type[BaseModel], what: str) -> tuple[BaseModel, str]:
    import hashlib

    import yaml

    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{name}: malformed YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: a {what} is a mapping of keys")
    try:
        return model.model_validate(data), hashlib.sha256(raw).hexdigest()
    except ValidationError as exc:
        raise ConfigError(format_validation_error(name, exc)) from None


def read_config_file(path: Path) -> FileSettings:
    """Parse and validate one `appliance.toml`; every problem in it is reported in one ConfigError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return FileSettings()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    try:
        return FileSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc)) from None


def check_config_file(path: Path) -> FileSettings:
    """Like `read_config_file`, but a missing file is an error and the database URL's scheme is checked too."""
    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such file")
    settings = read_config_file(Path(path))
    if settings.database.url is not None:
        _check_database_url(settings.database.url, str(path))
    return settings


def _check_database_url(url: str, source: str | None = None) -> None:
    if not (url.startswith("sqlite") or url.startswith("postgresql")):
        scheme = url.split(":", 1)[0]
        where = f"{source}: " if source else ""
        raise ConfigError(f"{where}database URL must be sqlite:/// or postgresql+psycopg://, got scheme {scheme!r}")


def _read_url_file(path: Path, config: Path) -> str:
    try:
        url = path.read_text(encoding="utf-8").split("\n", 1)[0].strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"{path}: cannot read the database URL ([database] url_file in {config}): {reason}") from None
    if not url:
        raise ConfigError(f"{path}: the database URL file ([database] url_file in {config}) is empty")
    return url


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings for this process: APPLIANCE_HOME (default ./var), its appliance.toml, and the environment."""
    env = os.environ if env is None else env
    home_value = env.get("APPLIANCE_HOME", "").strip()
    home = Path(home_value).expanduser() if home_value else Path.cwd() / "var"
    home = Path(os.path.abspath(home))
    file_settings = read_config_file(home / CONFIG_FILE) if home.is_dir() else FileSettings()
    url = env.get("APPLIANCE_DATABASE_URL", "").strip() or file_settings.database.url
    if url is None and file_settings.database.url_file is not None:
        url = _read_url_file(Path(file_settings.database.url_file), home / CONFIG_FILE)
    if url is None:
        url = f"sqlite:///{home / SQLITE_FILE}"
    _check_database_url(url)
    return Settings(home=home, file=file_settings, database_url=url, env=dict(env))
