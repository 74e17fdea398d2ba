"""Reading training files (JSONL, JSON array, CSV, Parquet) record by record, before any schema is applied.

Input is streamed: a huge line, file or Parquet row group is refused by size before it is read whole.
A record that cannot be parsed becomes a `Reject` naming the file (its base name: directory names can be
personal data, and rejects are stored with the dataset version), the line, row or item, and the field. No
message ever quotes the file's content: parser errors are reduced to what kind of problem it is and where.
Whole-file errors (`InputError`, shown to the person who ran the command) use the name they typed.
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


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 2 * 1024**3
    max_record_bytes: int = 256 * 1024
    max_records: int = 1_000_000


@dataclass(frozen=True)
class RawRecord:
    file: str  # the file's base name
    where: str  # "line 12", "row 7", "item 3"
    data: Any


@dataclass(frozen=True)
class Reject:
    file: str  # the file's base name, never a path
    where: str
    field: str
    reason: str  # the kind of problem (types, lengths, allowed values), never the record's content

    def line(self) -> str:
        return f"{self.file}: {self.where}: {self.field}: {self.reason}"

    def as_dict(self) -> dict:
        return {"file": self.file, "where": self.where, "field": self.field, "reason": self.reason}


# The json module's messages, by prefix: what follows a prefix (an escape, a control character) is content.
_JSON_PROBLEMS = ("Expecting value", "Expecting property name enclosed in double quotes", "Expecting ',' delimiter",
                  "Expecting ':' delimiter", "Unterminated string starting at", "Invalid control character",
                  "Invalid \\uXXXX escape", "Invalid \\escape", "Extra data")


def json_problem(exc: json.JSONDecodeError) -> str:
    """What is wrong with a JSON text, without quoting any of it."""
    return next((p for p in _JSON_PROBLEMS if exc.msg.startswith(p)), "malformed JSON")


def csv_problem(exc: csv.Error, limits: Limits) -> str:
    """What is wrong with a CSV row, without quoting any of it (the csv module's messages are not all fixed)."""
    text = str(exc)
    if "field larger than field limit" in text:
        return f"a field is over the size limit of {limits.max_record_bytes} bytes"
    if "NUL" in text:
        return "a NUL byte in the line"
    if "new-line character" in text:
        return "a line break inside an unquoted field"
    return "malformed CSV (check the quoting)"


def _suffix(name: str) -> str:
    lowered = Path(name).name.lower()
    for suffix in (".jsonl", ".ndjson", ".json", ".csv", ".parquet"):
        if lowered.endswith(suffix):
            return suffix
    raise InputError(f"{name}: unsupported file type; use .jsonl, .json, .csv or .parquet")


def read_records(source: InputFile | Path, limits: Limits) -> Iterator[RawRecord | Reject]:
    """Records of one file, or Rejects for the ones that cannot even be parsed. The file is read through
    `userfiles` (with the permissions of the person who named it). Records and rejects carry its base name;
    errors about the whole file use the name the person typed."""
    source = as_input(source)
    typed, base = source.name, source.basename
    suffix = _suffix(typed)
    with source.open() as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(0)
        if size > limits.max_file_bytes:
            raise InputError(f"{typed}: {size} bytes is over the file size limit of {limits.max_file_bytes}")
        if suffix in (".jsonl", ".ndjson"):
            yield from _jsonl(fh, base, limits)
        elif suffix == ".json":
            yield from _json_array(fh, typed, base, limits)
        elif suffix == ".csv":
            yield from _csv(fh, base, limits)
        else:
            yield from _parquet(fh, typed, base, limits)


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
            yield Reject(name, where, "(record)", f"bad JSON: {json_problem(exc)} at column {exc.colno}")


def _json_array(fh: BinaryIO, path: str, name: str, limits: Limits) -> Iterator[RawRecord | Reject]:
    """Stream the items of a JSON array: at most one record (and one read chunk) is in memory at a time."""
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
                    raise InputError(f"{path}: bad JSON in item {index}: {json_problem(exc)}") from None
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
            yield Reject(name, where, "(record)", f"bad CSV: {csv_problem(exc, limits)}")
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
                    yield Reject(name, where, key, f"bad JSON in CSV cell: {json_problem(exc)}")
                    break
            record[key] = value
        else:
            yield RawRecord(name, where, record)


def _parquet(fh: BinaryIO, path: str, name: str, limits: Limits) -> Iterator[RawRecord | Reject]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(fh)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError ... for a damaged file
        raise InputError(f"{path}: not a readable Parquet file ({type(exc).__name__}: damaged, or not "
                         "Parquet)") from None
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
