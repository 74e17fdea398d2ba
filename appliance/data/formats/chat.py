"""The chat format: `{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}]}`."""

from __future__ import annotations

from appliance.data.formats.fields import Validated
from appliance.data.formats.readers import RawRecord
from appliance.data.formats.turns import ROLES, Turns

NAME = "chat"
TURNS = Turns("messages", "role", "content", {r: r for r in ROLES})


def looks_like(data: dict) -> bool:
    return "messages" in data


def validate(raw: RawRecord) -> Validated:
    return TURNS.validate(raw)


def text_fields(record: dict) -> list[tuple[str, str]]:
    return TURNS.text_fields(record)


def with_texts(record: dict, texts: list[str]) -> dict:
    return TURNS.with_texts(record, texts)


def conversation(record: dict) -> tuple[list[dict], str]:
    return TURNS.conversation(record)
