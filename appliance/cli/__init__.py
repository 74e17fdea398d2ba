"""The `appliance` command line. Commands live in the modules below, grouped by noun."""

from appliance.cli import artifacts, audit, console, data, evaluate, identity, keys, models, serve, train  # noqa: F401
from appliance.cli.app import App, cli, entry, main

__all__ = ["App", "cli", "entry", "main"]
