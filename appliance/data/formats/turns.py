"""Conversations stored as a list of turns (chat's `messages`, ShareGPT's `conversations`): validation, the
turns' text fields, and the messages a trainer takes. Each format names its keys and its role names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from appliance.data.formats.fields import Validated, refuse, string_problem
from appliance.data.formats.readers import RawRecord

ROLES = ("system", "user", "assistant")  # the chat roles every turn maps to


@dataclass(frozen=True)
class Turns:
    key: str  # the record's list of turns
    role_key: str
    text_key: str
    roles: Mapping[str, str]  # this format's role names -> chat roles

    def validate(self, raw: RawRecord) -> Validated:
        """The turns normalised to their role and text keys, or why the record is refused: turns must be
        objects with a known role and non-empty text, system only first, user and assistant alternating, an
        assistant answering a user, and at least one assistant turn."""
        key, role_key, text_key = self.key, self.role_key, self.text_key
        data = raw.data
        if not isinstance(data, dict):
            return refuse(raw, "(record)", f"expected an object, got {type(data).__name__}")
        turns = data.get(key)
        if not isinstance(turns, list) or not turns:
            return refuse(raw, key, "missing or not a non-empty list")
        out, previous = [], None
        for i, turn in enumerate(turns):
            if not isinstance(turn, dict):
                return refuse(raw, f"{key}[{i}]", "expected an object")
            problem = self._role_problem(turn.get(role_key))
            if problem:
                return refuse(raw, f"{key}[{i}].{role_key}", problem)
            role = self.roles[turn[role_key]]
            problem = string_problem(turn.get(text_key))
            if problem:
                return refuse(raw, f"{key}[{i}].{text_key}", problem)
            if role == "system" and i != 0:
                return refuse(raw, f"{key}[{i}].{role_key}", "roles out of order: system only comes first")
            if role != "system" and role == previous:
                return refuse(raw, f"{key}[{i}].{role_key}", f"roles out of order: two {role} turns in a row")
            if role == "assistant" and previous != "user":
                return refuse(raw, f"{key}[{i}].{role_key}",
                              "roles out of order: an assistant turn must follow a user turn")
            out.append({role_key: turn[role_key], text_key: turn[text_key]})
            previous = role
        if "assistant" not in {self.roles[t[role_key]] for t in out}:
            return refuse(raw, key, "no assistant turn: nothing to learn from")
        return {key: out}, None

    def _role_problem(self, role: object) -> str | None:
        """Why a role is not one of this format's, by its type or length only: a role field may hold a name."""
        allowed = ", ".join(self.roles)
        if role is None:
            return f"missing; one of {allowed}"
        if not isinstance(role, str):
            return f"unknown role: expected a string, got {type(role).__name__}; one of {allowed}"
        if role not in self.roles:
            return f"unknown role (a string of {len(role)} characters); one of {allowed}"
        return None

    def text_fields(self, record: dict) -> list[tuple[str, str]]:
        return [(f"{self.key}[{i}].{self.text_key}", t[self.text_key]) for i, t in enumerate(record[self.key])]

    def with_texts(self, record: dict, texts: list[str]) -> dict:
        it = iter(texts)
        return {**record, self.key: [{**t, self.text_key: next(it)} for t in record[self.key]]}

    def messages(self, record: dict) -> list[dict]:
        return [{"role": self.roles[t[self.role_key]], "content": t[self.text_key]} for t in record[self.key]]

    def conversation(self, record: dict) -> tuple[list[dict], str]:
        """(the messages before the last assistant turn, that turn's text)."""
        messages = self.messages(record)
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        return messages[:last], messages[last]["content"]
