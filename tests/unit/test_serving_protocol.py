"""What the gateway lets through to a backend (the whitelist, the limits, the OpenAI shapes), how the backends
behind it are started, failed authentication counted per source, and the HTTP server's slow-client guard."""

import json
import socket
import threading
import time

import pytest

from appliance.errors import InputError
from appliance.serve.auth_failures import AuthFailures
from appliance.serve.backends import AdapterFiles, BindingBackend, VllmBackend, VllmOptions
from appliance.serve.llama_server import Instance, LlamaServerBackend, _named_tool
from appliance.serve.policy import ServingPolicy
from appliance.serve.protocol import ProtocolError, parse, user_of

pytestmark = pytest.mark.unit
CHAT = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f"}}]


@pytest.mark.parametrize(("body", "route", "code", "param"), [
    ([], "chat", "invalid_body", None),
    ({"messages": []}, "chat", "invalid_messages", "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "chat",
     "unsupported_content", "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"kind": "text"}]}]}, "chat", "invalid_messages",
     "messages[0].content[0]"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "chat", "invalid_messages", "messages[0].role"),
    ({"messages": [{"role": "tool", "content": "42"}]}, "chat", "invalid_messages", "messages[0].tool_call_id"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}]}, "chat",
     "invalid_messages", "messages[0].tool_calls"),
    ({"messages": CHAT, "lora": [{"id": 0, "scale": 1}]}, "chat", "unsupported_parameter", "lora"),
    ({"messages": CHAT, "n_predict": 100000}, "chat", "unsupported_parameter", "n_predict"),
    ({"messages": CHAT, "grammar": "root ::= x"}, "chat", "unsupported_parameter", "grammar"),
    ({"prompt": "x", "tools": TOOLS}, "text", "unsupported_parameter", "tools"),
    ({"prompt": 5}, "text", "invalid_prompt", "prompt"),
    ({"prompt": "x", "max_tokens": 0}, "text", "invalid_max_tokens", "max_tokens"),
    ({"prompt": "x", "max_tokens": True}, "text", "invalid_max_tokens", "max_tokens"),
    ({"prompt": "x", "n": 9}, "text", "invalid_n", "n"),
    ({"prompt": "x", "temperature": 3}, "text", "invalid_temperature", "temperature"),
    ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "text", "invalid_stop", "stop"),
    ({"prompt": "x", "logit_bias": {"abc": 1}}, "text", "invalid_logit_bias", "logit_bias"),
    ({"prompt": "x", "echo": True}, "text", "unsupported_parameter", "echo"),
    ({"prompt": "x", "stream_options": {"include_usage": True}}, "text", "invalid_stream_options",
     "stream_options"),
    ({"messages": CHAT, "top_logprobs": 3}, "chat", "invalid_logprobs", "top_logprobs"),
    ({"messages": CHAT, "tool_choice": "required"}, "chat", "invalid_tool_choice", "tool_choice"),
    ({"messages": CHAT, "tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "g"}}}, "chat",
     "invalid_tool_choice", "tool_choice"),
    ({"messages": CHAT, "response_format": {"type": "xml"}}, "chat", "invalid_response_format",
     "response_format.type"),
    ({"messages": CHAT, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "chat",
     "invalid_response_format", "response_format.json_schema"),
])
def test_a_request_outside_the_whitelist_or_the_limits_is_refused_naming_the_field(body, route, code, param):
    with pytest.raises(ProtocolError) as caught:
        parse(body, route, ServingPolicy())
    assert caught.value.code == code and caught.value.param == param, caught.value.message


