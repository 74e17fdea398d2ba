"""The console's pages, one module each, in menu order. A page is a function of the signed-in user's Context:
its reads check the same permissions as the CLI's listings, and every action is the library function the CLI
calls (which checks and audits it). A page holds no logic of its own."""

from __future__ import annotations

from appliance.console.views import (
    artifacts,
    audit,
    datasets,
    evaluations,
    overview,
    playground,
    serving,
    training,
    users,
)
from appliance.console.widgets import Page
from appliance.identity.roles import allowed

PAGES = (
    Page("Overview", "read", overview.render),
    Page("Datasets", "read", datasets.render),
    Page("Training", "read", training.render),
    Page("Evaluations", "read", evaluations.render),
    Page("Artifacts", "read", artifacts.render),
    Page("Serving", "read", serving.render),
    Page("Playground", "serve.query", playground.render),
    Page("Audit", "audit.read", audit.render),
    Page("Users and tokens", "users.manage", users.render),
)


def pages_for(role: str) -> list[Page]:
    return [p for p in PAGES if allowed(role, p.permission)]
