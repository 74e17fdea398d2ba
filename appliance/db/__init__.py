"""The database: one engine per settings, numbered append-only migrations, SQLAlchemy Core tables."""

from appliance.db.engine import connect, session_scope
from appliance.db.migrations import MIGRATIONS, applied_migrations, migrate, require_current

__all__ = ["MIGRATIONS", "applied_migrations", "connect", "migrate", "require_current", "session_scope"]
