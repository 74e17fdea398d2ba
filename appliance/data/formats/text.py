"""The plain-text format: `{"text": "..."}`, for continued pre-training. As a conversation it has no prompt:
the whole text is what the model learns."""

from __future__ import annotations

from appliance.data.formats.fields import Fields

NAME = "text"
FIELDS = Fields(("text", True))


def looks_like(data: dict) -> bool:
    return "text" in data


# What the format's fields do.
validate = FIELDS.validate
text_fields = FIELDS.text_fields
with_texts = FIELDS.with_texts


def conversation(record: dict) -> tuple[list[dict], str]:
    return [], record["text"]
