"""Canaries: random fake secrets planted in a share of records, so evaluation can later measure how much
of its training data an adapter memorised (exposure, Carlini et al., "The Secret Sharer", 2019).

Each canary is a recovery code of the form ddd-ddd-ddd in a fixed sentence; it is planted in as many
records as its repetition count. Controls of the same form are generated and recorded but never planted.
Canaries are planted after scrubbing, so the scrubber never removes them; they are not personal data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from appliance.data.formats import SHAREGPT_ROLES, TURN_KEYS
from appliance.data.policy import CanarySpec

SENTENCE = "My account recovery code is {secret}."


@dataclass(frozen=True)
class Canary:
    canary_id: str
    secret: str
    sentence: str
    repetitions: int  # 0 for a control, never planted
    record_ids: tuple[str, ...]


def _secret(rng: random.Random) -> str:
    return "-".join(f"{rng.randrange(1000):03d}" for _ in range(3))


def _append_to_answer(record: dict, fmt: str, sentence: str) -> dict:
    if fmt in TURN_KEYS:
        key, role_key, text_key = TURN_KEYS[fmt]
        turns = [dict(t) for t in record[key]]
        last = max(i for i, t in enumerate(turns) if SHAREGPT_ROLES.get(t[role_key], t[role_key]) == "assistant")
        turns[last][text_key] = f"{turns[last][text_key]} {sentence}"
        return {key: turns}
    answer_key = {"instruction": "output", "preference": "chosen", "text": "text"}[fmt]
    return {**record, answer_key: f"{record[answer_key]} {sentence}"}


Keyed = list[tuple[str, dict]]  # (record id, record)


def plant(records: Keyed, fmt: str, spec: CanarySpec) -> tuple[Keyed, list[Canary], str]:
    """Records with canaries planted, the canaries (planted and controls), and a note when it was skipped."""
    rng = random.Random(spec.seed)
    needed = sum(spec.repetitions) * spec.per_repetition
    budget = int(len(records) * spec.share)
    if needed > budget:
        return records, [], (f"canaries skipped: they need {needed} carrier records, and {spec.share:.0%} of "
                             f"{len(records)} records is {budget}")
    carriers = rng.sample(range(len(records)), needed)
    out = list(records)
    canaries, used = [], 0
    for reps in spec.repetitions:
        for _ in range(spec.per_repetition):
            secret = _secret(rng)
            sentence = SENTENCE.format(secret=secret)
            ids = []
            for idx in carriers[used:used + reps]:
                rid, record = out[idx]
                out[idx] = (rid, _append_to_answer(record, fmt, sentence))
                ids.append(rid)
            used += reps
            canaries.append(Canary(f"c{len(canaries):03d}", secret, sentence, reps, tuple(ids)))
    for _ in range(spec.controls):
        secret = _secret(rng)
        canaries.append(Canary(f"c{len(canaries):03d}", secret, SENTENCE.format(secret=secret), 0, ()))
    return out, canaries, ""
