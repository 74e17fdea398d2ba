"""The scrubber's quality gates on the labelled synthetic set (tests/data/pii_eval.jsonl, 2,400 records)."""

import pytest

from tests.pii_eval import GATES, KEEP_GATE, eval_policy, load, score

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def report():
    from appliance.data.scrub import Scrubber

    records = load()
    scrubber = Scrubber(eval_policy(), hmac_key=b"quality test key, not a secret.")
    texts = [r["text"] for r in records]
    predicted = [[(r.start, r.end, r.entity_type) for r in rs] for rs in scrubber.analyze(texts)]
    return score(records, predicted, [r.text for r in scrubber.scrub(texts)])


def test_the_set_is_large_and_varied():
    records = load()
    assert len(records) >= 2000
    entities = {s["entity"] for r in records for s in r["spans"]}
    assert entities >= set(GATES)
    names = [r["text"][s["start"]:s["end"]] for r in records for s in r["spans"] if s["entity"] == "PERSON"]
    assert any(n.islower() for n in names) and any(n.isupper() for n in names) and any(n.istitle() for n in names)


@pytest.mark.parametrize("entity", sorted(GATES))
def test_recall_gate(report, entity):
    recall = report["per_entity"][entity]["recall"]
    assert recall >= GATES[entity], f"{entity} recall {recall:.3f} < {GATES[entity]}"


def test_precision_is_reported_and_sane(report):
    for entity in GATES:
        assert report["per_entity"][entity]["precision"] >= 0.9, (entity, report["per_entity"][entity])


def test_business_content_survives(report):
    assert report["keep_rate"] >= KEEP_GATE