def test_what_the_gateway_accepts_reaches_the_backend_in_one_shape():
    policy = ServingPolicy()
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    checked = parse({"model": "m", "messages": [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "found"}],
        "tools": tools, "tool_choice": {"type": "function", "function": {"name": "lookup"}}, "n": 2,
        "logprobs": True, "top_logprobs": 2, "seed": 7, "user": "u-1", "stop": None,
        "max_completion_tokens": 9, "response_format": {"type": "json_object"}}, "chat", policy)
    body = checked.body
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    assert body["messages"][1]["content"] == "part one\npart two" and body["messages"][2]["content"] == ""
    assert body["messages"][2]["tool_calls"][0]["function"]["name"] == "lookup"
    assert body["max_tokens"] == 9 and "max_completion_tokens" not in body and "stop" not in body
    assert "user" not in body and user_of({"user": "u-1"}) == "u-1" and body["n"] == 2
    assert checked.prompt_text.startswith("be brief\npart one")
    assert parse({"prompt": "x"}, "text", policy).body["max_tokens"] == policy.limits.default_max_tokens
    # above the limit: clamped by default (the event says what was asked), refused when the policy says so
    over = parse({"prompt": "x", "max_tokens": policy.limits.max_tokens + 10}, "text", policy)
    assert over.body["max_tokens"] == policy.limits.max_tokens and over.clamped == policy.limits.max_tokens + 10
    strict = ServingPolicy(limits={"over_max_tokens": "refuse"})
    with pytest.raises(ProtocolError, match="above this appliance's limit"):
        parse({"prompt": "x", "max_tokens": strict.limits.max_tokens + 1}, "text", strict)
    # a backend that honours less refuses the rest by name
    with pytest.raises(ProtocolError, match="'logprobs' is not supported"):
        parse({"messages": CHAT, "logprobs": True}, "chat", policy, BindingBackend.supported)


def test_the_vllm_backend_listens_on_a_private_socket_and_wants_a_key_no_command_line_shows(tmp_path):
    backend = VllmBackend("smollm2", tmp_path / "hf", tmp_path / "run", VllmOptions(max_loras=2, max_lora_rank=32),
                          executable="/opt/vllm/bin/vllm")
    command = backend.command()
    assert command[:3] == ["/opt/vllm/bin/vllm", "serve", str(tmp_path / "hf")]
    assert command[command.index("--uds") + 1] == str(tmp_path / "run" / "vllm" / "server.sock")
    assert "--host" not in command and "--port" not in command
    assert "--enable-lora" in command and command[command.index("--max-loras") + 1] == "2"
    assert command[command.index("--max-lora-rank") + 1] == "32"
    env = backend.env()
    assert env["VLLM_API_KEY"] == backend.api_key and len(backend.api_key) >= 32
    assert backend.api_key not in " ".join(command)
    assert backend.headers() == {"Authorization": f"Bearer {backend.api_key}"}
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True" and env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_NO_USAGE_STATS"] == "1" and env["DO_NOT_TRACK"] == "1"
    assert VllmBackend("m", tmp_path, tmp_path / "r").api_key != backend.api_key
    for bad, message in (({"max_loras": 0}, "max_loras"), ({"max_loras": 9, "max_cpu_loras": 4}, "max_loras"),
                         ({"max_lora_rank": 12}, "max_lora_rank 12"),
                         ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization")):
        with pytest.raises(InputError, match=message):
            VllmOptions(**bad)


def test_llama_server_gets_every_adapter_unapplied_a_private_socket_and_no_flags_from_the_environment(
        tmp_path, monkeypatch):
    monkeypatch.setenv("APPLIANCE_TOKEN", "apl_x_secret")
    monkeypatch.setenv("LLAMA_ARG_TOOLS", "all")  # would give llama-server a shell tool
    monkeypatch.setenv("LLAMA_API_KEY", "x")
    exe = tmp_path / "llama-server"
    exe.write_text("")
    backend = LlamaServerBackend("smollm2", tmp_path / "m.gguf", tmp_path / "run", 2, 2048, parallel=4,
                                 executable=exe)
    adapters = (AdapterFiles("a", tmp_path / "art" / "a", "d1"), AdapterFiles("b", tmp_path / "art" / "b", "d2"))
    command = backend.command(Instance(1, tmp_path / "run" / "llama-server" / "i.sock", adapters))
    assert command[0] == str(exe) and command[command.index("--host") + 1].endswith(".sock")
    assert command[command.index("--parallel") + 1] == "4" and command[command.index("--ctx-size") + 1] == "8192"
    assert [command[i + 1] for i, c in enumerate(command) if c == "--lora"] == [
        str(tmp_path / "art" / "a" / "adapter.gguf"), str(tmp_path / "art" / "b" / "adapter.gguf")]
    assert "--lora-init-without-apply" in command and "--offline" in command and "--no-webui" in command
    env = backend.env()
    assert not [k for k in env if k.startswith("LLAMA_")] and "APPLIANCE_TOKEN" not in env
    instance = Instance(1, tmp_path / "s.sock", adapters)
    assert instance.lora("b") == [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 1.0}]
    assert instance.lora(None) == [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 0.0}]  # the base: every adapter off
    assert instance.has("a") and not instance.has("c")
    named = _named_tool({"tools": [{"type": "function", "function": {"name": "f"}},
                                   {"type": "function", "function": {"name": "g"}}],
                         "tool_choice": {"type": "function", "function": {"name": "g"}}})
    assert named["tool_choice"] == "required" and [t["function"]["name"] for t in named["tools"]] == ["g"]
    missing = LlamaServerBackend("m", tmp_path / "m.gguf", tmp_path / "run", 2, 2048, executable=tmp_path / "nope")
    with pytest.raises(InputError, match="llama-server is not installed"):
        missing.command(instance)


