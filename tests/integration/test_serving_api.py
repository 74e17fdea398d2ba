"""The OpenAI surface that users' own clients need, through the gateway and llama.cpp's llama-server: the official
openai SDK (tools with their follow-up, structured output, content parts, n, logprobs), LangChain's ChatOpenAI and
LiteLLM; the gateway's hardening (bodies, slow clients, failed logins, metric labels); and an approval while
serving, which switches to a new llama-server instance without dropping the request in flight."""

import json
import os
import socket
import threading
import time
from typing import Literal

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import run_appliance
from tests.integration.serving import (
    TICKET,
    audit,
    backend_pids,
    client,
    ok,
    release,
    serving,
    signed_in,
    trained,
    wait,
)

pytestmark = pytest.mark.integration
ADAPTER = "triage-api"
TOOLS = [{"type": "function", "function": {
             "name": "ticket_status", "description": "Look up a help-desk ticket's status",
             "parameters": {"type": "object", "properties": {"ticket_id": {"type": "string"}},
                            "required": ["ticket_id"]}}},
         {"type": "function", "function": {
             "name": "escalate", "description": "Escalate a ticket to the on-call engineer",
             "parameters": {"type": "object", "properties": {"reason": {"type": "string"}},
                            "required": ["reason"]}}}]


class Ticket(BaseModel):
    category: Literal["hardware", "software", "network", "access"]
    urgent: bool


@pytest.fixture(scope="module")
def api(lab, tmp_path_factory):
    root, env = lab
    officer, admin = signed_in(root, env, "oscar"), signed_in(root, env, "alice")
    trained(root, env, officer)
    release(root, env, officer, "triage", ADAPTER)
    token = json.loads(ok(run_appliance("tokens", "create", "--user", "erin", "--json", env=admin)))["token"]
    edits = {"sync_seconds: 1.0": "sync_seconds: 0.5", "max_request_bytes: 65536": "max_request_bytes: 8192",
             "body_timeout_seconds: 30": "body_timeout_seconds: 2", "auth_failures_every_seconds: 60":
             "auth_failures_every_seconds: 1", "drain_seconds: 600": "drain_seconds: 120"}
    with serving(root, env, tmp_path_factory.mktemp("serving-api") / "policies", edits, "gateway-api.log") as g:
        yield {**g, "root": root, "env": env, "officer": officer, "admin": admin, "tokens": {"all": token}}


def test_tools_auto_required_and_named_with_the_follow_up(api):
    sdk = client(api)
    ask = [{"role": "user", "content": "What is the status of ticket INC-4411?"}]
    required = sdk.chat.completions.create(model="smollm2", messages=ask, tools=TOOLS, tool_choice="required",
                                           max_tokens=80, temperature=0)
    [call] = required.choices[0].message.tool_calls[:1]
    assert call.function.name in ("ticket_status", "escalate") and call.id
    assert isinstance(json.loads(call.function.arguments), dict)
    assert required.choices[0].finish_reason == "tool_calls"
    named = sdk.chat.completions.create(model=ADAPTER, messages=ask, tools=TOOLS, max_tokens=80, temperature=0,
                                        tool_choice={"type": "function", "function": {"name": "escalate"}})
    assert [c.function.name for c in named.choices[0].message.tool_calls] == ["escalate"]
    assert "reason" in json.loads(named.choices[0].message.tool_calls[0].function.arguments)
    auto = sdk.chat.completions.create(model="smollm2", messages=ask, tools=TOOLS, tool_choice="auto",
                                       max_tokens=60, temperature=0)
    assert auto.choices[0].message.content or auto.choices[0].message.tool_calls
    # The follow-up a client sends after running the tool: the assistant's call (content null), the tool's answer.
    follow = sdk.chat.completions.create(model="smollm2", tools=TOOLS, max_tokens=40, temperature=0, messages=[
        *ask, {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function",
             "function": {"name": "ticket_status", "arguments": json.dumps({"ticket_id": "INC-4411"})}}]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"status": "resolved"})}])
    assert follow.choices[0].message.content or follow.choices[0].message.tool_calls
    calls = [e for e in audit(api["root"], "serve.request") if e["details"].get("response_id") == named.id]
    assert calls and calls[0]["details"]["completion"].startswith("hmac-sha256:")  # the call itself is kept too


