"""The instruction format (Alpaca style): `{"instruction": "...", "input": "..." (optional), "output": "..."}`.

The prompt is the instruction, then a blank line and the input when there is one: one user turn, the same
for lint and for training."""

from __future__ import annotations

from appliance.data.formats import fields
from appliance.data.formats.fields import Validated
from appliance.data.formats.readers import RawRecord

NAME = "instruction"
FIELDS = (("instruction", True), ("input", False), ("output", True))
_NAMES = tuple(name for name, _ in FIELDS)
INPUT_SEPARATOR = "\n\n"


def looks_like(data: dict) -> bool:
    return "instruction" in data and "output" in data


def validate(raw: RawRecord) -> Validated:
    return fields.validate_fields(raw, FIELDS)


def text_fields(record: dict) -> list[tuple[str, str]]:
    return fields.text_fields(record, _NAMES)


def with_texts(record: dict, texts: list[str]) -> dict:
    return fields.with_texts(record, _NAMES, texts)


def conversation(record: dict) -> tuple[list[dict], str]:
    prompt = record["instruction"] + (INPUT_SEPARATOR + record["input"] if record.get("input") else "")
    return [{"role": "user", "content": prompt}], record["output"]
