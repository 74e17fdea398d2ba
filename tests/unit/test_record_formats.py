"""The record formats: each format's validation (what it keeps, what it refuses and why), one rendering of a
record shared by lint and training, rejects that never quote the record, and files recorded by base name."""

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from appliance.data import formats
from appliance.data.ingest import parse
from appliance.data.lint import LintRecord, lint
from appliance.errors import InputError
from appliance.train.data import prompt_and_answer as trainer_prompt_and_answer

pytestmark = pytest.mark.unit
LIMITS = formats.Limits(max_file_bytes=10_000_000, max_record_bytes=2000, max_records=1000)


def _raw(data):
    return formats.RawRecord("f.jsonl", "line 1", data)


# (format, record, the normalised record) for records each format accepts
ACCEPTED = [
    ("chat", {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"},
                           {"role": "assistant", "content": "a", "name": "x"}], "id": 3},
     {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"},
                   {"role": "assistant", "content": "a"}]}),
    ("chat", {"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                           {"role": "user", "content": "q2"}]},
     {"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                   {"role": "user", "content": "q2"}]}),
    ("sharegpt", {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
     {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}),
    ("sharegpt", {"conversations": [{"from": "system", "value": "s"}, {"from": "user", "value": "q"},
                                    {"from": "assistant", "value": "a"}]},
     {"conversations": [{"from": "system", "value": "s"}, {"from": "user", "value": "q"},
                        {"from": "assistant", "value": "a"}]}),
    ("instruction", {"instruction": "Summarise", "input": "the text", "output": "short", "extra": 1},
     {"instruction": "Summarise", "input": "the text", "output": "short"}),
    ("instruction", {"instruction": "Greet", "output": "hello"}, {"instruction": "Greet", "output": "hello"}),
    ("instruction", {"instruction": "Greet", "input": None, "output": "hi"}, {"instruction": "Greet", "output": "hi"}),
    ("instruction", {"instruction": "Greet", "input": "", "output": "hi"},
     {"instruction": "Greet", "input": "", "output": "hi"}),
    ("preference", {"prompt": "p", "chosen": "good", "rejected": "bad"},
     {"prompt": "p", "chosen": "good", "rejected": "bad"}),
    ("text", {"text": "plain", "source": "wiki"}, {"text": "plain"}),
]


@pytest.mark.parametrize("fmt, data, normalised", ACCEPTED)
def test_each_format_normalises_what_it_accepts(fmt, data, normalised):
    assert formats.validate(_raw(data), fmt) == (normalised, None)


REFUSED = [
    ("chat", [], "(record)", "expected an object, got list"),
    ("chat", {"messages": "hi"}, "messages", "missing or not a non-empty list"),
    ("chat", {"messages": ["hi"]}, "messages[0]", "expected an object"),
    ("chat", {"messages": [{"content": "q"}]}, "messages[0].role", "missing; one of system, user, assistant"),
    ("chat", {"messages": [{"role": 1, "content": "q"}]}, "messages[0].role",
     "unknown role: expected a string, got int"),
    ("chat", {"messages": [{"role": "human", "content": "q"}]}, "messages[0].role",
     "unknown role (a string of 5 characters)"),
    ("chat", {"messages": [{"role": "user", "content": None}]}, "messages[0].content",
     "expected a string, got NoneType"),
    ("chat", {"messages": [{"role": "user", "content": "q"}]}, "messages", "no assistant turn"),
    ("chat", {"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]},
     "messages[1].role", "an assistant turn must follow a user turn"),
    ("sharegpt", {"conversations": []}, "conversations", "missing or not a non-empty list"),
    ("sharegpt", {"conversations": [{"from": "bot", "value": "q"}]}, "conversations[0].from",
     "one of system, human, user, gpt, assistant"),
    ("sharegpt", {"conversations": [{"from": "human", "value": ""}, {"from": "gpt", "value": "a"}]},
     "conversations[0].value", "empty content"),
    ("sharegpt", {"conversations": [{"from": "human", "value": "q"}, {"from": "user", "value": "q"}]},
     "conversations[1].from", "two user turns in a row"),
    ("sharegpt", {"conversations": [{"from": "human", "value": "q"}, {"from": "system", "value": "s"}]},
     "conversations[1].from", "system only comes first"),
    ("instruction", "text", "(record)", "expected an object, got str"),
    ("instruction", {"instruction": "x"}, "output", "missing"),
    ("instruction", {"instruction": "", "output": "y"}, "instruction", "empty content"),
    ("instruction", {"instruction": "x", "input": 4, "output": "y"}, "input", "expected a string, got int"),
    ("preference", {"prompt": "p", "chosen": "c"}, "rejected", "missing"),
    ("preference", {"prompt": "p", "chosen": "same", "rejected": "same"}, "rejected", "identical to chosen"),
    ("preference", {"prompt": ["p"], "chosen": "c", "rejected": "r"}, "prompt", "expected a string, got list"),
    ("text", {"text": None}, "text", "missing"),
    ("text", {"text": ""}, "text", "empty content"),
]


@pytest.mark.parametrize("fmt, data, field, reason", REFUSED)
def test_each_format_refuses_with_the_field_and_the_kind_of_problem(fmt, data, field, reason):
    normalised, reject = formats.validate(_raw(data), fmt)
    assert normalised is None and reject.field == field and reason in reject.reason
    assert reject.line().startswith(f"f.jsonl: line 1: {field}: ")


def test_text_fields_and_their_replacement_follow_each_format():
    for fmt, _, record in ACCEPTED:
        paths = [p for p, _ in formats.text_fields(record, fmt)]
        replaced = formats.with_texts(record, fmt, [f"<{i}>" for i in range(len(paths))])
        assert [t for _, t in formats.text_fields(replaced, fmt)] == [f"<{i}>" for i in range(len(paths))]
        assert set(replaced) == set(record)
    assert [p for p, _ in formats.text_fields(ACCEPTED[0][2], "chat")] == [
        "messages[0].content", "messages[1].content", "messages[2].content"]
    assert [p for p, _ in formats.text_fields(ACCEPTED[4][2], "instruction")] == ["instruction", "input", "output"]


# One record per format, and the conversation the trainer takes from it.
CONVERSATIONS = [
    ("chat", {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Reset?"},
                           {"role": "assistant", "content": "Use the portal."}]},
     [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Reset?"}], "Use the portal."),
    ("sharegpt", {"conversations": [{"from": "human", "value": "Reset?"}, {"from": "gpt", "value": "Portal."},
                                    {"from": "human", "value": "And then?"}, {"from": "gpt", "value": "Sign in."}]},
     [{"role": "user", "content": "Reset?"}, {"role": "assistant", "content": "Portal."},
      {"role": "user", "content": "And then?"}], "Sign in."),
    ("instruction", {"instruction": "Summarise", "input": "The long text.", "output": "Short."},
     [{"role": "user", "content": "Summarise\n\nThe long text."}], "Short."),
    ("instruction", {"instruction": "Greet", "input": "", "output": "Hello."},
     [{"role": "user", "content": "Greet"}], "Hello."),
    ("preference", {"prompt": "Which?", "chosen": "This.", "rejected": "That."},
     [{"role": "user", "content": "Which?"}], "This."),
]


class SpyTokenizer:
    """Records the texts lint measures."""

    def __init__(self):
        self.texts = []

    def __call__(self, text, add_special_tokens=True):
        self.texts.append(text)
        return {"input_ids": text.split()}


@pytest.mark.parametrize("fmt, record, messages, answer", CONVERSATIONS)
def test_lint_measures_exactly_the_conversation_the_trainer_trains_on(fmt, record, messages, answer):
    # the stored row carries its id; the conversion ignores it
    assert trainer_prompt_and_answer({"id": "r000001", **record}, fmt) == (messages, answer)
    assert formats.conversation(record, fmt) == (messages, answer)
    spy = SpyTokenizer()
    lint([LintRecord("a", record, fmt)], tokenizer=spy, context_length=100)
    assert spy.texts == [formats.render([*messages, {"role": "assistant", "content": answer}])]
    # the same prompt with another answer is a conflict: lint keys on the trainer's prompt
    other = formats.with_texts(record, fmt, [t if p != formats.text_fields(record, fmt)[-1][0] else "Other."
                                             for p, t in formats.text_fields(record, fmt)])
    if fmt == "preference":
        other = {**record, "chosen": "Other."}
    report = lint([LintRecord("a", record, fmt), LintRecord("b", other, fmt)])
    assert report["conflicting_answers"]["groups"] == [["a", "b"]]


def test_a_text_record_is_its_answer_and_the_trainer_refuses_to_prompt_it():
    assert formats.conversation({"text": "Plain prose."}, "text") == ([], "Plain prose.")
    spy = SpyTokenizer()
    lint([LintRecord("a", {"text": "Plain prose."}, "text")], tokenizer=spy, context_length=100)
    assert spy.texts == ["Plain prose."]
    with pytest.raises(InputError, match="no prompts to answer"):
        trainer_prompt_and_answer({"text": "Plain prose."}, "text")
    with pytest.raises(InputError, match="not a record format"):
        formats.conversation({}, "alpaca")


SECRETS = ("alice.smith@example.org", "John Q Public")


def _bad_files(folder):
    """Files whose every problem sits in a value that is personal data."""
    email, name = SECRETS
    turns = lambda role: [{"role": role, "content": "q"}, {"role": "assistant", "content": "a"}]  # noqa: E731
    lines = [
        {"messages": turns(email)},
        {"messages": turns(name)},
        {"conversations": [{"from": name, "value": "q"}, {"from": "gpt", "value": "a"}]},
        {"conversations": [{"from": "human", "value": {"name": name}}, {"from": "gpt", "value": "a"}]},
        {"messages": [{"role": "user", "content": [email]}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": {"email": email}, "content": "q"}]},
        {"instruction": {"who": name}, "output": "a"},
        {name: email},
    ]
    jsonl = folder / "a.jsonl"
    jsonl.write_text("\n".join(json.dumps(x) for x in lines) + "\n"
                     + f'{{"text": "{email}" "{name}"}}\n' + f'{{"text": "\\q{name}"}}\n'
                     + f'{{"text": "{name}\n' + f'["{email}", \n')
    sharegpt = folder / "b.jsonl"
    sharegpt.write_text(json.dumps({"conversations": [{"from": email, "value": "q"}]}) + "\n")
    csv = folder / "c.csv"
    csv.write_text('messages,text\n"[{""role"": ""' + email + '"" ' + name + '",x\n'
                   + '"' + name + '" x,y\n' + '"' + name * 200 + '",z\n' + name + "\0" + email + ",w\n")
    return [jsonl, sharegpt, csv]


def test_rejects_never_quote_the_values_they_refuse(tmp_path):
    folder = tmp_path / "john_q_public"
    folder.mkdir()
    parsed_chat = parse(_bad_files(folder), "chat", LIMITS)
    parsed_sharegpt = parse(_bad_files(folder)[1:2], "sharegpt", LIMITS)
    rejects = parsed_chat.rejects + parsed_sharegpt.rejects
    assert len(parsed_chat.rejects) >= 12 and not parsed_chat.records
    assert any("unknown role" in r.reason for r in rejects) and any("bad CSV" in r.reason for r in rejects)
    assert any("bad JSON" in r.reason for r in rejects)
    text = json.dumps([r.as_dict() for r in rejects]) + "\n".join(r.line() for r in rejects)
    for secret in (*SECRETS, "alice", "John", "Public", "john_q_public"):
        assert secret not in text, secret
    # every reject names a file, a position and a field
    assert all(r.file in ("a.jsonl", "b.jsonl", "c.csv") and r.where.split()[0] in ("line", "row") and r.field
               for r in rejects)


def test_whole_file_errors_name_the_file_but_not_its_content(tmp_path):
    email, name = SECRETS
    messages = []
    for file, content in [("a.json", f'[{{"text": "{email}"}} {{"text": "{name}"}}]'),
                          ("b.json", f'[{{"text": "{email}\\q{name}"}}]'),
                          ("c.json", f'[{{"text": "{email}"'),
                          ("d.parquet", f"{name} {email}" * 20)]:
        (tmp_path / file).write_text(content)
        with pytest.raises(InputError) as exc:
            list(formats.read_records(tmp_path / file, LIMITS))
        messages.append(str(exc.value))
        assert str(exc.value).startswith(f"{tmp_path / file}: ")  # the name as typed: the person's own terminal
    assert not [s for s in SECRETS for m in messages if s in m]


def test_inputs_are_recorded_by_base_name_and_digest_never_by_path(tmp_path):
    folder = tmp_path / "patients" / "john_smith"
    folder.mkdir(parents=True)
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    jsonl = folder / "export.jsonl"
    jsonl.write_text(json.dumps(good) + "\n{bad\n" + json.dumps({"messages": []}) + "\n")
    parquet = folder / "more.parquet"
    pq.write_table(pa.Table.from_pylist([{"text": "x"}]), parquet)
    parsed = parse([jsonl, parquet], "auto", LIMITS)
    assert parsed.files == [
        {"file": "export.jsonl", "sha256": hashlib.sha256(jsonl.read_bytes()).hexdigest(),
         "bytes": jsonl.stat().st_size},
        {"file": "more.parquet", "sha256": hashlib.sha256(parquet.read_bytes()).hexdigest(),
         "bytes": parquet.stat().st_size}]
    assert [(r.file, r.where) for r in parsed.rejects] == [("export.jsonl", "line 2"), ("export.jsonl", "line 3"),
                                                           ("more.parquet", "row 0")]
    assert [position for position, _ in parsed.records] == ["export.jsonl:line 1"]
    stored = json.dumps({"inputs": parsed.files, "rejects": [r.as_dict() for r in parsed.rejects],
                         "positions": [p for p, _ in parsed.records]})
    assert "john_smith" not in stored and "patients" not in stored and str(tmp_path) not in stored
