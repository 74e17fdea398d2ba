"""The public labelled set: presidio-evaluator's synthetic data generator (the Presidio team's templates and
fake-data providers, installed from PyPI), seeded, offline, its sentences joined into records of 150 or more
characters as help-desk text runs.

Regenerate:  .venv/bin/python -m bench.pii_public   (writes tests/data/pii_public.jsonl)
             .venv/bin/python -m bench.pii_public --locales   (writes tests/data/pii_locales.jsonl)
The committed file is the set every figure is measured on: the generator's seed does not fix all of its choices
(two runs of the same version differ after a few records), so regenerating draws a new set, not the same one.

Each record has the evaluation set's shape ({"text", "spans", "keep"}): spans of the entities the default policy
scrubs, named as the generator names them (its date_of_birth provider becomes DATE_OF_BIRTH, its address parts
STREET_ADDRESS), and "keep" holding the generator's organisation names, which are business content.
None of the appliance's recognizers were written against these templates.

The locale set draws the same templates with Faker's providers of five locales (`LOCALES`): each locale's
"ssn" provider writes that country's number where the template says social security number (a Brazilian CPF,
a French NIR, a British National Insurance number, the last with the "ZZ" prefix HMRC never issues), labelled
NATIONAL_ID; Germany's and Spain's write a US SSN shape, labelled US_SSN; IBANs are each country's.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii_public.jsonl"
LOCALES_OUT = OUT.with_name("pii_locales.jsonl")
# locale: whether its "ssn" provider writes the country's national identifier (else a US SSN shape)
LOCALES = {"pt_BR": True, "fr_FR": True, "en_GB": True, "de_DE": False, "es_ES": False}
LOCALE_RECORDS = 150
SEED = 42
RECORDS = 1000
MIN_CHARS = 150
SCRUBBED = ("PERSON", "NATIONAL_ID", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS",
            "US_SSN", "STREET_ADDRESS", "DATE_OF_BIRTH", "US_DRIVER_LICENSE")


def _unescape(text: str) -> tuple[str, list[int]]:
    """The generator's templates write line breaks as a backslash and an n: real line breaks, and where each
    old offset lands in the new text."""
    out, where, i = [], [], 0
    while i < len(text):
        where.append(len(out))
        if text.startswith("\\n", i):
            out.append("\n")
            where.append(len(out))
            i += 2
            continue
        out.append(text[i])
        i += 1
    where.append(len(out))
    return "".join(out), where


def generate(n: int = RECORDS, seed: int = SEED, locale: str = "en_US", holding: tuple[str, ...] = ()) -> list[dict]:
    """`n` records of the generator's sentences in `locale`; with `holding`, only records that hold one of those
    entities (the others are drawn and left out)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    logging.disable(logging.WARNING)
    from presidio_evaluator.data_generator import PresidioSentenceFaker

    mapping = {**PresidioSentenceFaker.ENTITY_TYPE_MAPPING, "date_of_birth": "DATE_OF_BIRTH"}
    if LOCALES.get(locale):
        mapping["ssn"] = "NATIONAL_ID"
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        faker = PresidioSentenceFaker(locale, lower_case_ratio=0.05, entity_type_mapping=mapping, random_seed=seed)
        samples = faker.generate_new_fake_sentences(num_samples=n * (60 if holding else 6))
    records, text, spans, keep = [], "", [], []
    for sample in samples:
        if text:
            text += " "
        sentence, where = _unescape(sample.full_text)
        for span in sample.spans:
            start, end = len(text) + where[span.start_position], len(text) + where[span.end_position]
            if span.entity_type in SCRUBBED:
                spans.append({"start": start, "end": end, "entity": span.entity_type})
            elif span.entity_type == "ORGANIZATION":
                # As it stands in the text: the generator's value is lower-cased where the sentence is not.
                keep.append(sentence[where[span.start_position]:where[span.end_position]])
        text += sentence
        if len(text) >= MIN_CHARS:
            if holding and not any(span["entity"] in holding for span in spans):
                text, spans, keep = "", [], []
                continue
            records.append({"text": text, "spans": sorted(spans, key=lambda s: s["start"]), "keep": keep})
            text, spans, keep = "", [], []
            if len(records) == n:
                break
    return records


def generate_locales(n: int = LOCALE_RECORDS, seed: int = SEED) -> list[dict]:
    """`n` records of each locale in LOCALES that hold a national identifier or an IBAN, each naming its
    locale."""
    return [{**record, "locale": locale} for locale in LOCALES
            for record in generate(n, seed, locale, holding=("NATIONAL_ID", "US_SSN", "IBAN_CODE"))]


def load(path: Path = OUT) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


if __name__ == "__main__":
    locales = "--locales" in sys.argv[1:]
    out, records = (LOCALES_OUT, generate_locales()) if locales else (OUT, generate())
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    print(f"wrote {out}")
