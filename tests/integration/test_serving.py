"""`appliance serve`: the gateway and the real llama.cpp backend, queried with the official `openai` SDK.
Uses the help-desk adapter the training tests released (`triage`, approved); when this module runs alone it
trains, evaluates and releases a short one first."""

import hashlib
import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import func, select, update

from appliance.db.tables import artifact, audit_checkpoint, audit_event
from tests.conftest import home_db, run_appliance, token_secret
from tests.integration.serving import TICKET, serving, signed_in, trained
from tests.integration.serving import audit as _audit
from tests.integration.serving import backend_pids as _backend_pids
from tests.integration.serving import client as _client
from tests.integration.serving import ok as _ok
from tests.integration.serving import ready as _ready
from tests.integration.serving import release as _release
from tests.integration.serving import wait as _wait

try:
    import torch

    CUDA = torch.cuda.is_available()
except ImportError:
    CUDA = False
VLLM = CUDA and importlib.util.find_spec("vllm") is not None

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def released(lab):
    """`triage` approved (as the training tests leave it), a second artifact of it approved but tampered with
    afterwards, and API tokens: two for erin, one for everything and one limited to an adapter that does not
    exist, and one for oscar (whose limits are his own)."""
    root, env = lab
    officer, admin = signed_in(root, env, "oscar"), signed_in(root, env, "alice")
    trained(root, env, officer)
    _release(root, env, officer, "triage", "triage-tampered")
    card = root / "home" / "artifacts" / "triage-tampered" / "README.md"
    card.write_text(card.read_text() + "\nchanged after approval\n")
    tokens = {}
    for key, user, extra in (("all", "erin", ()), ("burst", "oscar", ()),
                             ("limited", "erin", ("--adapters", "no-such-adapter"))):
        tokens[key] = json.loads(_ok(run_appliance("tokens", "create", "--user", user, *extra, "--json",
                                                   env=admin)))["token"]
    return root, env, officer, admin, tokens


@pytest.fixture(scope="module")
def gateway(released, tmp_path_factory):
    root, env, officer, admin, tokens = released
    edits = {"requests_per_minute: 600": "requests_per_minute: 60", "burst: 60": "burst: 30",
             "max_concurrent: 8": "max_concurrent: 3", "audit_text: digest": "audit_text: scrubbed",
             "max_request_bytes: 65536": "max_request_bytes: 4096", "sync_seconds: 1.0": "sync_seconds: 0.5"}
    with serving(root, env, tmp_path_factory.mktemp("serving") / "policies", edits) as g:
        yield {**g, "root": root, "env": env, "officer": officer, "admin": admin, "tokens": tokens}


def test_the_openai_sdk_lists_and_queries_base_and_adapter(gateway):
    client = _client(gateway)
    assert [m.id for m in client.models.list()] == ["smollm2", "triage"]  # the tampered artifact is refused
    refused = _audit(gateway["root"], "serve.load")
    assert any(e["object"] == "triage-tampered" and e["outcome"] == "denied" and "README.md: sha256 differs"
               in e["reason"] for e in refused), refused
    assert any(e["object"] == "triage" and e["outcome"] == "ok" for e in refused)

    messages = [{"role": "user", "content": TICKET}]
    answers, usages = {}, {}
    for model in ("smollm2", "triage"):
        reply = client.chat.completions.create(model=model, messages=messages, max_tokens=40, temperature=0)
        answers[model], usages[model] = reply.choices[0].message.content, reply.usage
        assert reply.model == model and reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 10
    assert answers["smollm2"] != answers["triage"]

    stream = client.chat.completions.create(model="triage", messages=messages, max_tokens=40, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage
    # Greedy: streamed and whole answers agree when the backend starts from the same state. The first whole answer
    # processed the prompt afresh (the slot's cache was cleared by the switch of adapter); the stream reused the
    # cached prompt, as does this second whole answer, and a token computed alone can round differently from one in
    # a batch of the prompt.
    again = client.chat.completions.create(model="triage", messages=messages, max_tokens=40, temperature=0)
    assert "".join(pieces) == again.choices[0].message.content
    assert usage is not None and usage.completion_tokens == again.usage.completion_tokens
    assert usage.prompt_tokens == usages["triage"].prompt_tokens

    plain = client.chat.completions.create(model="smollm2", messages=messages, max_tokens=5, stream=True)
    assert all(chunk.usage is None for chunk in plain)  # usage only when asked for
    text = client.completions.create(model="smollm2", prompt="The capital of France is", max_tokens=4,
                                     temperature=0)
    assert text.choices[0].text.strip() and text.usage.completion_tokens >= 1
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=4, temperature=0, stream=True) if c.choices)
    again = client.completions.create(model="smollm2", prompt="The capital of France is", max_tokens=4,
                                      temperature=0)  # from the same cached prompt as the stream
    assert streamed == again.choices[0].text


