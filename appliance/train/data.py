"""A dataset version's train split, in the form each training method takes."""

from __future__ import annotations

from appliance.config import Settings
from appliance.data import versions
from appliance.data.formats import SHAREGPT_ROLES
from appliance.errors import InputError


def _messages(row: dict, fmt: str) -> list[dict]:
    if fmt == "chat":
        return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    if fmt == "sharegpt":
        return [{"role": SHAREGPT_ROLES[m["from"]], "content": m["value"]} for m in row["conversations"]]
    if fmt == "instruction":
        prompt = row["instruction"] + ("\n\n" + row["input"] if row.get("input") else "")
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]
    raise InputError(f"format {fmt} has no conversation")


def prompt_and_answer(row: dict, fmt: str) -> tuple[list[dict], str]:
    """(the conversation before the last assistant turn, that turn's text)."""
    if fmt == "preference":
        return [{"role": "user", "content": row["prompt"]}], row["chosen"]
    if fmt == "text":
        raise InputError("a plain-text dataset has no prompts to answer; use a chat or instruction dataset")
    messages = _messages(row, fmt)
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last], messages[last]["content"]


def training_rows(settings: Settings, v: versions.DatasetVersion, method: str, split: str = "train") -> list[dict]:
    """SFT: prompt/completion conversations (the loss is on the answer only); DPO and ORPO: preference rows."""
    rows = versions.read_split(settings, v, split)
    if method in ("dpo", "orpo"):
        if v.format != "preference":
            raise InputError(f"{method} needs a preference dataset (prompt, chosen, rejected); {v.ref} is {v.format}")
        return [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    if v.format == "preference":
        raise InputError(f"sft needs conversations or instructions; {v.ref} is a preference dataset (use dpo or orpo)")
    if v.format == "text":
        return [{"text": r["text"]} for r in rows]
    out = []
    for r in rows:
        prompt, answer = prompt_and_answer(r, v.format)
        out.append({"prompt": prompt, "completion": [{"role": "assistant", "content": answer}]})
    return out
