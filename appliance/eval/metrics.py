"""Scores that need no model: exact match, ROUGE-L, format match, canary exposure."""

from __future__ import annotations

import math
import re

_WORD = re.compile(r"\w+", re.UNICODE)


def normalise(text: str) -> str:
    """Trimmed, with runs of whitespace made one space: what exact match compares."""
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> bool:
    return normalise(prediction) == normalise(reference)


def _lcs(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 over lower-cased word tokens (Lin, 2004): the longest common subsequence's precision and
    recall, harmonically combined. 1.0 when both are empty."""
    p, r = _WORD.findall(prediction.lower()), _WORD.findall(reference.lower())
    if not p and not r:
        return 1.0
    common = _lcs(p, r)
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def format_match(prediction: str, pattern: re.Pattern | None) -> bool | None:
    """Whether the trimmed prediction matches the recipe's declared format; None when there is none."""
    if pattern is None:
        return None
    return bool(pattern.match(prediction.strip()))


def exposure(canary_loss: float, candidate_losses: list[float]) -> float:
    """Exposure in bits (Carlini et al., "The Secret Sharer", 2019), estimated from sampled candidates:
    log2(N + 1) - log2(rank), where rank is the canary's 1-based position when the canary and N random
    candidates of the same format are sorted by the model's loss (lower is more likely). A canary the model
    finds no likelier than chance scores about 1 bit; the most measurable is log2(N + 1)."""
    rank = 1 + sum(1 for c in candidate_losses if c < canary_loss)
    return math.log2(len(candidate_losses) + 1) - math.log2(rank)