def test_the_consoles_serving_and_playground_pages_talk_to_the_gateway(gateway, monkeypatch):
    """The console's Serving page reads the gateway's health and counters; its Playground asks base and adapter
    side by side with the signed-in user's own API token, each answer audited under that user."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import PASSWORDS

    env = gateway["env"]
    monkeypatch.setenv("APPLIANCE_HOME", env["APPLIANCE_HOME"])
    monkeypatch.delenv("APPLIANCE_DATABASE_URL", raising=False)
    monkeypatch.setenv("APPLIANCE_GATEWAY_URL", gateway["url"])
    at = AppTest.from_file(str(ROOT / "appliance" / "console" / "app.py"), default_timeout=300)
    at.run()
    at.text_input(key="login_user").input("erin")
    at.text_input(key="login_password").input(PASSWORDS["erin"])
    at.button[0].click().run()
    at.sidebar.radio(key="page").set_value("Serving").run()
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert any(m.value.startswith("**Status**: ready") for m in at.markdown)
    counters = next(d.value for d in at.dataframe if "metric" in d.value.columns)
    assert "appliance_adapters_loaded" in set(counters["metric"]), counters
    assert {m.label: m.value for m in at.metric}["adapters loaded"] == "1"

    before = len([e for e in _audit(gateway["root"], "serve.request") if e["actor"] == "erin"])
    at.sidebar.radio(key="page").set_value("Playground").run()
    at.text_input(key="play_token").input(gateway["tokens"]["all"]).run()
    assert at.selectbox(key="play_left").options == ["smollm2", "triage"]
    at.selectbox(key="play_left").set_value("smollm2")
    at.selectbox(key="play_right").set_value("triage")
    at.text_area(key="play_prompt").input(TICKET)
    at.button(key="play_ask").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = [m.value for m in at.markdown]
    assert "**smollm2**" in shown and "**triage**" in shown, shown
    answers = [m.value for m in at.markdown if m.value and not m.value.startswith("**")]
    assert len([a for a in answers if a.strip()]) >= 2, answers
    def asked() -> list[dict]:  # the gateway writes its events from a queue
        found = [e for e in _audit(gateway["root"], "serve.request") if e["actor"] == "erin"][before:]
        return found if len(found) >= 2 else []

    assert sorted(e["object"] for e in _wait(asked)) == ["smollm2", "triage"], asked()


def test_doctor_asks_the_running_gateway_and_says_when_none_answers(gateway):
    result = run_appliance("doctor", "--json", "--gateway", gateway["url"], env=gateway["env"])
    [check] = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "gateway"]
    assert check["status"] == "ok" and "ready; 1 adapters loaded" in check["detail"], check
    result = run_appliance("doctor", "--gateway", "http://127.0.0.1:9", env=gateway["env"])
    assert result.returncode == 1 and "the gateway does not answer at http://127.0.0.1:9" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_tokens_limits_and_bad_requests_get_openai_errors(gateway):
    url, root = gateway["url"], gateway["root"]
    with pytest.raises(openai.AuthenticationError):
        _client(gateway, "apl_" + "0" * 32 + "_not-a-real-secret-at-all").models.list()
    missing = httpx.post(f"{url}/v1/chat/completions", json={"model": "smollm2", "messages": []})
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    limited = _client(gateway, gateway["tokens"]["limited"])
    assert [m.id for m in limited.models.list()] == ["smollm2"]
    with pytest.raises(openai.PermissionDeniedError, match="may not use adapter 'triage'"):
        limited.chat.completions.create(model="triage", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    client = _client(gateway)
    with pytest.raises(openai.NotFoundError, match="not served"):
        client.chat.completions.create(model="nonexistent\x1b[2J", messages=[{"role": "user", "content": "x"}],
                                       max_tokens=2)
    asked = _wait(lambda: [e for e in _audit(root, "serve.request") if e["details"].get("model_asked")])
    assert asked[-1]["object"] == "(not served)" and asked[-1]["details"]["model_asked"] == "nonexistent\\x1b[2J"
    with pytest.raises(openai.BadRequestError, match="'messages\\[0\\].content' must be"):
        client.chat.completions.create(model="smollm2", messages=[{"role": "user"}], max_tokens=2)
    headers = {"Authorization": f"Bearer {gateway['tokens']['all']}"}
    big = httpx.post(f"{url}/v1/completions", headers=headers,
                     json={"model": "smollm2", "prompt": "x" * 5000, "max_tokens": 1})
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    garbage = httpx.post(f"{url}/v1/completions", headers={**headers, "content-type": "application/json"},
                         content=b"{not json")
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "invalid_json"

    # Concurrency cap (3 in flight per user): 6 slow streams at once, some refused with Retry-After.
    statuses, retry = [], []

    def slow() -> None:
        with httpx.stream("POST", f"{url}/v1/completions", headers=headers, timeout=120,
                          json={"model": "smollm2", "prompt": "Once upon a time", "max_tokens": 48,
                                "stream": True}) as r:
            statuses.append(r.status_code)
            retry.append(r.headers.get("retry-after"))
            r.read()

    threads = [threading.Thread(target=slow) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(200) >= 3 and 429 in statuses, statuses
    assert all(r and int(r) >= 1 for s, r in zip(statuses, retry, strict=True) if s == 429)

    # Rate: a burst of 30 refilled at one a second; 45 quick requests of another user run into it, and a token
    # they mint then draws on the same spent bucket: the limits are the user's.
    burst = {"Authorization": f"Bearer {gateway['tokens']['burst']}"}
    codes = [httpx.post(f"{url}/v1/completions", headers=burst, timeout=60,
                        json={"model": "smollm2", "prompt": "Hi", "max_tokens": 1}).status_code for _ in range(45)]
    assert 429 in codes and codes.count(200) >= 30, codes
    fresh = json.loads(_ok(run_appliance("tokens", "create", "--user", "oscar", "--json",
                                         env=gateway["admin"])))["token"]
    minted = httpx.post(f"{url}/v1/completions", headers={"Authorization": f"Bearer {fresh}"}, timeout=60,
                        json={"model": "smollm2", "prompt": "Hi", "max_tokens": 1})
    assert minted.status_code == 429 and "across all their tokens" in minted.json()["error"]["message"]
    assert _wait(lambda: any(e["details"]["status"] == 429 for e in _audit(root, "serve.request")))

    secrets = [token_secret(t) for t in gateway["tokens"].values()]
    for text in (gateway["log"].read_text(), (root / "home" / "logs" / "backend.log").read_text(),
                 json.dumps(_audit(root, "serve.request"))):
        assert not any(secret in text for secret in secrets)


def test_a_revoked_token_is_refused_within_the_sync_interval(gateway):
    """The gateway keeps an authenticated token for `sync_seconds` (0.5 s here): a revocation lands within it."""
    made = json.loads(_ok(run_appliance("tokens", "create", "--user", "erin", "--json", env=gateway["admin"])))
    client = _client(gateway, made["token"])
    assert [m.id for m in client.models.list()][0] == "smollm2"
    _ok(run_appliance("tokens", "revoke", made["id"], env=gateway["admin"]))

    def refused() -> bool:
        try:
            client.models.list()
        except openai.AuthenticationError as exc:
            return "revoked" in str(exc)
        return False

    started = time.monotonic()
    assert _wait(refused, timeout=5.0) and time.monotonic() - started < 3.0


def test_every_request_is_one_audit_event_with_scrubbed_text(gateway):
    root = gateway["root"]
    client = _client(gateway)
    prompt = "Please reset the password for jane.doe@example.org by tomorrow."
    reply = client.chat.completions.create(model="triage", messages=[{"role": "user", "content": prompt}],
                                           max_tokens=12, temperature=0)
    def answered() -> list[dict]:
        return [e for e in _audit(root, "serve.request") if e["object"] == "triage" and e["details"]["route"] == "chat"
                and e["details"]["status"] == 200 and "EMAIL_ADDRESS" in (e["details"].get("prompt") or "")]

    assert _wait(answered)
    time.sleep(1.0)
    [event] = answered()
    artifact = json.loads(_ok(run_appliance("artifacts", "show", "triage", "--json", env=gateway["env"])))
    assert event["actor"] == "erin" and event["object"] == "triage" and event["outcome"] == "ok"
    assert event["sha256"] == artifact["manifest_digest"]
    details = event["details"]
    assert details["usage"] == {"prompt": reply.usage.prompt_tokens, "completion": reply.usage.completion_tokens}
    assert details["latency_ms"] > 0 and details["text_kept"] == "scrubbed"
    assert details["served_by"].startswith("llama-server-lora (instance ")
    assert "jane.doe@example.org" not in json.dumps(event) and "<EMAIL_ADDRESS>" in details["prompt"], details
    assert hashlib.sha256(prompt.encode()).hexdigest() not in json.dumps(event)

    anonymous = httpx.get(gateway["url"] + "/metrics").text  # no token: nothing names an adapter
    assert 'model="triage"' not in anonymous and 'model="smollm2"' in anonymous
    assert "adapters" not in httpx.get(gateway["url"] + "/readyz").json()
    bearer = {"Authorization": f"Bearer {gateway['tokens']['all']}"}
    assert httpx.get(gateway["url"] + "/readyz", headers=bearer).json()["adapters"] == ["triage"]
    metrics = httpx.get(gateway["url"] + "/metrics", headers=bearer).text
    assert 'appliance_requests_total{model="triage",status="200"}' in metrics
    assert 'appliance_request_seconds_bucket{le="+Inf",model="triage"}' in metrics
    assert 'appliance_tokens_total{kind="completion",model="triage"}' in metrics
    assert "appliance_adapters_loaded 1.0" in metrics


def test_a_backend_killed_mid_stream_gives_a_clean_error_and_comes_back(gateway):
    client = _client(gateway)
    restarts = len(_audit(gateway["root"], "serve.backend_restart"))
    [pid] = _backend_pids(gateway["root"])
    stream = client.chat.completions.create(model="triage", messages=[{"role": "user", "content": TICKET}],
                                            max_tokens=400, stream=True)
    with pytest.raises(openai.APIError, match="backend stopped while answering"):
        for i, _chunk in enumerate(stream):
            if i == 3:
                os.kill(pid, signal.SIGKILL)
    reply = client.chat.completions.create(model="triage", messages=[{"role": "user", "content": TICKET}],
                                           max_tokens=8)
    assert reply.choices[0].message.content
    assert _backend_pids(gateway["root"]) not in ([], [pid])
    assert "appliance_backend_restarts_total 1.0" in httpx.get(gateway["url"] + "/metrics").text
    assert _wait(lambda: len(_audit(gateway["root"], "serve.backend_restart")) == restarts + 1)


def _agreement(gguf: Path, adapter: Path, merged: Path, rows: list[dict]) -> dict:
    """Greedy next-token agreement, position by position over `rows`, of the merged model and of the plain
    base with the base + dynamic LoRA (the path the merged copy replaces)."""
    import numpy as np
    from llama_cpp import Llama

    def model(path: Path, lora: Path | None = None) -> Llama:
        return Llama(model_path=str(path), lora_path=str(lora) if lora else None, logits_all=True, n_ctx=1024,
                     n_threads=os.cpu_count() or 1, verbose=False)

    def argmax(llm: Llama, seq: list[int]):
        llm.reset()
        llm.eval(seq)
        return np.asarray(llm.scores[: len(seq)]).argmax(-1)

    dynamic, plain, folded = model(gguf, adapter), model(gguf), model(merged)
    same = {"merged": 0, "base": 0}
    total = 0
    for row in rows:
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in row["messages"])
        seq = dynamic.tokenize(text.encode(), add_bos=False, special=True)
        reference = argmax(dynamic, seq)
        same["merged"] += int((argmax(folded, seq) == reference).sum())
        same["base"] += int((argmax(plain, seq) == reference).sum())
        total += len(seq)
    for llm in (dynamic, plain, folded):
        llm.close()
    return {k: v / total for k, v in same.items()} | {"positions": total}


def test_a_hot_adapter_is_served_from_a_merged_copy_that_keeps_what_it_learned(released, tmp_path):
    import pyarrow.parquet as pq

    from appliance.serve.merge import MergeError, merge_lora

    root = released[0]
    home = root / "home"
    gguf = next((home / "models" / "smollm2").rglob("*.gguf"))
    adapter = home / "artifacts" / "triage" / "adapter.gguf"

    # Fidelity: the merged copy (adapted tensors as Q8_0) answers as the base + LoRA does, position by position,
    # within the noise of quantisation (the Q4_1 base and its f32 copy agree on about 93%); the base does not.
    merged = merge_lora(gguf, adapter, tmp_path / "merged.gguf", quantization="Q8_0")
    rows = pq.read_table(home / "datasets" / "helpdesk" / "v1" / "eval.parquet").to_pylist()[:8]
    figures = _agreement(gguf, adapter, merged, rows)
    assert figures["positions"] > 500 and figures["merged"] >= 0.90, figures
    assert figures["base"] <= figures["merged"] - 0.25, figures  # the adapter matters on this text
    with pytest.raises(MergeError, match="not a GGUF LoRA adapter"):
        merge_lora(gguf, gguf, tmp_path / "wrong.gguf")
    assert not (tmp_path / "wrong.gguf").exists() and not (tmp_path / "wrong.gguf.tmp").exists()

    # The backend: after two requests with no other adapter asked for, it merges in the background and then
    # serves the adapter from the merged copy; unloading the adapter drops the copy.
    sock, merge_dir = tmp_path / "b.sock", tmp_path / "merged"
    log = open(tmp_path / "backend.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "appliance.serve.binding_server", "--socket", str(sock), "--model",
                             "smollm2", "--gguf", str(gguf), "--merge-dir", str(merge_dir), "--merge-after", "2",
                             "--hot-window", "300"], stdout=log, stderr=subprocess.STDOUT)
    try:
        client = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://backend", timeout=120)

        def health() -> dict | None:
            try:
                return client.get("/health").json()
            except (httpx.HTTPError, OSError):
                assert proc.poll() is None, (tmp_path / "backend.log").read_text()
                return None

        assert _wait(health, 60)
        assert client.put("/adapters/triage", json={"path": str(adapter), "digest": "d" * 64}).status_code == 200
        body = {"model": "triage", "messages": [{"role": "user", "content": TICKET}], "max_tokens": 8,
                "temperature": 0}
        paths = [client.post("/v1/chat/completions", json=body).json()["system_fingerprint"] for _ in range(2)]
        assert paths == ["llamacpp-lora", "llamacpp-lora"]
        assert _wait(lambda: health()["merged"] == "triage", 90), (tmp_path / "backend.log").read_text()
        [copy] = merge_dir.iterdir()
        assert copy.name == "d" * 64 + ".gguf" and copy.stat().st_mode & 0o777 == 0o600
        reply = client.post("/v1/chat/completions", json=body).json()
        assert reply["system_fingerprint"] == "llamacpp-merged" and reply["choices"][0]["message"]["content"]
        base = client.post("/v1/chat/completions", json={**body, "model": "smollm2"}).json()
        assert base["system_fingerprint"] == "llamacpp-base"
        assert client.delete("/adapters/triage").status_code == 200
        assert health()["merged"] is None and not list(merge_dir.iterdir())
        assert client.post("/v1/chat/completions", json=body).status_code == 404
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@pytest.mark.skipif(not VLLM, reason="vLLM serves on a CUDA GPU with the vllm package (the gpu extra)")
def test_vllm_serves_base_and_adapter_through_the_same_gateway(released):
    """Where a GPU and vLLM are present: the same gateway over `vllm serve --enable-lora`, adapters loaded at run
    time by name."""
    root, env, *_ , tokens = released
    from tests.conftest import free_port

    port = free_port()
    exe = Path(sys.executable).with_name("appliance")
    log = root / "vllm-gateway.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(exe), "serve", "--backend", "vllm", "--port", str(port)],
                                env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        assert _wait(lambda: _ready(url), timeout=600), log.read_text()[-3000:]
        client = openai.OpenAI(base_url=url + "/v1", api_key=tokens["all"], max_retries=0, timeout=120)
        assert "triage" in [m.id for m in client.models.list()]
        answers = [client.chat.completions.create(model=m, messages=[{"role": "user", "content": TICKET}],
                                                  max_tokens=32, temperature=0).choices[0].message.content
                   for m in ("smollm2", "triage")]
        assert all(answers) and answers[0] != answers[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_a_status_set_by_hand_is_not_served(gateway):
    """Someone with the database marks a signed, unapproved artifact approved: the trail holds no approval statement
    for it, so the gateway refuses to load it and says why."""
    root, env = gateway["root"], gateway["env"]
    _ok(run_appliance("package", "triage", "--name", "triage-flipped", env=env))
    _ok(run_appliance("sign", "triage-flipped", env=env))
    with home_db(root / "home").begin() as conn:
        conn.execute(update(artifact).where(artifact.c.name == "triage-flipped")
                     .values(status="approved", decided_by="oscar"))
    denied = _wait(lambda: [e for e in _audit(root, "serve.load") if e["object"] == "triage-flipped"])
    assert denied and denied[-1]["outcome"] == "denied", denied
    assert denied[-1]["reason"] == "no approval statement by a pinned officer's key"
    assert "triage-flipped" not in [m.id for m in _client(gateway).models.list()]


def test_an_approval_forged_with_the_appliances_own_code_is_refused_at_serve_time(gateway):
    """The service account (anyone who can write the database) appends `artifact.approve` in the officer's name
    with the appliance's own `record_alone`, and signs a checkpoint over it: the trail holds it, the gateway
    refuses to load the adapter, naming the event, since no officer's own key signed it."""
    from appliance.audit.events import Event
    from appliance.audit.log import checkpoint_now, record_alone
    from appliance.config import load_settings
    from appliance.context import Actor, Context
    from appliance.db import connect

    root, env = gateway["root"], gateway["env"]
    _ok(run_appliance("package", "triage", "--name", "triage-forged", env=env))
    _ok(run_appliance("sign", "triage-forged", env=env))
    shown = json.loads(_ok(run_appliance("artifacts", "show", "triage-forged", "--json", env=env)))
    settings = load_settings({**os.environ, **env})
    service = Context(settings, connect(settings))
    seq = record_alone(service, Event("artifact.approve", "artifact", "triage-forged", reason="approved",
                                      object_sha256=shown["manifest_digest"]), Actor("oscar", "officer", "session"))
    checkpoint_now(service)
    denied = _wait(lambda: [e for e in _audit(root, "serve.load") if e["object"] == "triage-forged"])
    assert denied and denied[-1]["outcome"] == "denied", denied
    assert denied[-1]["reason"] == f"the approval statement of event {seq}: the statement is malformed"
    assert "triage-forged" not in [m.id for m in _client(gateway).models.list()]


