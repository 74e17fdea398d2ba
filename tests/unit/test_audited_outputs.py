"""What leaves the appliance through a person's command is on the record: `data export` and `chat` are audit
events that name what was written or asked by length and digest, never by text or full path; and the
evaluation report's quoted examples are scrubbed before they are stored and signed."""

import hashlib
import hmac
import io
import json
from collections import Counter
from pathlib import Path

import pytest

from appliance.config import load_settings
from appliance.data import versions
from appliance.db import connect, session_scope
from tests.conftest import audit_events
from tests.helpers import write_gguf

pytestmark = pytest.mark.unit

TRAIN = [{"id": "r1", "text": "Reset the VPN token for <PERSON_ab12>."},
         {"id": "r2", "text": "Printer jam on floor 3."}]
HELD_OUT = [{"id": "r3", "text": "Olá: a impressora não liga."}]


def _events(home: Path, action: str) -> list[dict]:
    columns = ("actor", "outcome", "object_id", "object_sha256", "details", "reason")
    rows = [dict(zip(columns, r, strict=True)) for r in audit_events(home, action, *columns)]
    return [{**r, "details": json.loads(r["details"])} for r in rows]


def _dataset(home: Path) -> versions.DatasetVersion:
    """A stored version `notes@v1` (what ingest leaves: scrubbed Parquet splits and the row), written directly."""
    settings = load_settings()
    rel = Path("datasets") / "notes" / "v1"
    (home / rel).mkdir(parents=True)
    versions.write_split(home / rel / "train.parquet", TRAIN)
    versions.write_split(home / rel / "eval.parquet", HELD_OUT)
    v = versions.DatasetVersion(
        id="d" * 32, name="notes", version=1, digest="ab" * 32, format="text", records=3, train_records=2,
        eval_records=1, rejected=0, path=rel.as_posix(), policy_digest="cd" * 32, policy_strictness=1,
        created_at="2026-12-01T00:00:00+00:00", created_by="erin", lineage={}, scrub_report={}, lint_report={},
        rejects=[])
    with session_scope(connect(settings)) as s:
        versions.insert(s.connection(), v)
    return v


def test_data_export_writes_the_scrubbed_records_and_records_their_digest_not_the_path(cli, staff, tmp_path):
    v = _dataset(staff.home)
    out = tmp_path / "private-folder" / "scrubbed.jsonl"
    out.parent.mkdir()
    done = cli("data", "export", "notes@v1", "--out", out, "--split", "all", "--json")
    assert done.code == 0, done.err
    body = out.read_bytes()
    assert [json.loads(line) for line in body.decode().splitlines()] == [
        {"text": r["text"]} for r in TRAIN + HELD_OUT]
    digest = hashlib.sha256(body).hexdigest()
    assert json.loads(done.out) == {"ref": "notes@v1", "split": "all", "records": 3, "bytes": len(body),
                                    "sha256": digest, "file": "scrubbed.jsonl"}
    [event] = _events(staff.home, "data.export")
    assert event["actor"] == "erin" and event["outcome"] == "ok" and event["object_id"] == "notes@v1"
    assert event["object_sha256"] == v.digest
    assert event["details"] == {"split": "all", "records": 3, "bytes": len(body), "sha256": digest,
                                "file": "scrubbed.jsonl"}
    assert "private-folder" not in json.dumps(event)

    plain = cli("data", "export", "notes", "--out", tmp_path / "held-out.jsonl", "--split", "eval")
    assert plain.code == 0, plain.err
    assert plain.out.startswith("wrote 1 records of notes@v1 to ") and "(sha256 " in plain.out
    assert [(e["details"]["split"], e["details"]["records"]) for e in _events(staff.home, "data.export")] == [
        ("all", 3), ("eval", 1)]


def test_an_export_whose_event_cannot_be_recorded_writes_no_file(cli, staff, tmp_path, monkeypatch):
    """Mock: the audit append fails (a full disk, a locked database cannot be caused here on demand)."""
    import appliance.audit.log as log

    _dataset(staff.home)

    def failing(*_args, **_kwargs):
        raise RuntimeError("audit append failed")

    monkeypatch.setattr(log, "record_alone", failing)
    out = tmp_path / "scrubbed.jsonl"
    assert cli("data", "export", "notes@v1", "--out", out).code != 0
    assert not out.exists() and not list(tmp_path.glob(".scrubbed.jsonl.*"))


def test_an_export_by_someone_who_may_not_read_datasets_is_refused_on_the_record(cli, staff, tmp_path):
    _dataset(staff.home)
    staff.login("ursula")
    out = tmp_path / "scrubbed.jsonl"
    refused = cli("data", "export", "notes@v1", "--out", out)
    assert refused.code != 0 and "may not read" in refused.err
    assert not out.exists()
    denied = audit_events(staff.home, "read", "actor", "outcome", "object_id")[-1]
    assert denied == ("ursula", "denied", "notes@v1")
    assert _events(staff.home, "data.export") == []


# --- chat ---

