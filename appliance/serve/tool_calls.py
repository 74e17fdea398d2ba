"""Tool calling for models whose chat template knows no tools (the embedded SmolLM2 among them).

llama-server calls tools natively only when the model's template describes them (`/props` says
`supports_tool_calls`); with any other template it would ignore `tools` and answer free text. For those models the
gateway does what llama.cpp's generic handler used to: it tells the model the functions in a system message,
constrains the answer with a JSON schema (llama.cpp turns it into a grammar, so the reply is always one of
`{"tool_calls": [{"name": ..., "arguments": {...}}]}` for a declared function with its declared parameters, or,
with tool_choice auto, `{"content": "..."}`), and turns that JSON back into OpenAI's `tool_calls`. A follow-up's
assistant calls and tool results are written into the conversation as text the same model can read."""

from __future__ import annotations

import json
import secrets

from appliance.serve.protocol import ProtocolError

INSTRUCTION = ("You can call functions. The functions, as JSON schemas:\n{tools}\n"
               "Reply only with JSON: {{\"tool_calls\": [{{\"name\": NAME, \"arguments\": {{...}}}}]}} to call "
               "{which}{content}. Give each argument the value the user's message names.")


def wanted(body: dict) -> bool:
    return bool(body.get("tools")) and body.get("tool_choice", "auto") != "none"


def _call_schema(tool: dict) -> dict:
    function = tool["function"]
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return {"type": "object", "properties": {"name": {"const": function["name"]}, "arguments": parameters},
            "required": ["name", "arguments"], "additionalProperties": False}


def schema(body: dict) -> dict:
    """The JSON schema the reply must follow."""
    tools = body["tools"]
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict):
        tools = [t for t in tools if t["function"]["name"] == choice["function"]["name"]]
    calls = {"type": "array", "minItems": 1, "items": {"anyOf": [_call_schema(t) for t in tools]}}
    if body.get("parallel_tool_calls") is False or len(tools) == 1:
        calls["maxItems"] = 1
    calling = {"type": "object", "properties": {"tool_calls": calls}, "required": ["tool_calls"],
               "additionalProperties": False}
    if choice == "auto":
        answering = {"type": "object", "properties": {"content": {"type": "string"}}, "required": ["content"],
                     "additionalProperties": False}
        return {"anyOf": [calling, answering]}
    return calling


def _history(messages: list[dict]) -> list[dict]:
    """Assistant calls and tool results as plain messages (the template has no place for them)."""
    out = []
    names: dict[str, str] = {}
    for m in messages:
        if m["role"] == "assistant" and m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                names[c["id"]] = c["function"]["name"]
                try:
                    arguments = json.loads(c["function"]["arguments"] or "{}")
                except ValueError:
                    arguments = c["function"]["arguments"]
                calls.append({"name": c["function"]["name"], "arguments": arguments})
            out.append({"role": "assistant", "content": json.dumps({"tool_calls": calls})})
        elif m["role"] == "tool":
            name = names.get(m["tool_call_id"], "the function")
            out.append({"role": "user", "content": f"{name} returned: {m['content']}"})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


def rewrite(body: dict) -> dict:
    """The request as the backend gets it: no `tools`, a system message describing them, a schema to answer in."""
    if body.get("response_format") not in (None, {"type": "text"}):
        raise ProtocolError("'response_format' cannot be combined with 'tools' on this model",
                            "unsupported_parameter", "response_format")
    choice = body.get("tool_choice", "auto")
    tools = [{k: v for k, v in t["function"].items() if k in ("name", "description", "parameters")}
             for t in body["tools"]]
    which = (f"the function {choice['function']['name']}" if isinstance(choice, dict)
             else "one or more of them")
    content = ", or {\"content\": TEXT} to answer without calling one" if choice == "auto" else ""
    system = INSTRUCTION.format(tools=json.dumps(tools, indent=1), which=which, content=content)
    messages = _history(body["messages"])
    if messages and messages[0]["role"] == "system":
        messages[0] = {"role": "system", "content": messages[0]["content"] + "\n\n" + system}
    else:
        messages.insert(0, {"role": "system", "content": system})
    out = {k: v for k, v in body.items() if k not in ("tools", "tool_choice", "parallel_tool_calls", "stream",
                                                      "stream_options")}
    out["messages"] = messages
    out["response_format"] = {"type": "json_schema",
                              "json_schema": {"name": "tool_calls", "strict": True, "schema": schema(body)}}
    return out


def read_reply(data: dict) -> dict:
    """The backend's answer with each choice's JSON turned back into OpenAI's tool_calls (or plain content)."""
    for choice in data.get("choices", []):
        message = choice.get("message") or {}
        try:
            reply = json.loads(message.get("content") or "")
        except ValueError:
            continue  # cut short by max_tokens: the client sees the partial text and finish_reason length
        if isinstance(reply, dict) and isinstance(reply.get("tool_calls"), list):
            message["content"] = None
            message["tool_calls"] = [
                {"id": "call_" + secrets.token_hex(12), "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))}}
                for c in reply["tool_calls"] if isinstance(c, dict) and isinstance(c.get("name"), str)]
            choice["finish_reason"] = "tool_calls"
        elif isinstance(reply, dict) and isinstance(reply.get("content"), str):
            message["content"] = reply["content"]
        choice["message"] = message
    return data


def as_stream(data: dict, include_usage: bool) -> list[dict]:
    """A whole answer as the chunks a streaming client expects: the role, the content or calls, the finish."""
    base = {"id": data.get("id"), "object": "chat.completion.chunk", "created": data.get("created"),
            "model": data.get("model"), "system_fingerprint": data.get("system_fingerprint")}
    chunks = []
    for choice in data.get("choices", []):
        message, index = choice.get("message") or {}, choice.get("index", 0)
        delta: dict = {"role": "assistant", "content": message.get("content")}
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
        chunks.append({**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        chunks.append({**base, "choices": [{"index": index, "delta": {},
                                            "finish_reason": choice.get("finish_reason")}]})
    if include_usage:
        chunks.append({**base, "choices": [], "usage": data.get("usage")})
    return chunks


def prepare(body: dict) -> dict | None:
    """For a template without tools: the request rewritten for the backend (not streamed: the gateway streams the
    whole answer itself), or None when it carries no tools and no tool history."""
    history = any(m.get("tool_calls") or m["role"] == "tool" for m in body["messages"])
    if wanted(body):
        return rewrite(body)
    if not body.get("tools") and not history:
        return None
    out = {k: v for k, v in body.items() if k not in ("tools", "tool_choice", "parallel_tool_calls")}
    out["messages"] = _history(body["messages"])
    return out