def test_structured_output_is_grammar_constrained(api):
    sdk = client(api)
    ask = [{"role": "system", "content": "Classify the help-desk ticket."}, {"role": "user", "content": TICKET}]
    parsed = sdk.chat.completions.parse(model=ADAPTER, messages=ask, response_format=Ticket, max_tokens=60,
                                        temperature=0)
    ticket = parsed.choices[0].message.parsed
    assert isinstance(ticket, Ticket) and ticket.category in ("hardware", "software", "network", "access")
    loose = sdk.chat.completions.create(model="smollm2", messages=ask, response_format={"type": "json_object"},
                                        max_tokens=80, temperature=0)
    text = loose.choices[0].message.content
    assert text.lstrip().startswith("{")  # the grammar allows nothing else, even when cut short
    if loose.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)


def test_the_rest_of_the_openai_surface(api):
    sdk = client(api)
    parts = sdk.chat.completions.create(model="smollm2", max_completion_tokens=8, temperature=0, messages=[
        {"role": "developer", "content": [{"type": "text", "text": "Answer in one word."}]},
        {"role": "user", "content": [{"type": "text", "text": "Name a primary colour."}]}])
    assert parts.choices[0].message.content and parts.usage.completion_tokens <= 8
    many = sdk.chat.completions.create(model=ADAPTER, messages=[{"role": "user", "content": TICKET}], n=3,
                                       max_tokens=12, temperature=1.0, seed=11)
    assert [c.index for c in many.choices] == [0, 1, 2] and all(c.message.content for c in many.choices)
    capital = [{"role": "user", "content": "What is the capital of France? One word."}]
    probs = sdk.chat.completions.create(model="smollm2", messages=capital, max_tokens=3, temperature=0,
                                        logprobs=True, top_logprobs=3)
    first = probs.choices[0].logprobs.content[0]
    assert first.logprob <= 0 and len(first.top_logprobs) == 3 and first.token == first.top_logprobs[0].token
    banned = sdk.chat.completions.create(model="smollm2", messages=capital, max_tokens=3, temperature=0,
                                         logprobs=True, logit_bias={str(first.model_extra["id"]): -100})
    assert banned.choices[0].logprobs.content[0].token != first.token
    stopped = sdk.completions.create(model="smollm2", prompt="1, 2, 3, 4,", max_tokens=20, temperature=0,
                                     stop=[" 6"], presence_penalty=0.1, frequency_penalty=0.1)
    assert " 6" not in stopped.choices[0].text and stopped.choices[0].finish_reason == "stop"
    legacy = sdk.completions.create(model="smollm2", prompt="The capital of France is", max_tokens=3,
                                    temperature=0, logprobs=2).choices[0]
    assert "".join(legacy.logprobs.tokens) == legacy.text and len(legacy.logprobs.token_logprobs) == 3
    assert all(len(top) == 2 for top in legacy.logprobs.top_logprobs)
    assert legacy.logprobs.text_offset[0] == len("The capital of France is")
    assert sdk.models.retrieve(ADAPTER).id == ADAPTER
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("no-such-model")
    clamped = sdk.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Hi"}],
                                          max_tokens=100_000, temperature=0)
    events = [e for e in audit(api["root"], "serve.request") if e["details"].get("response_id") == clamped.id]
    assert events[0]["details"]["max_output_asked"] == 100_000
    # Backend fields are not passed through; an image is refused by name, not silently dropped.
    for extra, param in (({"lora": [{"id": 0, "scale": 1.0}]}, "lora"), ({"n_predict": 99999}, "n_predict"),
                         ({"grammar": "root ::= \"x\""}, "grammar")):
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "x"}], max_tokens=2,
                                        extra_body=extra)
        assert refused.value.body["param"] == param and refused.value.body["code"] == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError) as image:
        sdk.chat.completions.create(model="smollm2", max_tokens=2, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
    assert image.value.body["param"] == "messages[0].content[0].type"


def test_langchain_chat_openai_invokes_streams_and_structures(api):
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=api["url"] + "/v1", api_key=api["tokens"]["all"], model=ADAPTER, temperature=0,
                      max_tokens=24, max_retries=0, timeout=120)
    answer = chat.invoke([("system", "You triage help-desk tickets."), ("human", TICKET)])
    assert answer.content and answer.usage_metadata["output_tokens"] > 0
    streamed = "".join(chunk.content for chunk in chat.stream([("human", TICKET)]))
    assert streamed
    roomy = ChatOpenAI(base_url=api["url"] + "/v1", api_key=api["tokens"]["all"], model=ADAPTER, temperature=0,
                       max_tokens=80, max_retries=0, timeout=120)
    structured = roomy.with_structured_output(Ticket).invoke([("human", f"Classify: {TICKET}")])
    assert isinstance(structured, Ticket)


