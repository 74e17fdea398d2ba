"""The ShareGPT format: `{"conversations": [{"from": "human"|"gpt"|..., "value": "..."}]}`, its roles mapped
to chat roles."""

from __future__ import annotations

from appliance.data.formats.turns import Turns

NAME = "sharegpt"
ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
TURNS = Turns("conversations", "from", "value", ROLES)


def looks_like(data: dict) -> bool:
    return "conversations" in data


# What the format does is what its turns do.
validate = TURNS.validate
text_fields = TURNS.text_fields
with_texts = TURNS.with_texts
conversation = TURNS.conversation