def test_failed_authentication_is_one_event_per_source_per_minute():
    class Writer:
        def __init__(self) -> None:
            self.events = []

        def put(self, actor, event):
            self.events.append((actor, event))

    writer = Writer()
    failures = AuthFailures(writer)
    for _ in range(500):
        failures.note("10.0.0.9", "unknown API token")
    failures.note("10.0.0.7", "missing bearer token")
    assert not writer.events  # nothing is written per request
    assert failures.flush() == 2
    by_source = {e.object_id: e for _, e in writer.events}
    assert by_source["10.0.0.9"].details["count"] == 500 and by_source["10.0.0.9"].outcome == "denied"
    assert by_source["10.0.0.9"].action == "serve.auth_failed" and "500 requests" in by_source["10.0.0.9"].reason
    assert failures.flush() == 0  # a quiet minute writes nothing
    for i in range(10_050):  # a flood of sources is bounded
        failures.note(f"s{i}", "x")
    assert len(failures.counts) == 10_001 and failures.counts["other"].count == 50


def test_a_client_that_sends_its_headers_slowly_is_disconnected():
    import uvicorn

    from appliance.serve import http_server

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    policy = ServingPolicy(server={"header_timeout_seconds": 0.5})
    server = uvicorn.Server(http_server.config(app, "127.0.0.1", port, policy))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port)) as prompt:  # a prompt client is served
            prompt.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200 OK" in prompt.recv(1000)
        with socket.create_connection(("127.0.0.1", port)) as slow:
            started = time.monotonic()
            slow.sendall(b"GET / HTTP/1.1\r\nHo")
            slow.settimeout(5)
            closed = False
            try:
                for _ in range(30):
                    time.sleep(0.1)
                    slow.sendall(b"s")  # a byte at a time keeps the connection busy, not alive
            except OSError:
                closed = True
            if not closed:
                closed = slow.recv(100) == b""
            assert closed and time.monotonic() - started < 3.5
    finally:
        server.should_exit = True
        thread.join(10)