class _FakeLlm:
    """Mock: llama.cpp itself is exercised by test_model_import's chat test; here only what the command does
    around it (the prompt's source and the audit event) is under test."""

    def __init__(self):
        self.asked: list[list[dict]] = []

    def create_chat_completion(self, messages, max_tokens, temperature):
        self.asked.append(messages)
        return {"choices": [{"message": {"content": "Call +1 415 555 0142."}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 5}}


@pytest.fixture
def chatty(cli, staff, tmp_path, monkeypatch):
    """A registered GGUF `tiny` that chat accepts (its template check and llama.cpp's loader stubbed)."""
    from appliance.models import registry
    from appliance.serve import llamacpp

    staff.login("alice")
    imported = cli("models", "import", write_gguf(tmp_path / "m.gguf"), "--name", "tiny")
    assert imported.code == 0, imported.err
    staff.login("erin")
    llm = _FakeLlm()
    monkeypatch.setattr(registry, "chat_template", lambda settings, record: "{{ messages }}")
    monkeypatch.setattr(llamacpp, "load", lambda settings, gguf, **kw: llm)
    return llm


def _digest(home: Path, text: str) -> str:
    key = (home / "keys" / "serve-text.key").read_bytes()
    return "hmac-sha256:" + hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def test_chat_takes_its_prompt_from_a_file_and_records_lengths_and_keyed_digests_only(cli, staff, chatty,
                                                                                     tmp_path):
    prompt = "My CPF is 123.456.789-09; is my leave approved?"
    (tmp_path / "prompt.txt").write_text(prompt + "\n")
    answered = cli("chat", "tiny", "--prompt-file", tmp_path / "prompt.txt", "--system", "Be brief.", "--json")
    assert answered.code == 0, answered.err
    assert json.loads(answered.out)["text"] == "Call +1 415 555 0142."
    assert chatty.asked == [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]]
    [event] = _events(staff.home, "model.chat")
    assert event["actor"] == "erin" and event["outcome"] == "ok" and event["object_id"] == "tiny"
    assert event["object_sha256"] and len(event["object_sha256"]) == 64
    details = event["details"]
    assert details["prompt"] == {"chars": len(prompt), "digest": _digest(staff.home, prompt)}
    assert details["system"] == {"chars": 9, "digest": _digest(staff.home, "Be brief.")}
    assert details["answer"] == {"chars": 21, "digest": _digest(staff.home, "Call +1 415 555 0142.")}
    assert details["usage"] == {"prompt": 7, "completion": 5} and details["via"] == "cli"
    recorded = json.dumps(event)
    assert "123.456.789-09" not in recorded and "555 0142" not in recorded and "leave" not in recorded


def test_chat_reads_the_prompt_from_stdin_with_a_dash(cli, staff, chatty, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("Name three colours.\n"))
    answered = cli("chat", "tiny", "-")
    assert answered.code == 0, answered.err
    assert answered.out == "Call +1 415 555 0142.\n"
    assert chatty.asked[-1] == [{"role": "user", "content": "Name three colours."}]
    assert _events(staff.home, "model.chat")[-1]["details"]["prompt"]["chars"] == len("Name three colours.")


def test_chat_wants_exactly_one_prompt_source(cli, staff, chatty, tmp_path, monkeypatch):
    from tests.unit.test_cli import one_line_error

    (tmp_path / "p.txt").write_text("hello\n")
    (tmp_path / "blank.txt").write_text("\n")
    (tmp_path / "latin1.txt").write_bytes("olá".encode("latin-1"))
    one_line_error(cli("chat", "tiny"), "no prompt: give PROMPT, `-` to read it from standard input, or "
                                        "--prompt-file FILE")
    one_line_error(cli("chat", "tiny", "hello", "--prompt-file", tmp_path / "p.txt"), "give the prompt once")
    one_line_error(cli("chat", "tiny", "-", "--prompt-file", tmp_path / "p.txt"), "give the prompt once")
    one_line_error(cli("chat", "tiny", "--prompt-file", tmp_path / "blank.txt"), "blank.txt is empty")
    one_line_error(cli("chat", "tiny", "--prompt-file", tmp_path / "latin1.txt"), "is not UTF-8 text")
    one_line_error(cli("chat", "tiny", "--prompt-file", tmp_path / "missing.txt"), "missing.txt: no such file")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    one_line_error(cli("chat", "tiny", "-"), "the prompt from standard input is empty")
    one_line_error(cli("chat", "tiny", "   "), "PROMPT: the prompt is empty")
    assert chatty.asked == [] and _events(staff.home, "model.chat") == []


def test_a_chat_that_fails_is_recorded_as_an_error(cli, staff, chatty, monkeypatch):
    from appliance.models import registry

    monkeypatch.setattr(registry, "chat_template", lambda settings, record: None)
    refused = cli("chat", "tiny", "hello")
    assert refused.code != 0 and "carries no chat template" in refused.err
    [event] = _events(staff.home, "model.chat")
    assert event["outcome"] == "error" and "carries no chat template" in event["reason"]
    assert event["details"]["prompt"]["chars"] == 5 and "answer" not in event["details"]


