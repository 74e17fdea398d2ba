"""The chat format: `{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}]}`."""

from __future__ import annotations

from appliance.data.formats.turns import ROLES, Turns

NAME = "chat"
TURNS = Turns("messages", "role", "content", {r: r for r in ROLES})


def looks_like(data: dict) -> bool:
    return "messages" in data


# What the format does is what its turns do.
validate = TURNS.validate
text_fields = TURNS.text_fields
with_texts = TURNS.with_texts
conversation = TURNS.conversation
