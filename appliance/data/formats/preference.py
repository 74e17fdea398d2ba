"""The preference format (DPO, ORPO): `{"prompt": "...", "chosen": "...", "rejected": "..."}`. As a
conversation (lint, supervised views of the data) it is the prompt answered by the chosen text."""

from __future__ import annotations

from appliance.data.formats.fields import Fields, Validated, refuse
from appliance.data.formats.readers import RawRecord

NAME = "preference"
FIELDS = Fields(("prompt", True), ("chosen", True), ("rejected", True))


def looks_like(data: dict) -> bool:
    return {"prompt", "chosen", "rejected"} <= set(data)


def validate(raw: RawRecord) -> Validated:
    record, reject = FIELDS.validate(raw)
    if record is not None and record["chosen"] == record["rejected"]:
        return refuse(raw, "rejected", "identical to chosen: no preference to learn")
    return record, reject

text_fields = FIELDS.text_fields
with_texts = FIELDS.with_texts


def conversation(record: dict) -> tuple[list[dict], str]:
    return [{"role": "user", "content": record["prompt"]}], record["chosen"]
