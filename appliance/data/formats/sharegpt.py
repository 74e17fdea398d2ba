"""The ShareGPT format: `{"conversations": [{"from": "human"|"gpt"|..., "value": "..."}]}`, its roles mapped
to chat roles."""

from __future__ import annotations

from appliance.data.formats.fields import Validated
from appliance.data.formats.readers import RawRecord
from appliance.data.formats.turns import Turns

NAME = "sharegpt"
ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
TURNS = Turns("conversations", "from", "value", ROLES)


def looks_like(data: dict) -> bool:
    return "conversations" in data


def validate(raw: RawRecord) -> Validated:
    return TURNS.validate(raw)


def text_fields(record: dict) -> list[tuple[str, str]]:
    return TURNS.text_fields(record)


def with_texts(record: dict, texts: list[str]) -> dict:
    return TURNS.with_texts(record, texts)


def conversation(record: dict) -> tuple[list[dict], str]:
    return TURNS.conversation(record)
