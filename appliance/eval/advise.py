"""`appliance advise DATASET`: should you fine-tune at all? Measures the base model's zero-shot and few-shot
scores on the held-out split and how much of each answer is new facts (named entities and numbers absent
from its prompt) rather than form and style, then recommends prompting, retrieval or fine-tuning."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

from appliance.audit.events import Event
from appliance.audit.log import record_alone
from appliance.context import Context
from appliance.data import versions
from appliance.errors import InputError
from appliance.eval import metrics
from appliance.identity.roles import require
from appliance.models.registry import get_model, model_dir

SHOTS = 3
MAX_ITEMS = 16
_WORDS = re.compile(r"\w+")
Say = Callable[[str], None]


@dataclass(frozen=True)
class Advice:
    dataset: str
    base_model: str
    metric: str
    items: int
    zero_shot: dict
    few_shot: dict
    facts_share: float
    target: float
    facts_threshold: float
    recommendation: str  # prompting, retrieval, fine-tuning
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def facts_share(nlp, pairs: list[tuple[str, str]]) -> float:
    """Mean share of answer words inside named entities or numbers that do not appear in the prompt."""
    shares = []
    for doc, (prompt, answer) in zip(nlp.pipe([a for _, a in pairs]), pairs, strict=True):
        words = len(_WORDS.findall(answer))
        if not words:
            continue
        seen = prompt.lower()
        spans = [(e.start_char, e.end_char) for e in doc.ents]
        spans += [(t.idx, t.idx + len(t.text)) for t in doc if t.like_num]
        new = set()
        for start, end in spans:
            if answer[start:end].lower() not in seen:
                new.update(range(start, end))
        new_words = sum(1 for m in _WORDS.finditer(answer) if any(i in new for i in range(m.start(), m.end())))
        shares.append(new_words / words)
    return sum(shares) / len(shares) if shares else 0.0


def _scores(answers: list[str], references: list[str], pattern: re.Pattern | None) -> dict:
    n = len(references)
    out = {"exact_match": sum(metrics.exact_match(a, r) for a, r in zip(answers, references, strict=True)) / n,
           "rouge_l": sum(metrics.rouge_l(a, r) for a, r in zip(answers, references, strict=True)) / n}
    if pattern:
        out["format_match"] = sum(bool(metrics.format_match(a, pattern)) for a in answers) / n
    return out


def advise(ctx: Context, dataset_ref: str, *, base: str | None = None, format_regex: str | None = None,
           say: Say = lambda _: None) -> Advice:
    """With the installed release policy's thresholds."""
    from appliance import policies
    from appliance.eval.lm import AdapterLM
    from appliance.train.data import prompt_and_answer

    require(ctx, "eval", "dataset", dataset_ref)
    policy = policies.load(ctx, "release").policy
    dataset = versions.get_version(ctx.engine, dataset_ref)
    held_out = versions.read_split(ctx.settings, dataset, "eval")
    train = versions.read_split(ctx.settings, dataset, "train")
    if not held_out:
        raise InputError(f"dataset {dataset.ref} has no held-out split; re-ingest it with an eval share above 0")
    if len(train) < SHOTS:
        raise InputError(f"dataset {dataset.ref} has {len(train)} training records; few-shot needs {SHOTS}")
    try:
        pattern = re.compile(format_regex) if format_regex else None
    except re.error as exc:
        raise InputError(f"{format_regex!r}: not a regular expression ({exc})", param="format_regex") from None
    model, _ = get_model(ctx.engine, base or "smollm2")
    if not model.hf_dir:
        raise InputError(f"model {model.name!r} has no safetensors copy to run baselines with")
    rows = [prompt_and_answer(r, dataset.format) for r in held_out[:MAX_ITEMS]]
    # the shortest training conversations as the examples: the same signal, a fraction of the prompt length
    conversations = [prompt_and_answer(r, dataset.format) for r in train[:400]]
    shots = sorted(conversations, key=lambda c: sum(len(m["content"]) for m in c[0]) + len(c[1]))[:SHOTS]
    references = [ref for _, ref in rows]
    metric = "format_match" if pattern else "rouge_l"

    import spacy

    nlp = spacy.load(policies.load(ctx, "pii").policy.nlp.model, exclude=["lemmatizer", "parser"])
    pairs = [(" ".join(m["content"] for m in msgs if m["role"] != "assistant"), ref)
             for msgs, ref in [prompt_and_answer(r, dataset.format) for r in (train + held_out)[:400]]]
    share = facts_share(nlp, pairs)
    say(f"data: {share:.0%} of answer words are new facts (entities, numbers not in the prompt)")

    lm = AdapterLM(model_dir(ctx.settings, model) / model.hf_dir, None)
    longest = max(len(lm.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)
    budget = min(256, longest + 16)
    zero = _scores(lm.generate([lm.chat_prompt(m) for m, _ in rows], max_new_tokens=budget), references, pattern)
    say(f"zero-shot {model.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in zero.items()))
    examples = [turn for msgs, ref in shots for turn in [*msgs, {"role": "assistant", "content": ref}]]
    few = _scores(lm.generate([lm.chat_prompt(examples + m) for m, _ in rows], max_new_tokens=budget), references,
                  pattern)
    say(f"{SHOTS}-shot {model.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in few.items()))

    a = policy.advise

    def meets(scores: dict) -> bool:  # the task's metric and, for the content, ROUGE-L against the references
        return scores[metric] >= a.target and scores["rouge_l"] >= a.rouge_target

    if meets(zero) or meets(few):
        best = zero if meets(zero) else few
        rec, why = "prompting", (f"the base model already reaches {metric} {best[metric]:.2f} (target {a.target}) "
                                 f"and ROUGE-L {best['rouge_l']:.2f} (target {a.rouge_target}) with "
                                 f"{'no examples' if best is zero else f'{SHOTS} examples'} in the prompt")
    elif share >= a.facts_share:
        rec, why = "retrieval", (f"{share:.0%} of answer words are facts absent from the prompt (threshold "
                                 f"{a.facts_share:.0%}): put the facts in a searchable store, not in weights")
    else:
        rec, why = "fine-tuning", (f"the answers are mostly form and behaviour ({share:.0%} new facts) that the "
                                   f"baselines do not reach: {metric} {zero[metric]:.2f} zero-shot, {few[metric]:.2f} "
                                   f"{SHOTS}-shot (target {a.target}); ROUGE-L {zero['rouge_l']:.2f} and "
                                   f"{few['rouge_l']:.2f} (target {a.rouge_target})")
    advice = Advice(dataset.ref, model.name, metric, len(rows), zero, few, share, a.target, a.facts_share, rec, why)
    record_alone(ctx, Event("eval.advise", "dataset", dataset.ref, details={
        "recommendation": rec, "metric": metric, "zero_shot": zero[metric], "few_shot": few[metric],
        "facts_share": round(share, 4), "base_model": model.name, "reason": why}))
    return advice


@dataclass(frozen=True)
class RecordedAdvice:
    """One `advise` verdict as the audit trail holds it (the event `advise` records is the only copy)."""
    dataset: str
    recommendation: str
    metric: str
    zero_shot: float | None
    few_shot: float | None
    facts_share: float | None
    base_model: str
    reason: str
    by: str
    at: str

    def as_dict(self) -> dict:
        return asdict(self)


def recorded(ctx: Context) -> list[RecordedAdvice]:
    """The newest verdict for each dataset version that `advise` has been run on, by dataset version."""
    import json

    from appliance.audit.query import search

    require(ctx, "read", "eval", "*")
    newest: dict[str, dict] = {}
    for event in search(ctx.engine, action="eval.advise", limit=1_000_000):
        if event["outcome"] == "ok":
            newest[event["object_id"]] = event  # oldest first, so the newest wins
    out = []
    for ref, event in sorted(newest.items()):
        d = json.loads(event["details"] or "{}")
        out.append(RecordedAdvice(ref, d.get("recommendation", ""), d.get("metric", ""), d.get("zero_shot"),
                                  d.get("few_shot"), d.get("facts_share"), d.get("base_model", ""),
                                  d.get("reason", ""), event["actor"], event["ts"][:19]))
    return out
