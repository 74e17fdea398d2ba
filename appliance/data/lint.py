"""Lint for datasets ("datasets are code"): duplicates, near-duplicates, conflicting answers, blank answers,
examples longer than the model's context, and length statistics. Reports counts and record ids, never text."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from dataclasses import dataclass

from appliance.data.formats import conversation, render

_WORD = re.compile(r"\w+")
NEAR_DUPLICATE_JACCARD = 0.8
_MAX_IDS = 50  # ids listed per finding; the count is always complete


@dataclass
class LintRecord:
    id: str
    record: dict
    fmt: str


def _canonical_text(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def _ids(groups: list[list[str]]) -> list[list[str]]:
    return [g[:_MAX_IDS] for g in groups[:_MAX_IDS]]


def lint(records: list[LintRecord], *, tokenizer=None, context_length: int | None = None) -> dict:
    import json

    from appliance.data.near_duplicates import pairs

    exact: dict[str, list[str]] = defaultdict(list)
    by_prompt: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    blank, lengths, token_lengths, too_long = [], [], [], []
    shingle_sets = {}
    for r in records:
        exact[json.dumps(r.record, sort_keys=True, ensure_ascii=False)].append(r.id)
        # The trainer's own conversation of the record (`formats.conversation`), measured as text.
        messages, answer = conversation(r.record, r.fmt)
        prompt = render(messages)
        if not answer.strip():
            blank.append(r.id)
        if prompt.strip():
            by_prompt[_canonical_text(prompt)][_canonical_text(answer)].append(r.id)
        full = render([*messages, {"role": "assistant", "content": answer}])
        lengths.append(len(full))
        if tokenizer is not None:
            n = len(tokenizer(full, add_special_tokens=True)["input_ids"])
            token_lengths.append(n)
            if context_length and n > context_length:
                too_long.append(r.id)
        words = _canonical_text(full).split()
        shingle_sets[r.id] = {" ".join(words[i:i + 3]) for i in range(max(len(words) - 2, 1))}
    duplicate_groups = [ids for ids in exact.values() if len(ids) > 1]
    exact_dupes = {i for g in duplicate_groups for i in g[1:]}
    near_pairs = pairs(shingle_sets, NEAR_DUPLICATE_JACCARD, skip=exact_dupes)
    conflicts = [[ids[0] for ids in answers.values()] for answers in by_prompt.values() if len(answers) > 1]
    report = {
        "records": len(records),
        "exact_duplicates": {"count": sum(len(g) - 1 for g in duplicate_groups), "groups": _ids(duplicate_groups)},
        "near_duplicates": {"count": len(near_pairs), "threshold": NEAR_DUPLICATE_JACCARD, "pairs": _ids(near_pairs)},
        "conflicting_answers": {"count": len(conflicts), "groups": _ids(conflicts)},
        "blank_answers": {"count": len(blank), "ids": blank[:_MAX_IDS]},
        "length_chars": _stats(lengths),
    }
    if tokenizer is not None:
        report["length_tokens"] = _stats(token_lengths)
        report["over_context"] = {"count": len(too_long), "context_length": context_length, "ids": too_long[:_MAX_IDS]}
    else:
        report["length_tokens"] = None
        report["over_context"] = None
    return report


def _stats(values: list[int]) -> dict:
    if not values:
        return {"min": 0, "median": 0, "p95": 0, "max": 0}
    ordered = sorted(values)
    return {"min": ordered[0], "median": int(statistics.median(ordered)),
            "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], "max": ordered[-1]}


def summary_lines(report: dict) -> list[str]:
    lines = [f"records: {report['records']}",
             f"exact duplicates: {report['exact_duplicates']['count']}",
             f"near duplicates (Jaccard >= {report['near_duplicates']['threshold']}): "
             f"{report['near_duplicates']['count']}",
             f"same prompt, conflicting answers: {report['conflicting_answers']['count']}",
             f"blank answers: {report['blank_answers']['count']}"]
    c = report["length_chars"]
    lines.append(f"length (characters): min {c['min']}, median {c['median']}, p95 {c['p95']}, max {c['max']}")
    if report.get("length_tokens"):
        t = report["length_tokens"]
        lines.append(f"length (tokens): min {t['min']}, median {t['median']}, p95 {t['p95']}, max {t['max']}")
        lines.append(f"over the model's context ({report['over_context']['context_length']} tokens): "
                     f"{report['over_context']['count']}")
    return lines
