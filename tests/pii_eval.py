"""The labelled synthetic evaluation set for the scrubber: seeded, many entity types and formats.

Regenerate:  .venv/bin/python -m tests.pii_eval   (writes tests/data/pii_eval.jsonl; the same file every time)

Each record: {"text": ..., "spans": [{"start", "end", "entity"}], "keep": [business strings that must survive]}.
Names come in title, lower and upper case; phone numbers in US and international forms; SSNs include numbers
Presidio's validator calls implausible, always with "SSN" context; dates of birth always with context.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from faker import Faker

OUT = Path(__file__).with_name("data") / "pii_eval.jsonl"
PRODUCTS = ["Contoso Cloud", "Fabrikam Ledger", "Northwind CRM", "Acme Widget Pro", "Litware Sync", "Tailspin Portal"]
HOSTS = ["api.github.com", "login.microsoftonline.com", "updates.example.org", "pypi.org", "docs.python.org"]
STRUCTURED = ("EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS")


class Builder:
    def __init__(self) -> None:
        self.text, self.spans, self.keep = "", [], []

    def add(self, s: str) -> Builder:
        self.text += s
        return self

    def pii(self, value: str, entity: str) -> Builder:
        self.spans.append({"start": len(self.text), "end": len(self.text) + len(value), "entity": entity})
        self.text += value
        return self

    def business(self, value: str) -> Builder:
        self.keep.append(value)
        self.text += value
        return self

    def record(self) -> dict:
        return {"text": self.text, "spans": self.spans, "keep": self.keep}


def _name(fake: Faker, rng: random.Random) -> str:
    name = f"{fake.first_name()} {fake.last_name()}"
    return rng.choice([name, name, name.lower(), name.upper()])


def _phone(fake: Faker, rng: random.Random) -> str:
    return rng.choice([
        f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
        f"{rng.randint(201, 989)}-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
        f"+1 {rng.randint(201, 989)} {rng.randint(200, 999)} {rng.randint(1000, 9999)}",
        f"+44 20 {rng.randint(7000, 8999)} {rng.randint(1000, 9999)}",
        f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        f"+49 30 {rng.randint(1000000, 9999999)}",
        f"+91 {rng.randint(70000, 99999)} {rng.randint(10000, 99999)}",
        f"+81 3-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
    ])


def _ssn(rng: random.Random) -> str:
    area = rng.choice([rng.randint(1, 665), rng.randint(667, 899), 0, 666, rng.randint(900, 999)])
    return f"{area:03d}-{rng.randint(0, 99):02d}-{rng.randint(0, 9999):04d}"


def _address(fake: Faker, rng: random.Random) -> str:
    suffix = rng.choice(["Street", "St", "Avenue", "Ave", "Road", "Rd", "Lane", "Drive", "Blvd", "Court"])
    base = f"{rng.randint(1, 9999)} {fake.last_name()} {suffix}"
    return rng.choice([base, f"{base}, Apt {rng.randint(1, 40)}", f"{base}, {fake.city()}, {fake.state_abbr()} "
                       f"{fake.postcode()}"])


def _dob(fake: Faker, rng: random.Random) -> str:
    d = fake.date_of_birth(minimum_age=18, maximum_age=90)
    return rng.choice([d.strftime("%m/%d/%Y"), d.strftime("%Y-%m-%d"), d.strftime("%B %d, %Y"),
                       d.strftime("%d %B %Y")])


def make(fake: Faker, rng: random.Random) -> dict:
    b = Builder()
    kind = rng.randrange(9)
    ticket = f"INC{rng.randint(100000, 9999999)}"
    if kind == 0:
        b.add(rng.choice(["Hello, my name is ", "Hi, this is ", "Dear ", "My name is "]))
        b.pii(_name(fake, rng), "PERSON")
        b.add(". Please email me at ").pii(fake.email(), "EMAIL_ADDRESS").add(" about ticket ").business(ticket)
        b.add(".")
    elif kind == 1:
        b.add("Caller ").pii(_name(fake, rng), "PERSON").add(" asked for a callback on ").pii(_phone(fake, rng),
                                                                                            "PHONE_NUMBER")
        b.add(" regarding ").business(rng.choice(PRODUCTS)).add(".")
    elif kind == 2:
        b.add(rng.choice(["Her SSN is ", "SSN: ", "social security number ", "His ssn "])).pii(_ssn(rng), "US_SSN")
        b.add(" and she was born on ").pii(_dob(fake, rng), "DATE_OF_BIRTH").add(".")
    elif kind == 3:
        b.add("Refund to card ").pii(fake.credit_card_number(card_type=rng.choice(["visa", "mastercard", "amex"])),
                                      "CREDIT_CARD")
        b.add(" or IBAN ").pii(fake.iban(), "IBAN_CODE").add(" for order on ").business(rng.choice(PRODUCTS))
        b.add(".")
    elif kind == 4:
        b.add("Login from ").pii(rng.choice([fake.ipv4_public(), fake.ipv4_private(), fake.ipv6()]), "IP_ADDRESS")
        b.add(" to ").business(rng.choice(HOSTS)).add(" failed for user ").pii(_name(fake, rng), "PERSON")
        b.add(".")
    elif kind == 5:
        b.add("Ship the replacement to ").pii(_address(fake, rng), "STREET_ADDRESS").add(" (ticket ")
        b.business(ticket).add(").")
    elif kind == 6:
        b.add("Regards, ").pii(_name(fake, rng), "PERSON").add(". Mobile ").pii(_phone(fake, rng), "PHONE_NUMBER")
        b.add(", DOB ").pii(_dob(fake, rng), "DATE_OF_BIRTH").add(".")
    elif kind == 7:
        b.add("Outage on ").business(rng.choice(HOSTS)).add(" affected ").business(rng.choice(PRODUCTS))
        b.add("; see ").business(ticket).add(" and ").business(f"OPS-{rng.randint(10, 9999)}").add(".")
    else:
        b.pii(_name(fake, rng), "PERSON").add(" lives at ").pii(_address(fake, rng), "STREET_ADDRESS")
        b.add(" and can be reached at ").pii(fake.email(), "EMAIL_ADDRESS").add(".")
    return b.record()


def generate(n: int = 2400, seed: int = 7) -> list[dict]:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    return [make(fake, rng) for _ in range(n)]


def load() -> list[dict]:
    return [json.loads(line) for line in OUT.read_text("utf-8").splitlines()]


if __name__ == "__main__":
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("".join(json.dumps(r) + "\n" for r in generate()))
    print(f"wrote {OUT}")


def score(records: list[dict], predicted: list[list[tuple[int, int, str]]], scrubbed: list[str]) -> dict:
    """Per-entity precision and recall (a gold span is found when a prediction of its type overlaps it), and
    the share of business strings that survive scrubbing."""
    from collections import Counter

    tp_gold, gold, tp_pred, pred = Counter(), Counter(), Counter(), Counter()
    kept = total_keep = 0
    for rec, preds, out in zip(records, predicted, scrubbed, strict=True):
        for span in rec["spans"]:
            gold[span["entity"]] += 1
            if any(e == span["entity"] and s < span["end"] and span["start"] < t for s, t, e in preds):
                tp_gold[span["entity"]] += 1
        for s, t, e in preds:
            pred[e] += 1
            if any(e == g["entity"] and s < g["end"] and g["start"] < t for g in rec["spans"]):
                tp_pred[e] += 1
        for value in rec["keep"]:
            total_keep += 1
            kept += value in out
    entities = sorted(set(gold) | set(pred))
    return {
        "per_entity": {e: {"recall": tp_gold[e] / gold[e] if gold[e] else None,
                           "precision": tp_pred[e] / pred[e] if pred[e] else None,
                           "gold": gold[e], "predicted": pred[e]} for e in entities},
        "keep_rate": kept / total_keep if total_keep else None,
    }


GATES = {**{e: 0.98 for e in STRUCTURED}, "PERSON": 0.90, "STREET_ADDRESS": 0.85, "DATE_OF_BIRTH": 0.85}
KEEP_GATE = 0.95


def eval_policy():
    """The shipped default policy, as installed: no allow-list is added for this set's products (the business-term
    filter must keep them by itself)."""
    from appliance import policies

    policy, _ = policies.read("pii")
    return policy
