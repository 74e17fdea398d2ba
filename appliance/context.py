"""Who is acting, where, and under which correlation id: passed to every state-changing function."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from appliance.audit.events import SYSTEM, Actor
from appliance.config import Settings


@dataclass
class Context:
    settings: Settings
    engine: Engine
    actor: Actor = SYSTEM
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def acting_as(self, actor: Actor) -> Context:
        return Context(self.settings, self.engine, actor, self.correlation_id)
