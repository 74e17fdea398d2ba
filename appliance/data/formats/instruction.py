"""The instruction format (Alpaca style): `{"instruction": "...", "input": "..." (optional), "output": "..."}`.

The prompt is the instruction, then a blank line and the input when there is one: one user turn, the same
for lint and for training."""

from __future__ import annotations

from appliance.data.formats.fields import Fields

NAME = "instruction"
FIELDS = Fields(("instruction", True), ("input", False), ("output", True))
INPUT_SEPARATOR = "\n\n"


def looks_like(data: dict) -> bool:
    return "instruction" in data and "output" in data


# What the format's fields do.
validate = FIELDS.validate
text_fields = FIELDS.text_fields
with_texts = FIELDS.with_texts


def conversation(record: dict) -> tuple[list[dict], str]:
    prompt = record["instruction"] + (INPUT_SEPARATOR + record["input"] if record.get("input") else "")
    return [{"role": "user", "content": prompt}], record["output"]
