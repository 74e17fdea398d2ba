"""Readers, schema detection and validation, lint, the policy file: every bad record named precisely."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from appliance.data import formats
from appliance.data.canaries import plant
from appliance.data.lint import LintRecord, lint
from appliance.data.policy import CanarySpec, load_policy
from appliance.errors import ConfigError, InputError

pytestmark = pytest.mark.unit
LIMITS = formats.Limits(max_file_bytes=10_000_000, max_record_bytes=2000, max_records=1000)


def chat(user="How do I reset my password?", answer="Use the self-service portal."):
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def read(path):
    return list(formats.read_records(path, LIMITS))


@pytest.mark.parametrize("record, fmt", [
    (chat(), "chat"),
    ({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}, "sharegpt"),
    ({"instruction": "Summarise", "input": "text", "output": "summary"}, "instruction"),
    ({"prompt": "p", "chosen": "good", "rejected": "bad"}, "preference"),
    ({"text": "plain"}, "text"),
    ({"other": 1}, None),
])
def test_format_detection(record, fmt):
    assert formats.detect_format(record) == fmt


@pytest.mark.parametrize("record, field, reason", [
    ({"messages": []}, "messages", "missing or not a non-empty list"),
    ({"messages": [{"role": "user", "content": "q"}]}, "messages", "no assistant turn"),
    ({"messages": [{"role": "assistant", "content": "a"}]}, "messages[0].role", "must follow a user turn"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q2"}]}, "messages[1].role",
     "two user turns in a row"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"}]}, "messages[1].role",
     "system only comes first"),
    ({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]}, "messages[0].content",
     "empty content"),
    ({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]}, "messages[0].content",
     "expected a string, got int"),
    ({"messages": [{"role": "robot", "content": "q"}]}, "messages[0].role",
     "unknown role (a string of 5 characters); one of system, user, assistant"),
])
def test_bad_chat_records_name_the_field(record, field, reason):
    _, reject = formats.validate(formats.RawRecord("f.jsonl", "line 3", record), "chat")
    assert reject.field == field and reason in reject.reason
    assert reject.line().startswith(f"f.jsonl: line 3: {field}: ")


def test_bad_records_of_other_schemas():
    def check(record, fmt):
        return formats.validate(formats.RawRecord("f", "row 2", record), fmt)[1]

    assert check({"instruction": "x"}, "instruction").field == "output"
    assert check({"prompt": "p", "chosen": "same", "rejected": "same"}, "preference").reason.startswith("identical")
    assert check({"text": None}, "text").reason == "missing"
    normalised, reject = formats.validate(formats.RawRecord("f", "row 2", {"instruction": "a", "input": "",
                                                                           "output": "b", "extra": 1}), "instruction")
    assert reject is None and normalised == {"instruction": "a", "input": "", "output": "b"}


def test_jsonl_reports_bad_json_invalid_utf8_and_oversized_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(json.dumps(chat()).encode() + b"\n{not json}\n" + b'{"text": "\xff\xfe"}\n'
                     + b'{"text": "' + b"x" * 5000 + b'"}\n\n' + json.dumps({"text": "last"}).encode() + b"\n")
    items = read(path)
    rejects = [i for i in items if isinstance(i, formats.Reject)]
    assert [(r.where, r.reason.split(":")[0]) for r in rejects] == [
        ("line 2", "bad JSON"), ("line 3", "invalid UTF-8 at byte 10"),
        ("line 4", "record over the size limit of 2000 bytes")]
    good = [i for i in items if isinstance(i, formats.RawRecord)]
    assert [g.where for g in good] == ["line 1", "line 6"]


def test_json_array_csv_and_parquet(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([chat(), chat("q2", "a2")]))
    assert [r.where for r in read(tmp_path / "a.json")] == ["item 0", "item 1"]
    (tmp_path / "b.csv").write_text('instruction,input,output\nSummarise,"a, b",short\n"only,one"\n')
    items = read(tmp_path / "b.csv")
    assert items[0].data == {"instruction": "Summarise", "input": "a, b", "output": "short"}
    assert formats.validate(items[1], "instruction")[1].field == "output"
    (tmp_path / "c.csv").write_text('messages\n"' + json.dumps(chat()).replace('"', '""')[13:-1] + '"\n')
    pq.write_table(pa.Table.from_pylist([{"prompt": "p", "chosen": "c", "rejected": "r"}]), tmp_path / "d.parquet")
    assert read(tmp_path / "d.parquet")[0].data == {"prompt": "p", "chosen": "c", "rejected": "r"}


def test_unsupported_missing_and_oversized_files(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="unsupported file type"):
        read(tmp_path / "x.txt")
    with pytest.raises(InputError, match="no such file"):
        read(tmp_path / "missing.jsonl")
    (tmp_path / "big.jsonl").write_bytes(b"x" * 11_000_000)
    with pytest.raises(InputError, match="over the file size limit"):
        read(tmp_path / "big.jsonl")
    (tmp_path / "obj.json").write_text('{"text": "not an array"}')
    with pytest.raises(InputError, match="must hold an array"):
        read(tmp_path / "obj.json")


def test_parquet_that_expands_beyond_the_limits_is_refused_before_reading(tmp_path):
    import random

    rng = random.Random(0)
    table = pa.Table.from_pylist([{"text": "".join(rng.choice("abcdefgh") for _ in range(3000))} for _ in range(10)])
    pq.write_table(table, tmp_path / "bomb.parquet", compression="zstd")
    with pytest.raises(InputError, match="over the record size limit; refusing to expand it"):
        read(tmp_path / "bomb.parquet")
    pq.write_table(pa.Table.from_pylist([{"text": "x"}] * 1001), tmp_path / "many.parquet")
    with pytest.raises(InputError, match="over the record limit"):
        read(tmp_path / "many.parquet")


LONG_ANSWER = ("Install it from the software centre, sign in with your usual account, choose the office profile, "
               "restart once the installer finishes, and connect before opening any internal application or share.")


def test_lint_finds_duplicates_conflicts_blanks_and_lengths():
    rows = [chat(), chat(), chat(answer="Call the help desk instead."),
            chat("Where is the VPN client for the new laptops?", LONG_ANSWER),
            chat("Where is the VPN client for the new laptop?", LONG_ANSWER),
            chat("Unrelated question about printers", "   ")]
    report = lint([LintRecord(f"r{i}", r, "chat") for i, r in enumerate(rows)])
    assert report["exact_duplicates"] == {"count": 1, "groups": [["r0", "r1"]]}
    assert report["conflicting_answers"]["count"] == 1 and report["conflicting_answers"]["groups"][0] == ["r0", "r2"]
    assert report["near_duplicates"]["pairs"] == [["r3", "r4"]]
    assert report["blank_answers"] == {"count": 1, "ids": ["r5"]}
    assert report["length_chars"]["max"] > report["length_chars"]["min"] > 0
    assert "VPN" not in json.dumps(report)  # ids and counts only, never text


def test_lint_counts_tokens_against_the_context():
    class Tok:
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": text.split()}

    report = lint([LintRecord("a", chat("one two", "three"), "chat"),
                   LintRecord("b", chat("one two three four five six", "seven"), "chat")], tokenizer=Tok(),
                  context_length=4)
    assert report["over_context"] == {"count": 1, "context_length": 4, "ids": ["b"]}


def test_canaries_are_planted_with_their_repetitions_and_controls():
    records = [(f"r{i}", chat(f"question {i}", f"answer {i}")) for i in range(200)]
    spec = CanarySpec(enabled=True, share=0.2, repetitions=[1, 5], per_repetition=2, controls=3, seed=4)
    planted, canaries, note = plant(records, "chat", spec)
    assert note == ""
    assert [c.repetitions for c in canaries] == [1, 1, 5, 5, 0, 0, 0]
    for c in canaries:
        carriers = [rid for rid, r in planted if c.secret in r["messages"][-1]["content"]]
        assert sorted(carriers) == sorted(c.record_ids) and len(carriers) == c.repetitions
    small = plant(records[:10], "chat", spec)
    assert small[1] == [] and "canaries skipped" in small[2]


def test_policy_errors_are_all_reported_with_the_file(tmp_path):
    path = tmp_path / "pii.yaml"
    path.write_text("entities:\n  PERSON: {operator: shred}\nthreshold: 2\nrecognizers:\n"
                    "  - {name: x, entity: ID, patterns: [{name: p, regex: '(', score: 0.5}]}\n")
    with pytest.raises(ConfigError) as exc:
        load_policy(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: 3 errors:")
    for fragment in ("threshold: unknown key", "entities.PERSON.operator", "invalid regular expression"):
        assert fragment in msg
    path.write_text("entities:\n  person: {operator: replace}\n")
    with pytest.raises(ConfigError, match="entity names are UPPER_CASE"):
        load_policy(path)
    path.write_text("entities: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_policy(path)


def test_json_arrays_are_streamed_item_by_item(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"text": "é" * 10}, {"text": "x" * 3000}, {"text": "ok"}], indent=2))
    items = read(path)
    assert [type(i).__name__ for i in items] == ["RawRecord", "Reject", "RawRecord"]
    assert items[1].where == "item 1" and "over the size limit" in items[1].reason
    path.write_text('[{"text": 1} {"text": 2}]')
    with pytest.raises(InputError, match="bad JSON after item 0"):
        read(path)
    path.write_text('[{"text": "a"}, {"text": ')
    with pytest.raises(InputError, match="bad JSON in item 1"):
        read(path)
    path.write_text('[{"text": "' + "z" * 3_000_000 + '"}]')  # one item larger than a read chunk and the limit
    with pytest.raises(InputError, match="item 0 is over the record size limit"):
        read(path)
