"""Reading training files (JSONL, JSON array, CSV, Parquet) record by record, and checking each record
against its schema (chat, sharegpt, instruction, preference, text).

Input is streamed: a huge line, file or Parquet row group is refused by size before it is read whole.
Every problem names the file, the line or row, and the field.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from appliance.errors import InputError
from appliance.userfiles import InputFile, as_input

FORMATS = ("chat", "sharegpt", "instruction", "preference", "text")
CHAT_ROLES = ("system", "user", "assistant")
TURN_KEYS = {"chat": ("messages", "role", "content"), "sharegpt": ("conversations", "from", "value")}
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 2 * 1024**3
    max_record_bytes: int = 256 * 1024
    max_records: int = 1_000_000


@dataclass(frozen=True)
class RawRecord:
    file: str
    where: str  # "line 12", "row 7", "item 3"
    data: Any


@dataclass(frozen=True)
class Reject:
    file: str
    where: str
    field: str
    reason: str

    def line(self) -> str:
        return f"{self.file}: {self.where}: {self.field}: {self.reason}"

    def as_dict(self) -> dict:
        return {"file": self.file, "where": self.where, "field": self.field, "reason": self.reason}


def _suffix(name: str) -> str:
    lowered = Path(name).name.lower()
    for suffix in (".jsonl", ".ndjson", ".json", ".csv", ".parquet"):
        if lowered.endswith(suffix):
            return suffix
    raise InputError(f"{name}: unsupported file type; use .jsonl, .json, .csv or .parquet")


def read_records(source: InputFile | Path, limits: Limits) -> Iterator[RawRecord | Reject]:
    """Records of one file, or Rejects for the ones that cannot even be parsed. The file is read through
    `userfiles` (with the permissions of the person who named it); messages use the name they typed."""
    source = as_input(source)
    name = source.name
    suffix = _suffix(name)
    with source.open() as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(0)
        if size > limits.max_file_bytes:
            raise InputError(f"{name}: {size} bytes is over the file size limit of {limits.max_file_bytes}")
        if suffix in (".jsonl", ".ndjson"):
            yield from _jsonl(fh, name, limits)
        elif suffix == ".json":
            yield from _json_array(fh, name, limits)
        elif suffix == ".csv":
            yield from _csv(fh, name, limits)
        else:
            yield from _parquet(fh, name, limits)


def _jsonl(fh: BinaryIO, name: str, limits: Limits) -> Iterator[RawRecord | Reject]:
    number = 0
    while True:
        line = fh.readline(limits.max_record_bytes + 1)
        if not line:
            return
        number += 1
        where = f"line {number}"
        if len(line) > limits.max_record_bytes and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # skip the rest of the oversized line, unread
                line = fh.readline(1024 * 1024)
            yield Reject(name, where, "(record)", f"record over the size limit of {limits.max_record_bytes} bytes")
            continue
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Reject(name, where, "(record)", f"invalid UTF-8 at byte {exc.start}")
            continue
        try:
            yield RawRecord(name, where, json.loads(text))
        except json.JSONDecodeError as exc:
            yield Reject(name, where, "(record)", f"bad JSON: {exc.msg} at column {exc.colno}")


def _json_array(fh: BinaryIO, name: str, limits: Limits) -> Iterator[RawRecord | Reject]:
    """Stream the items of a JSON array: at most one record (and one read chunk) is in memory at a time."""
    path = name
    decoder = json.JSONDecoder()
    text_decoder = codecs.getincrementaldecoder("utf-8")()
    buf, pos, eof = "", 0, False

    def fill() -> None:
        nonlocal buf, pos, eof
        chunk = fh.read(1024 * 1024)
        try:
            buf = buf[pos:] + text_decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: invalid UTF-8 near byte {fh.tell() - len(chunk) + exc.start}") from None
        pos, eof = 0, not chunk

    def next_char() -> str:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos].isspace():
                pos += 1
            if pos < len(buf) or eof:
                return buf[pos] if pos < len(buf) else ""
            fill()

    fill()
    if next_char() != "[":
        raise InputError(f"{path}: a .json file must hold an array of records (use .jsonl for one per line)")
    pos += 1
    if next_char() == "]":
        return
    index = 0
    while True:
        next_char()
        while True:
            try:
                item, end = decoder.raw_decode(buf, pos)
                if end < len(buf) or eof:
                    break
            except json.JSONDecodeError as exc:
                if eof:
                    raise InputError(f"{path}: bad JSON in item {index}: {exc.msg}") from None
            if len(buf) - pos > limits.max_record_bytes:
                raise InputError(f"{path}: item {index} is over the record size limit of "
                                 f"{limits.max_record_bytes} bytes (JSONL lets single records be rejected)")
            fill()
        size = len(buf[pos:end].encode("utf-8"))
        pos = end
        where = f"item {index}"
        if size > limits.max_record_bytes:
            yield Reject(name, where, "(record)", f"record over the size limit of {limits.max_record_bytes} bytes")
        else:
            yield RawRecord(name, where, item)
        index += 1
        separator = next_char()
        pos += 1
        if separator == "]":
            return
        if separator != ",":
            raise InputError(f"{path}: bad JSON after item {index - 1}: expected ',' or ']'")


def _csv(fh: BinaryIO, name: str, limits: Limits) -> Iterator[RawRecord | Reject]:
    csv.field_size_limit(limits.max_record_bytes)
    text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
    reader = csv.DictReader(text)
    row = 1
    while True:
        row += 1
        where = f"row {row}"
        try:
            item = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            yield Reject(name, where, "(record)",
                         f"invalid UTF-8 at byte {exc.start}; the rest of the file is skipped")
            return
        except csv.Error as exc:
            yield Reject(name, where, "(record)", f"bad CSV: {exc}")
            continue
        if None in item:
            yield Reject(name, where, "(record)", "more fields than the header has columns")
            continue
        record: dict[str, Any] = {}
        for key, value in item.items():
            if key in ("messages", "conversations") and value:
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    yield Reject(name, where, key, f"bad JSON in CSV cell: {exc.msg}")
                    break
            record[key] = value
        else:
            yield RawRecord(name, where, record)


def _parquet(fh: BinaryIO, name: str, limits: Limits) -> Iterator[RawRecord | Reject]:
    import pyarrow.parquet as pq

    path = name
    try:
        pf = pq.ParquetFile(fh)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError ... for a damaged file
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from None
    meta = pf.metadata
    if meta.num_rows > limits.max_records:
        raise InputError(f"{path}: {meta.num_rows} rows is over the record limit of {limits.max_records}")
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        if group.num_rows and group.total_byte_size / group.num_rows > limits.max_record_bytes:
            raise InputError(f"{path}: row group {g} decompresses to {group.total_byte_size} bytes for "
                             f"{group.num_rows} rows, over the record size limit; refusing to expand it")
    row = 0
    for batch in pf.iter_batches(batch_size=64):
        for item in batch.to_pylist():
            where = f"row {row}"
            row += 1
            if len(json.dumps(item, ensure_ascii=False, default=str).encode()) > limits.max_record_bytes:
                yield Reject(name, where, "(record)", f"record over the size limit of {limits.max_record_bytes} bytes")
                continue
            yield RawRecord(name, where, item)


def detect_format(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    if "messages" in data:
        return "chat"
    if "conversations" in data:
        return "sharegpt"
    if "instruction" in data and "output" in data:
        return "instruction"
    if {"prompt", "chosen", "rejected"} <= set(data):
        return "preference"
    if "text" in data:
        return "text"
    return None


def _text(value: Any, field: str) -> str | None:
    """None when the value is a usable non-empty string; otherwise the reason it is not."""
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    if value == "":
        return "empty content"
    return None


def validate(raw: RawRecord, fmt: str) -> tuple[dict | None, Reject | None]:
    """The record normalised to its schema's fields (extra keys dropped), or why it is refused."""
    data = raw.data

    def bad(field: str, reason: str):
        return None, Reject(raw.file, raw.where, field, reason)

    if not isinstance(data, dict):
        return bad("(record)", f"expected an object, got {type(data).__name__}")
    if fmt in ("chat", "sharegpt"):
        key, role_key, text_key = TURN_KEYS[fmt]
        turns = data.get(key)
        if not isinstance(turns, list) or not turns:
            return bad(key, "missing or not a non-empty list")
        out, previous = [], None
        for i, turn in enumerate(turns):
            if not isinstance(turn, dict):
                return bad(f"{key}[{i}]", "expected an object")
            role = turn.get(role_key)
            role = role if fmt == "chat" else SHAREGPT_ROLES.get(role) if isinstance(role, str) else None
            if role not in CHAT_ROLES:
                return bad(f"{key}[{i}].{role_key}", f"unknown role {turn.get(role_key)!r}")
            problem = _text(turn.get(text_key), text_key)
            if problem:
                return bad(f"{key}[{i}].{text_key}", problem)
            if role == "system" and i != 0:
                return bad(f"{key}[{i}].{role_key}", "roles out of order: system only comes first")
            if role != "system" and role == previous:
                return bad(f"{key}[{i}].{role_key}", f"roles out of order: two {role} turns in a row")
            if role == "assistant" and previous not in ("user",):
                return bad(f"{key}[{i}].{role_key}", "roles out of order: an assistant turn must follow a user turn")
            out.append({role_key: turn[role_key], text_key: turn[text_key]})
            previous = role
        if "assistant" not in {SHAREGPT_ROLES.get(t[role_key], t[role_key]) for t in out}:
            return bad(key, "no assistant turn: nothing to learn from")
        return {key: out}, None
    fields = {"instruction": (("instruction", True), ("input", False), ("output", True)),
              "preference": (("prompt", True), ("chosen", True), ("rejected", True)),
              "text": (("text", True),)}[fmt]
    out = {}
    for field, required in fields:
        if field not in data or data[field] is None:
            if required:
                return bad(field, "missing")
            continue
        if not required and data[field] == "":
            out[field] = ""
            continue
        problem = _text(data[field], field)
        if problem:
            return bad(field, problem)
        out[field] = data[field]
    if fmt == "preference" and out["chosen"] == out["rejected"]:
        return bad("rejected", "identical to chosen: no preference to learn")
    return out, None


