"""Training records: reading files (`readers`), and one module per record format (`chat`, `sharegpt`,
`instruction`, `preference`, `text`), each owning its validation (normalising a record to its fields), its
text fields (what the scrubber sees and replaces) and its conversation (the messages before the last answer,
and the answer).

The conversation is the one rendering of a record: training trains on it and lint measures it (lengths,
conflicting answers), so what lint reports is what the trainer sees. Every reject names the file (its base
name), where in it, and the field, and describes the problem by type, length or allowed values only.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from appliance.data.formats import chat, instruction, preference, sharegpt, text
from appliance.data.formats.fields import Validated
from appliance.data.formats.readers import Limits, RawRecord, Reject, read_records
from appliance.data.formats.turns import ROLES as CHAT_ROLES
from appliance.errors import InputError

__all__ = ["CHAT_ROLES", "FORMATS", "SHAREGPT_ROLES", "TURN_KEYS", "Limits", "RawRecord", "Reject", "conversation",
           "detect_format", "module", "read_records", "render", "text_fields", "validate",
           "with_texts"]

_MODULES: dict[str, ModuleType] = {m.NAME: m for m in (chat, sharegpt, instruction, preference, text)}
FORMATS = tuple(_MODULES)  # also the order detection tries them in
TURN_KEYS = {m.NAME: (m.TURNS.key, m.TURNS.role_key, m.TURNS.text_key) for m in (chat, sharegpt)}
SHAREGPT_ROLES = sharegpt.ROLES
MESSAGE_SEPARATOR = "\n\n"  # between messages, when a conversation is measured as one text


def module(fmt: str) -> ModuleType:
    try:
        return _MODULES[fmt]
    except KeyError:
        raise InputError(f"{fmt!r}: not a record format; one of {', '.join(FORMATS)}") from None


def detect_format(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    return next((name for name, m in _MODULES.items() if m.looks_like(data)), None)


def validate(raw: RawRecord, fmt: str) -> Validated:
    """The record normalised to its format's fields (extra keys dropped), or why it is refused."""
    return module(fmt).validate(raw)


def text_fields(record: dict, fmt: str) -> list[tuple[str, str]]:
    """(path, text) of every text field of a normalised record, in order."""
    return module(fmt).text_fields(record)


def with_texts(record: dict, fmt: str, texts: list[str]) -> dict:
    """The record with its text fields replaced, in text_fields order."""
    return module(fmt).with_texts(record, texts)


def conversation(record: dict, fmt: str) -> tuple[list[dict], str]:
    """(the messages before the last assistant turn, that turn's text): what training takes and lint
    measures. A text record has no messages (its whole text is the answer); a preference record's answer is
    its chosen text."""
    return module(fmt).conversation(record)


def render(messages: list[dict]) -> str:
    """Messages as one text, for measuring: their contents, in order."""
    return MESSAGE_SEPARATOR.join(m["content"] for m in messages)