def test_the_gateway_serves_without_the_key_passphrase_and_signs_nothing(gateway):
    """As on an install: the gateway's process has no passphrase, serves, records, and leaves signing to the
    signer processes (the checkpoints it needs for approvals are the CLI's)."""
    environ = dict(line.split("=", 1) for line in
                   Path(f"/proc/{gateway['proc'].pid}/environ").read_text().split("\0") if "=" in line)
    assert not environ.get("APPLIANCE_KEY_PASSPHRASE") and not environ.get("APPLIANCE_KEY_PASSPHRASE_FILE")
    root = gateway["root"]
    covered = select(func.coalesce(func.max(audit_checkpoint.c.tree_size), 0))
    with home_db(root / "home").connect() as conn:
        before = conn.execute(covered).scalar()
    for _ in range(3):
        _client(gateway).chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Hi"}],
                                                 max_tokens=2)
    with home_db(root / "home").connect() as conn:
        newest = conn.execute(select(func.max(audit_event.c.seq))).scalar()
        after = conn.execute(covered).scalar()
    assert after == before < newest  # its events wait for the signer
    log = gateway["log"].read_text()
    assert "Traceback" not in log and "passphrase" not in log, log[-2000:]


def test_a_locked_audit_database_refuses_requests_then_recovers(gateway):
    """The trail cannot record (another process holds the database's write lock past the writer's 5 s): the
    answer is withheld with 503, /readyz says not ready, and once the lock goes the gateway serves again and
    records the outage."""
    root, url = gateway["root"], gateway["url"]
    client = _client(gateway)
    question = [{"role": "user", "content": "Say OK."}]
    client.chat.completions.create(model="smollm2", messages=question, max_tokens=2)  # the token is cached
    # Another process holding SQLite's exclusive lock: the driver's own connection and BEGIN EXCLUSIVE.
    holder = sqlite3.connect(root / "home" / "appliance.db", timeout=30, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(openai.InternalServerError) as refused:
            client.chat.completions.create(model="smollm2", messages=question, max_tokens=2)
        assert refused.value.status_code == 503 and refused.value.body["code"] == "audit_unavailable"
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["audit"].startswith("the audit trail cannot record")
        with pytest.raises(openai.InternalServerError):  # refused up front now, without asking the model
            client.chat.completions.create(model="smollm2", messages=question, max_tokens=2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _wait(lambda: httpx.get(f"{url}/readyz", timeout=10).status_code == 200, timeout=20)
    answer = client.chat.completions.create(model="smollm2", messages=question, max_tokens=2)
    assert answer.id
    outage = _audit(root, "serve.audit")
    assert outage and "audit writes failed from" in outage[-1]["reason"] and outage[-1]["details"]["refused"] >= 1
    assert any(e["details"].get("response_id") == answer.id for e in _audit(root, "serve.request"))


def test_revoking_an_artifact_or_its_signing_key_unloads_it(gateway):
    """Runs last: revokes `triage`; approves another artifact while serving, then revokes its signing key."""
    root, env, officer, admin = gateway["root"], gateway["env"], gateway["officer"], gateway["admin"]
    client = _client(gateway)
    _ok(run_appliance("revoke", "triage", "--reason", "superseded in this test", env=officer))
    assert _wait(lambda: [m.id for m in client.models.list()] == ["smollm2"], timeout=10)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="triage", messages=[{"role": "user", "content": "x"}], max_tokens=2)
    assert any(e["object"] == "triage" for e in _audit(root, "serve.unload"))
    shown = json.loads(_ok(run_appliance("artifacts", "show", "triage", "--json", env=env)))
    assert shown["status"] == "revoked" and shown["decided_by"] == "oscar"

    # Another artifact of the run, approved while serving, loads without a restart ...
    _release(root, env, officer, "triage", "triage-2")
    assert _wait(lambda: "triage-2" in [m.id for m in client.models.list()], timeout=15)
    # ... and once the key that signed it is revoked, it is unloaded.
    keys = json.loads(_ok(run_appliance("keys", "list", "--json", env=admin)))
    signer = next(k for k in keys if k["purpose"] == "artifact" and k["status"] == "active")
    _ok(run_appliance("keys", "rotate", "--purpose", "artifact", env=admin))
    _ok(run_appliance("keys", "revoke", signer["key_id"], "--reason", "test: key compromised", env=admin))
    revoked = run_appliance("verify", "triage-2", env=env)
    assert revoked.returncode == 4 and "signed with revoked key" in revoked.stdout
    assert _wait(lambda: [m.id for m in client.models.list()] == ["smollm2"], timeout=10)
    assert _wait(lambda: any(e["object"] == "triage-2" for e in _audit(root, "serve.unload")))


def test_after_kill_9_under_load_every_answered_request_has_its_event(gateway):
    """Runs last (it kills the gateway): 16 clients on 4 tokens; the gateway is killed with SIGKILL mid-load;
    every answer a client received (its response id) is in the trail."""
    root, admin = gateway["root"], gateway["admin"]
    tokens = [gateway["tokens"]["all"], gateway["tokens"]["burst"]] + [
        json.loads(_ok(run_appliance("tokens", "create", "--user", "erin", "--json", env=admin)))["token"]
        for _ in range(2)]
    answered: list[str] = []
    stop = threading.Event()

    def client(token: str) -> None:
        api = openai.OpenAI(base_url=gateway["url"] + "/v1", api_key=token, max_retries=0, timeout=30)
        while not stop.is_set():
            try:
                reply = api.chat.completions.create(model="smollm2", max_tokens=4,
                                                    messages=[{"role": "user", "content": "Say OK."}])
                answered.append(reply.id)
            except openai.APIError:
                time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(tokens[i % 4],), daemon=True) for i in range(16)]
    for t in threads:
        t.start()
    try:
        assert _wait(lambda: len(answered) >= 20, timeout=120), "the load never got going"
        backends = _backend_pids(root)
        gateway["proc"].send_signal(signal.SIGKILL)
        gateway["proc"].wait(10)
    finally:
        stop.set()  # the clients stop, whatever happened
    for t in threads:
        t.join(60)
    for pid in backends:  # the backend is the gateway's child: killed with it, as systemd's cgroup would
        os.kill(pid, signal.SIGKILL)
    recorded = {e["details"].get("response_id") for e in _audit(root, "serve.request")}
    missing = [rid for rid in answered if rid not in recorded]
    assert len(answered) >= 20 and not missing, f"{len(missing)} of {len(answered)} answers have no event"
    # The signer anchors what the gateway wrote; the trail verifies.
    officer = gateway["officer"]
    _ok(run_appliance("audit", "checkpoint", "--out", root / "kept-checkpoint.json", env=officer))
    verified = run_appliance("audit", "verify", env=officer)
    assert verified.returncode == 0, verified.stdout + verified.stderr