def text_fields(record: dict, fmt: str) -> list[tuple[str, str]]:
    """(path, text) of every text field of a normalised record, in order."""
    if fmt in ("chat", "sharegpt"):
        key, _, text_key = TURN_KEYS[fmt]
        return [(f"{key}[{i}].{text_key}", t[text_key]) for i, t in enumerate(record[key])]
    return [(k, v) for k, v in record.items() if isinstance(v, str) and v]


def with_texts(record: dict, fmt: str, texts: list[str]) -> dict:
    """The record with its text fields replaced, in text_fields order."""
    it = iter(texts)
    if fmt in ("chat", "sharegpt"):
        key, _, text_key = TURN_KEYS[fmt]
        return {key: [{**t, text_key: next(it)} for t in record[key]]}
    return {k: (next(it) if isinstance(v, str) and v else v) for k, v in record.items()}


def prompt_and_answer(record: dict, fmt: str) -> tuple[str, str]:
    """What is asked and what the model should answer: for lint's conflict and length checks."""
    if fmt in ("chat", "sharegpt"):
        key, role_key, text_key = TURN_KEYS[fmt]
        turns = record[key]
        last = max(i for i, t in enumerate(turns) if SHAREGPT_ROLES.get(t[role_key], t[role_key]) == "assistant")
        return "\n".join(t[text_key] for t in turns[:last]), turns[last][text_key]
    if fmt == "instruction":
        return (record["instruction"] + ("\n" + record["input"] if record.get("input") else "")), record["output"]
    if fmt == "preference":
        return record["prompt"], record["chosen"]
    return "", record["text"]
