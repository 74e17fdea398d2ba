"""A dataset version's train split, in the form each training method takes."""

from __future__ import annotations

from appliance.config import Settings
from appliance.data import formats, versions
from appliance.errors import InputError


def prompt_and_answer(row: dict, fmt: str) -> tuple[list[dict], str]:
    """(the conversation before the last assistant turn, that turn's text): the format's own conversion, the
    same one lint measures (`formats.conversation`)."""
    if fmt == "text":
        raise InputError("a plain-text dataset has no prompts to answer; use a chat or instruction dataset")
    return formats.conversation(row, fmt)


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