def test_litellm_completes_and_streams(api):
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # its cost map is read from the package, not fetched
    import litellm

    litellm.telemetry = False
    reply = litellm.completion(model="openai/smollm2", api_base=api["url"] + "/v1", api_key=api["tokens"]["all"],
                               messages=[{"role": "user", "content": "Name a primary colour."}], max_tokens=8,
                               temperature=0)
    assert reply.choices[0].message.content and reply.usage.completion_tokens > 0
    pieces = [c.choices[0].delta.content or "" for c in litellm.completion(
        model=f"openai/{ADAPTER}", api_base=api["url"] + "/v1", api_key=api["tokens"]["all"], stream=True,
        messages=[{"role": "user", "content": TICKET}], max_tokens=8, temperature=0)]
    assert "".join(pieces)


def test_bodies_slow_clients_failed_logins_and_metric_labels_are_bounded(api):
    url, root = api["url"], api["root"]
    headers = {"Authorization": f"Bearer {api['tokens']['all']}", "Content-Type": "application/json"}

    def chunked():  # no Content-Length: the limit holds while reading
        yield b'{"model": "smollm2", "prompt": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    big = httpx.post(f"{url}/v1/completions", headers=headers, content=chunked(), timeout=30)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    # A body sent slower than the policy's 2 s: 408, and the connection is not held.
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as slow:
        slow.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: {headers['Authorization']}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode())
        slow.settimeout(10)
        started = time.monotonic()
        assert b" 408 " in slow.recv(4000).split(b"\r\n")[0] and time.monotonic() - started < 6
    # Failed logins: no event each; one per source once the policy's interval has passed.
    before, earlier = len(audit(root, "serve.request")), len(audit(root, "serve.auth_failed"))
    started = time.monotonic()
    for _ in range(40):
        assert httpx.post(f"{url}/v1/chat/completions", json={"model": "smollm2"},
                          headers={"Authorization": "Bearer apl_nope"}).status_code == 401
    seconds = time.monotonic() - started

    def counted() -> list[dict]:
        new = [e for e in audit(root, "serve.auth_failed")[earlier:] if e["object"] == "127.0.0.1"]
        return new if sum(e["details"]["count"] for e in new) >= 40 else []

    flushed = wait(counted, 10)
    assert flushed and all(e["outcome"] == "denied" for e in flushed), flushed
    assert len(flushed) <= seconds + 2  # one event per second (the policy here), not one per request
    assert len(audit(root, "serve.request")) == before
    # A model name that is not served never becomes a metric label.
    with pytest.raises(openai.NotFoundError):
        client(api).chat.completions.create(model="label-flood-7f3a", messages=[{"role": "user", "content": "x"}],
                                            max_tokens=2)
    assert "label-flood-7f3a" not in httpx.get(url + "/metrics").text


def test_an_approval_while_serving_switches_instances_without_dropping_a_request(api):
    """Runs last. llama-server reads adapters only at start: approving one starts an instance with the new list;
    the gateway switches when it is healthy, and the old instance finishes the stream it was serving."""
    root, env, officer = api["root"], api["env"], api["officer"]
    sdk = client(api)
    [old] = backend_pids(root)
    pieces, failures = [], []

    def long_stream() -> None:
        try:
            for chunk in sdk.chat.completions.create(model=ADAPTER, messages=[{"role": "user", "content": TICKET}],
                                                     max_tokens=400, temperature=0, stream=True):
                if chunk.choices and chunk.choices[0].delta.content:
                    pieces.append(chunk.choices[0].delta.content)
        except openai.APIError as exc:
            failures.append(exc)

    streaming = threading.Thread(target=long_stream)
    streaming.start()
    assert wait(lambda: len(pieces) >= 2, 60)
    release(root, env, officer, "triage", "triage-api-2")
    assert wait(lambda: "triage-api-2" in [m.id for m in sdk.models.list()], 60), api["log"].read_text()[-2000:]
    new = sdk.chat.completions.create(model="triage-api-2", messages=[{"role": "user", "content": TICKET}],
                                      max_tokens=8, temperature=0)
    assert new.choices[0].message.content
    streaming.join(120)
    assert not failures and len(pieces) > 5, failures
    assert wait(lambda: old not in backend_pids(root) and len(backend_pids(root)) == 1, 30), backend_pids(root)
    # Revoking refuses at the gateway at once; the instance is replaced without the adapter.
    ok(run_appliance("revoke", "triage-api-2", "--reason", "switch test", env=officer))
    assert wait(lambda: "triage-api-2" not in [m.id for m in sdk.models.list()], 10)
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="triage-api-2", messages=[{"role": "user", "content": "x"}], max_tokens=2)
    assert sdk.chat.completions.create(model=ADAPTER, messages=[{"role": "user", "content": "x"}],
                                       max_tokens=2).choices
    log = (root / "home" / "logs" / "backend.log").read_text()
    assert TICKET not in log  # llama-server logs no prompt