def test_tools_on_a_template_without_them_become_a_schema_and_come_back_as_tool_calls():
    from appliance.serve import tool_calls

    tools = [{"type": "function", "function": {"name": "lookup", "description": "find a ticket",
                                               "parameters": {"type": "object",
                                                              "properties": {"id": {"type": "string"}}}}},
             {"type": "function", "function": {"name": "escalate"}}]
    asked = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "status of INC-1?"},
             {"role": "assistant", "content": "", "tool_calls": [
                 {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"id": "INC-1"}'}}]},
             {"role": "tool", "tool_call_id": "c1", "content": "resolved"}]
    body = {"model": "m", "messages": asked, "tools": tools, "tool_choice": "auto", "stream": True,
            "max_tokens": 50}
    sent = tool_calls.prepare(body)
    assert "tools" not in sent and "tool_choice" not in sent and "stream" not in sent
    assert sent["messages"][0]["role"] == "system" and "be brief" in sent["messages"][0]["content"]
    assert '"lookup"' in sent["messages"][0]["content"] and '{"content": TEXT}' in sent["messages"][0]["content"]
    assert json.loads(sent["messages"][2]["content"]) == {"tool_calls": [{"name": "lookup",
                                                                            "arguments": {"id": "INC-1"}}]}
    assert sent["messages"][3] == {"role": "user", "content": "lookup returned: resolved"}
    schema = sent["response_format"]["json_schema"]["schema"]
    assert len(schema["anyOf"]) == 2  # a call, or a plain answer
    named = tool_calls.schema({**body, "tool_choice": {"type": "function", "function": {"name": "escalate"}}})
    assert [c["properties"]["name"]["const"] for c in named["properties"]["tool_calls"]["items"]["anyOf"]] == [
        "escalate"] and named["properties"]["tool_calls"]["maxItems"] == 1
    required = tool_calls.schema({**body, "tool_choice": "required"})
    assert "anyOf" not in required and required["required"] == ["tool_calls"]
    with pytest.raises(ProtocolError, match="response_format"):
        tool_calls.prepare({**body, "response_format": {"type": "json_object"}})
    assert tool_calls.prepare({"messages": CHAT}) is None
    plain = tool_calls.prepare({"messages": CHAT, "tools": tools, "tool_choice": "none"})
    assert "tools" not in plain and "response_format" not in plain
    reply = {"id": "x", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": json.dumps(
            {"tool_calls": [{"name": "lookup", "arguments": {"id": "INC-2"}}]})}},
        {"index": 1, "finish_reason": "stop", "message": {"role": "assistant",
                                                          "content": '{"content": "It is resolved."}'}},
        {"index": 2, "finish_reason": "length", "message": {"role": "assistant", "content": '{"tool_ca'}}]}
    read = tool_calls.read_reply(reply)["choices"]
    call = read[0]["message"]["tool_calls"][0]
    assert read[0]["finish_reason"] == "tool_calls" and read[0]["message"]["content"] is None
    assert call["id"].startswith("call_") and json.loads(call["function"]["arguments"]) == {"id": "INC-2"}
    assert read[1]["message"]["content"] == "It is resolved." and read[2]["finish_reason"] == "length"
    chunks = tool_calls.as_stream({"id": "x", "choices": read[:1], "usage": {"completion_tokens": 3}}, True)
    assert chunks[0]["choices"][0]["delta"]["tool_calls"][0]["index"] == 0
    assert chunks[1]["choices"][0]["finish_reason"] == "tool_calls" and chunks[-1]["usage"]["completion_tokens"] == 3


def test_completions_logprobs_come_in_the_completions_apis_shape():
    from appliance.serve.protocol import legacy_logprobs

    choice = {"text": " Paris.", "logprobs": {"content": [
        {"token": " Paris", "logprob": -0.2, "top_logprobs": [{"token": " Paris", "logprob": -0.2},
                                                              {"token": " the", "logprob": -2.7}]},
        {"token": ".", "logprob": -0.4, "top_logprobs": [{"token": ".", "logprob": -0.4}]}]}}
    assert legacy_logprobs(choice, 10) == 17
    assert choice["logprobs"] == {"tokens": [" Paris", "."], "token_logprobs": [-0.2, -0.4],
                                  "top_logprobs": [{" Paris": -0.2, " the": -2.7}, {".": -0.4}],
                                  "text_offset": [10, 16]}
    untouched = {"logprobs": None}
    assert legacy_logprobs(untouched, 3) == 3 and untouched == {"logprobs": None}
