"""What the gateway accepts of OpenAI's chat and completions requests, and what it passes on.

Only the fields below reach a backend (`lora`, `n_predict`, `grammar` and every other backend field are refused,
so a client cannot choose an adapter it may not use or escape the token limit); a field the appliance does not
honour is a 400 naming it, never silently dropped. A `null` field counts as absent (clients send them).
Content-part arrays are read for their text parts (an image, audio or file part is refused, naming it);
`developer` messages are system messages; `max_completion_tokens` is `max_tokens`."""

from __future__ import annotations

import json
from dataclasses import dataclass

from appliance.serve.policy import ServingPolicy

SAMPLING = ("temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias", "n")
CHAT_FIELDS = frozenset({"model", "messages", "max_tokens", "max_completion_tokens", "stream", "stream_options",
                         "logprobs", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls",
                         "response_format", "user", *SAMPLING})
COMPLETION_FIELDS = frozenset({"model", "prompt", "max_tokens", "stream", "stream_options", "logprobs", "echo",
                               "user", *SAMPLING})
ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_N = 8


class ProtocolError(Exception):
    def __init__(self, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


@dataclass(frozen=True)
class Parsed:
    body: dict  # what goes to the backend (model still the caller's name; the backend routes it)
    prompt_text: str  # what the audit trail keeps (digested or scrubbed) of the request
    clamped: int | None = None  # the max_tokens asked for, when the policy clamped it


def _number(body: dict, name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ProtocolError(f"'{name}' must be a number from {low:g} to {high:g}", f"invalid_{name}", name)


def _integer(body: dict, name: str, low: int, high: int) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"'{name}' must be an integer from {low} to {high}", f"invalid_{name}", name)


def _text_of(content, where: str) -> str:
    """A message's content as one string: a string, or the text parts of a content-part array."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ProtocolError(f"'{where}' must be a string or a list of content parts", "invalid_messages", where)
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in ("image_url", "input_audio", "file", "image", "audio"):
            raise ProtocolError(f"'{where}[{j}].type' is {kind!r}: this appliance serves text models; only text "
                                "parts are accepted", "unsupported_content", f"{where}[{j}].type")
        else:
            raise ProtocolError(f"'{where}[{j}]' must be a content part {{\"type\": \"text\", \"text\": ...}}",
                                "invalid_messages", f"{where}[{j}]")
    return "\n".join(texts)


def _messages(raw) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        raise ProtocolError("'messages' must be a non-empty list of messages", "invalid_messages", "messages")
    out = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ProtocolError(f"'{where}.role' must be one of {', '.join(ROLES)}", "invalid_messages",
                                f"{where}.role")
        role = "system" if m["role"] == "developer" else m["role"]
        message: dict = {"role": role}
        calls = m.get("tool_calls")
        if role == "assistant" and calls is not None:
            if not isinstance(calls, list) or not all(
                    isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("function"), dict)
                    and isinstance(c["function"].get("name"), str)
                    and isinstance(c["function"].get("arguments"), str) for c in calls):
                raise ProtocolError(f"'{where}.tool_calls' must be a list of {{id, type, function: {{name, "
                                    "arguments}}}}", "invalid_messages", f"{where}.tool_calls")
            message["tool_calls"] = [{"id": c["id"], "type": "function",
                                      "function": {"name": c["function"]["name"],
                                                   "arguments": c["function"]["arguments"]}} for c in calls]
            content = m.get("content")
            message["content"] = "" if content is None else _text_of(content, f"{where}.content")
        else:
            message["content"] = _text_of(m.get("content"), f"{where}.content")
        if role == "tool":
            if not isinstance(m.get("tool_call_id"), str):
                raise ProtocolError(f"'{where}.tool_call_id' is required on a tool message", "invalid_messages",
                                    f"{where}.tool_call_id")
            message["tool_call_id"] = m["tool_call_id"]
        if isinstance(m.get("name"), str):
            message["name"] = m["name"]
        out.append(message)
    return out


def _tools(body: dict) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(
                isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
                and isinstance(t["function"].get("name"), str) for t in tools):
            raise ProtocolError("'tools' must be a list of {type: function, function: {name, parameters}}",
                                "invalid_tools", "tools")
    choice = body.get("tool_choice")
    if choice is None:
        return
    names = {t["function"]["name"] for t in tools or []}
    if choice in ("none", "auto", "required"):
        if choice == "required" and not names:
            raise ProtocolError("'tool_choice' required needs 'tools'", "invalid_tool_choice", "tool_choice")
        return
    named = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or named not in names:
        raise ProtocolError("'tool_choice' must be none, auto, required, or {type: function, function: {name}} "
                            "naming one of 'tools'", "invalid_tool_choice", "tool_choice")


def _response_format(body: dict) -> None:
    fmt = body.get("response_format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("text", "json_object"):
        return
    if kind == "json_schema":
        schema = fmt.get("json_schema")
        if isinstance(schema, dict) and isinstance(schema.get("schema"), dict):
            return
        raise ProtocolError("'response_format.json_schema' must be {name, schema: {...}, strict}",
                            "invalid_response_format", "response_format.json_schema")
    raise ProtocolError("'response_format.type' must be text, json_object or json_schema",
                        "invalid_response_format", "response_format.type")


def _max_tokens(body: dict, policy: ServingPolicy) -> tuple[int, int | None]:
    limits = policy.limits
    asked = body.get("max_completion_tokens", body.get("max_tokens"))
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    if asked is None:
        return limits.default_max_tokens, None
    if not isinstance(asked, int) or isinstance(asked, bool) or asked < 1:
        raise ProtocolError(f"'{name}' must be a positive integer", "invalid_max_tokens", name)
    if asked <= limits.max_tokens:
        return asked, None
    if limits.over_max_tokens == "clamp":
        return limits.max_tokens, asked
    raise ProtocolError(f"'{name}' {asked} is above this appliance's limit of {limits.max_tokens}",
                        "max_tokens_too_large", name)


def parse(raw, route: str, policy: ServingPolicy, supported: frozenset[str] | None = None) -> Parsed:
    """The request checked against the whitelist and the policy; ProtocolError names the first problem."""
    if not isinstance(raw, dict):
        raise ProtocolError("the request body must be a JSON object", "invalid_body")
    body = {k: v for k, v in raw.items() if v is not None}
    allowed = CHAT_FIELDS if route == "chat" else COMPLETION_FIELDS
    if supported is not None:
        allowed = allowed & supported
    unknown = sorted(set(body) - allowed)
    if unknown:
        known = CHAT_FIELDS | COMPLETION_FIELDS
        why = "is not an OpenAI field this appliance accepts" if unknown[0] not in known else \
            "is not supported on this route or backend"
        raise ProtocolError(f"the parameter '{unknown[0]}' {why}", "unsupported_parameter", unknown[0])
    _integer(body, "n", 1, MAX_N)
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "presence_penalty", -2, 2)
    _number(body, "frequency_penalty", -2, 2)
    _integer(body, "seed", -(2**63), 2**63 - 1)
    stop = body.get("stop")
    if stop is not None and not (isinstance(stop, str) or (isinstance(stop, list) and len(stop) <= 4
                                                           and all(isinstance(s, str) for s in stop))):
        raise ProtocolError("'stop' must be a string or a list of at most 4 strings", "invalid_stop", "stop")
    bias = body.get("logit_bias")
    if bias is not None and not (isinstance(bias, dict) and all(
            str(k).isdigit() and isinstance(v, (int, float)) and not isinstance(v, bool) and -100 <= v <= 100
            for k, v in bias.items())):
        raise ProtocolError("'logit_bias' must map token ids to numbers from -100 to 100", "invalid_logit_bias",
                            "logit_bias")
    options = body.get("stream_options")
    if options is not None and not (isinstance(options, dict) and set(options) <= {"include_usage"}):
        raise ProtocolError("'stream_options' may hold only include_usage", "invalid_stream_options",
                            "stream_options")
    if options is not None and not body.get("stream"):
        raise ProtocolError("'stream_options' is only allowed with stream: true", "invalid_stream_options",
                            "stream_options")
    if body.get("stream") and body.get("n", 1) > 1 and policy.output_filter == "redact":
        raise ProtocolError("n > 1 cannot be streamed while the output filter redacts", "unsupported_n", "n")
    if route == "chat":
        body["messages"] = _messages(body["messages"]) if "messages" in body else _messages(None)
        if body.get("logprobs") is not None and not isinstance(body["logprobs"], bool):
            raise ProtocolError("'logprobs' must be true or false", "invalid_logprobs", "logprobs")
        _integer(body, "top_logprobs", 0, 20)
        if body.get("top_logprobs") and not body.get("logprobs"):
            raise ProtocolError("'top_logprobs' needs logprobs: true", "invalid_logprobs", "top_logprobs")
        _tools(body)
        _response_format(body)
        prompt_text = "\n".join(m["content"] for m in body["messages"])
    else:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise ProtocolError("'prompt' must be a string", "invalid_prompt", "prompt")
        _integer(body, "logprobs", 0, 5)
        if body.get("echo"):
            raise ProtocolError("'echo' true is not supported", "unsupported_parameter", "echo")
        body.pop("echo", None)
        prompt_text = prompt
    tokens, clamped = _max_tokens(body, policy)
    body.pop("max_completion_tokens", None)
    body["max_tokens"] = tokens
    body.pop("user", None)  # kept in the audit event by the gateway, not passed on
    return Parsed(body, prompt_text, clamped)


def user_of(raw) -> str | None:
    user = raw.get("user") if isinstance(raw, dict) else None
    return user[:200] if isinstance(user, str) else None


def dumps(body: dict) -> str:
    return json.dumps(body, separators=(",", ":"))


def legacy_logprobs(choice: dict, offset: int) -> int:
    """A completions choice's logprobs in the completions API's own shape (tokens, token_logprobs, top_logprobs,
    text_offset), where a backend gave the chat shape (`content`: a list per token). Returns the next offset."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict) or not isinstance(logprobs.get("content"), list):
        return offset
    tokens, values, tops, offsets = [], [], [], []
    for entry in logprobs["content"]:
        token = str(entry.get("token", ""))
        tokens.append(token)
        values.append(entry.get("logprob"))
        tops.append({str(t.get("token", "")): t.get("logprob") for t in entry.get("top_logprobs") or []})
        offsets.append(offset)
        offset += len(token)
    choice["logprobs"] = {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}
    return offset
