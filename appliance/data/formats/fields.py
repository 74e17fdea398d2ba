"""What the record formats share: the check of one text value, and records made of named string fields
(instruction, preference, text: `Fields`, as `turns.Turns` is for chat and sharegpt). Reasons describe a value
by its type or length, never by its content."""

from __future__ import annotations

from typing import Any

from appliance.data.formats.readers import RawRecord, Reject

Validated = tuple[dict | None, Reject | None]  # the normalised record, or why it is refused


def refuse(raw: RawRecord, field: str, reason: str) -> Validated:
    return None, Reject(raw.file, raw.where, field, reason)


def string_problem(value: Any) -> str | None:
    """None when the value is a usable non-empty string; otherwise the reason it is not."""
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    if value == "":
        return "empty content"
    return None


class Fields:
    """A record made of named string fields, each (name, required), in order: its validation (extra keys
    dropped; an optional field may be absent, null or empty), its text fields and their replacement."""

    def __init__(self, *spec: tuple[str, bool]) -> None:
        self.spec = spec
        self.names = tuple(name for name, _ in spec)

    def validate(self, raw: RawRecord) -> Validated:
        data = raw.data
        if not isinstance(data, dict):
            return refuse(raw, "(record)", f"expected an object, got {type(data).__name__}")
        out = {}
        for name, required in self.spec:
            if name not in data or data[name] is None:
                if required:
                    return refuse(raw, name, "missing")
                continue
            if not required and data[name] == "":
                out[name] = ""
                continue
            problem = string_problem(data[name])
            if problem:
                return refuse(raw, name, problem)
            out[name] = data[name]
        return out, None

    def text_fields(self, record: dict) -> list[tuple[str, str]]:
        """(path, text) of the non-empty named fields, in order."""
        return [(n, record[n]) for n in self.names if isinstance(record.get(n), str) and record[n]]

    def with_texts(self, record: dict, texts: list[str]) -> dict:
        """The record with the fields `text_fields` lists replaced, in its order."""
        it = iter(texts)
        return {**record, **{path: next(it) for path, _ in self.text_fields(record)}}
