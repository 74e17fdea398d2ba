"""The `appliance` command line. Commands live in the modules below, grouped by noun."""

from appliance.cli import (  # noqa: F401
    artifacts,
    audit,
    backup,
    bundle,
    console,
    data,
    evaluate,
    identity,
    keys,
    models,
    policies,
    serve,
    service,
    settings,
    train,
)
from appliance.cli.app import App, cli, entry, main

__all__ = ["App", "cli", "entry", "main"]
