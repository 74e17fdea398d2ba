"""`appliance chat`: one chat completion from a registered model through llama.cpp, audited.

The `model.chat` event names who asked (the actor), the model and its digest, and for the prompt, the system
message and the answer their length and a keyed digest, never their text: `hmac-sha256:` with the same local
key as the gateway's `serve.request` digests, so a dictionary of likely prompts does not reverse it."""

from __future__ import annotations

import hashlib
import hmac

from appliance.audit.events import Event
from appliance.audit.log import record_alone
from appliance.context import Context
from appliance.errors import ApplianceError, InputError
from appliance.identity.roles import require
from appliance.serve.llamacpp import Completion

TEXT_KEY = "serve-text"  # keys/serve-text.key: the gateway's key for audit digests of text


def text_facts(key: bytes, text: str) -> dict:
    """What the audit trail keeps of a text: its length in characters and its keyed digest."""
    return {"chars": len(text), "digest": "hmac-sha256:" + hmac.new(key, text.encode(), hashlib.sha256).hexdigest()}


def chat(ctx: Context, model_name: str, prompt: str, *, system: str | None = None,
         max_tokens: int = 128) -> Completion:
    """One greedy chat completion from a registered model, its GGUF digest checked first."""
    from appliance.keys.crypto import local_key
    from appliance.models import registry
    from appliance.serve import llamacpp

    require(ctx, "serve.query", "model", model_name)
    if not prompt.strip():
        raise InputError("the prompt is empty", param="prompt")
    key = local_key(ctx.settings, TEXT_KEY)
    details: dict = {"via": "cli", "prompt": text_facts(key, prompt), "max_output": max_tokens}
    if system is not None:
        details["system"] = text_facts(key, system)
    record, files = registry.get_model(ctx.engine, model_name)
    try:
        gguf = llamacpp.verified_gguf(ctx.settings, record, files)
        if registry.chat_template(ctx.settings, record) is None:
            raise InputError(f"model {record.name!r} carries no chat template (a base model): there is no chat to "
                             "answer, and llama.cpp's fallback format makes it stop at once (0 tokens); serve it "
                             "for /v1/completions, or import a model that carries a template", param="model")
        llm = llamacpp.load(ctx.settings, gguf)
        result = llamacpp.chat(llm, record.name, prompt, system=system, max_tokens=max_tokens)
    except ApplianceError as exc:
        record_alone(ctx, Event("model.chat", "model", record.name, outcome="error", reason=str(exc)[:500],
                                object_sha256=record.digest, details=details))
        raise
    details.update(answer=text_facts(key, result.text),
                   usage={"prompt": result.prompt_tokens, "completion": result.completion_tokens},
                   seconds=round(result.seconds, 3))
    record_alone(ctx, Event("model.chat", "model", record.name, object_sha256=record.digest, details=details))
    return result