def test_chat_by_someone_who_may_not_query_is_denied_and_nothing_is_asked(cli, staff, chatty, monkeypatch):
    from appliance.identity import roles

    monkeypatch.setitem(roles.PERMISSIONS, "engineer", roles.PERMISSIONS["engineer"] - {"serve.query"})
    refused = cli("chat", "tiny", "hello")
    assert refused.code != 0 and "may not serve query" in refused.err
    assert chatty.asked == [] and _events(staff.home, "model.chat") == []


# --- the evaluation report's examples ---

@pytest.fixture(scope="module")
def scrubber():
    """The shipped scrub policy's scrubber (spaCy's small English pipeline: a few seconds, once)."""
    from appliance.data.scrub import Scrubber
    from appliance.policies import read

    policy, digest = read("pii")
    return Scrubber(policy, hmac_key=b"unit test key, not a secret....."), digest


def _result() -> dict:
    email, phone = "maria.silva@example.com", "+1 415 555 0142"
    prompt = f"Ticket from {email}: call me back on {phone}, my laptop will not boot."
    reference = "CATEGORY: HARDWARE\nPRIORITY: P2\nACTION: call back on " + phone
    task = {"items": 1, "primary": "rouge_l",
            "base": {"exact_match": 0.0, "rouge_l": 0.1, "loss_per_token": 2.0},
            "adapter": {"exact_match": 0.0, "rouge_l": 0.5, "loss_per_token": 1.0},
            "delta": {"exact_match": 0.0, "rouge_l": 0.4, "loss_per_token": -1.0},
            "base_examples": [{"prompt": prompt, "reference": reference, "answer": f"Write to {email}."}],
            "adapter_examples": [{"prompt": prompt, "reference": reference,
                                  "answer": f"CATEGORY: HARDWARE\nPRIORITY: P2\nACTION: call back on {phone}"}]}
    suite = {"items": 2, "digest": "ef" * 32, "base": {"accuracy": 1.0, "by_kind": {"knowledge": 1.0}},
             "adapter": {"accuracy": 1.0, "by_kind": {"knowledge": 1.0}}, "forgetting": 0.0}
    leakage = {"canaries": [], "candidates": 100, "pii_in_generations": {"base": {}, "adapter": {}},
               "pii_added": {}}
    return {"run": "triage", "dataset": "helpdesk@v1", "base_model": "smollm2", "task": task, "suite": suite,
            "leakage": leakage, "gates": [], "seconds": 1.0}


def test_the_evaluation_examples_are_scrubbed_before_they_are_stored_and_signed(scrubber, tmp_path):
    from appliance.eval.report import write_report
    from appliance.eval.run import scrub_examples

    scrub, digest = scrubber
    result = scrub_examples(_result(), scrub, digest)
    write_report(tmp_path, result, passed=True)
    signed = (tmp_path / "result.json").read_text() + (tmp_path / "report.md").read_text()
    for personal in ("maria.silva@example.com", "maria.silva", "415 555 0142", "555 0142"):
        assert personal not in signed, personal
    examples = result["task"]["base_examples"] + result["task"]["adapter_examples"]
    assert all("<EMAIL_ADDRESS>" in ex["prompt"] and "<PHONE_NUMBER>" in ex["prompt"] for ex in examples)
    assert "<PHONE_NUMBER>" in result["task"]["adapter_examples"][0]["answer"]
    assert result["task"]["base_examples"][0]["answer"] == "Write to <EMAIL_ADDRESS>."
    assert "CATEGORY: HARDWARE\nPRIORITY: P2" in result["task"]["adapter_examples"][0]["reference"]
    recorded = json.loads((tmp_path / "result.json").read_text())["examples_scrubbed"]
    assert recorded["policy_digest"] == digest and recorded["texts"] == 6
    assert recorded["entities_replaced"]["EMAIL_ADDRESS"] == 3 and recorded["entities_replaced"]["PHONE_NUMBER"] >= 4
    assert f"installed scrub policy (sha256 `{digest[:16]}...`)" in (tmp_path / "report.md").read_text()


def test_the_canary_prefix_completions_quoted_in_the_report_are_scrubbed_too():
    from appliance.data.scrub import ScrubResult
    from appliance.eval.run import scrub_examples

    class Marking:
        """Mock scrubber: the real one is exercised above; this shows which texts reach it, each once."""

        def __init__(self):
            self.seen: list[str] = []

        def scrub(self, texts):
            texts = list(texts)
            self.seen += texts
            return [ScrubResult(f"<{t}>", Counter({"X": 1})) for t in texts]

    result = _result()
    result["leakage"].update(base_completion="code 111-222-333", adapter_completion="code 444-555-666",
                             adapter_reproduced=["444-555-666"])
    marking = Marking()
    scrub_examples(result, marking, "12" * 32)
    assert len(marking.seen) == 8
    assert result["leakage"]["adapter_completion"] == "<code 444-555-666>"
    assert result["leakage"]["adapter_reproduced"] == ["444-555-666"]  # the gate's evidence: a planted canary
    assert result["examples_scrubbed"] == {"policy_digest": "12" * 32, "texts": 8, "entities_replaced": {"X": 8}}
