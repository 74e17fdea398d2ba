"""The plain-text format: `{"text": "..."}`, for continued pre-training. As a conversation it has no prompt:
the whole text is what the model learns."""

from __future__ import annotations

from appliance.data.formats import fields
from appliance.data.formats.fields import Validated
from appliance.data.formats.readers import RawRecord

NAME = "text"
FIELDS = (("text", True),)
_NAMES = ("text",)


def looks_like(data: dict) -> bool:
    return "text" in data


def validate(raw: RawRecord) -> Validated:
    return fields.validate_fields(raw, FIELDS)


def text_fields(record: dict) -> list[tuple[str, str]]:
    return fields.text_fields(record, _NAMES)


def with_texts(record: dict, texts: list[str]) -> dict:
    return fields.with_texts(record, _NAMES, texts)


def conversation(record: dict) -> tuple[list[dict], str]:
    return [], record["text"]
