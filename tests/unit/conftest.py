"""Fixtures of the database suites (`test_database.py`, `test_tables.py`, `test_train_lease.py`): each runs on
SQLite and, in the postgres tier, on PostgreSQL (`database_url`)."""

import pytest

from appliance.config import load_settings
from appliance.context import Context
from appliance.db import connect, migrate


@pytest.fixture
def settings(database_url):
    return load_settings()


@pytest.fixture
def engine(settings):
    return connect(settings, create=True)


@pytest.fixture
def ctx(settings, engine):
    """The appliance acting for itself (the registry's permission check lets the system import)."""
    migrate(engine)
    return Context(settings, engine)
