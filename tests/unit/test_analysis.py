"""Presidio's pattern matching as the appliance runs it (`analysis.pattern_findings`) gives, for every pattern
recognizer of the shipped policy that keeps Presidio's own `analyze`, exactly the findings Presidio's `analyze`
gives: spans, scores after validation and invalidation, explanations and metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1] / "data"


def _texts() -> list[str]:
    texts = []
    for name, n in (("pii_public.jsonl", 400), ("pii_locales.jsonl", 200), ("pii_eval.jsonl", 400)):
        lines = (DATA / name).read_text("utf-8").splitlines()[:n]
        texts += [json.loads(line)["text"] for line in lines]
    return texts + ["", "SSN 000-00-0000 and 123-45-6789, card 4111 1111 1111 1111 and 4111 1111 1111 1112"]


def _key(results) -> list[tuple]:
    return [(r.entity_type, r.start, r.end, r.score, r.analysis_explanation.pattern_name,
             r.analysis_explanation.validation_result, r.analysis_explanation.score,
             sorted(r.recognition_metadata.items())) for r in results]


@pytest.fixture(scope="module")
def recognizers():
    from presidio_analyzer import PatternRecognizer

    from appliance import policies
    from appliance.data.scrub import Scrubber

    scrubber = Scrubber(policies.read("pii")[0], hmac_key=b"analysis test key, not a secret..")
    return [r for r in scrubber.analyzer.registry.recognizers
            if isinstance(r, PatternRecognizer) and type(r).analyze is PatternRecognizer.analyze], scrubber.entities


def test_every_plain_pattern_recognizer_runs_the_fast_path(recognizers):
    from appliance.data.analysis import pattern_findings

    found, _ = recognizers
    assert len(found) >= 20
    assert all(r.analyze.func is pattern_findings for r in found)


def test_the_findings_are_presidios_own(recognizers):
    from presidio_analyzer import PatternRecognizer

    found, entities = recognizers
    texts = _texts()
    hits = 0
    for recognizer in found:
        for text in texts:
            ours = recognizer.analyze(text=text, entities=entities, nlp_artifacts=None)
            theirs = PatternRecognizer.analyze(recognizer, text=text, entities=entities, nlp_artifacts=None)
            assert _key(ours) == _key(theirs), (recognizer.name, text)
            hits += len(ours)
    assert hits > 500  # there were findings to compare, validated and invalidated ones among them
