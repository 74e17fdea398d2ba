"""The preference format (DPO, ORPO): `{"prompt": "...", "chosen": "...", "rejected": "..."}`. As a
conversation (lint, supervised views of the data) it is the prompt answered by the chosen text."""

from __future__ import annotations

from appliance.data.formats import fields
from appliance.data.formats.fields import Validated, refuse
from appliance.data.formats.readers import RawRecord

NAME = "preference"
FIELDS = (("prompt", True), ("chosen", True), ("rejected", True))
_NAMES = tuple(name for name, _ in FIELDS)


def looks_like(data: dict) -> bool:
    return {"prompt", "chosen", "rejected"} <= set(data)


def validate(raw: RawRecord) -> Validated:
    record, reject = fields.validate_fields(raw, FIELDS)
    if record is not None and record["chosen"] == record["rejected"]:
        return refuse(raw, "rejected", "identical to chosen: no preference to learn")
    return record, reject


def text_fields(record: dict) -> list[tuple[str, str]]:
    return fields.text_fields(record, _NAMES)


def with_texts(record: dict, texts: list[str]) -> dict:
    return fields.with_texts(record, _NAMES, texts)


def conversation(record: dict) -> tuple[list[dict], str]:
    return [{"role": "user", "content": record["prompt"]}], record["chosen"]
