"""The gateway's parts that need no model: the serving policy, per-token limits, request checks, and the vLLM
launcher's command line and environment."""

import hashlib
import hmac
import json

import pytest

from appliance.config import ConfigError
from appliance.policies import path_of
from appliance.policies import read as read_policy
from appliance.serve.backends import BindingBackend
from appliance.serve.gateway import ApiError, RateLimiter
from appliance.serve.policy import ServingPolicy

pytestmark = pytest.mark.unit


def test_the_shipped_serving_policy_loads_and_a_bad_one_names_every_problem(tmp_path):
    import yaml

    policy, digest = read_policy("serving")
    shipped = path_of("serving").read_bytes()
    assert digest == hashlib.sha256(shipped).hexdigest()
    written = yaml.safe_load(shipped)

    def same(section, model) -> None:  # every value the file writes is the value the policy holds
        for key, value in section.items():
            if isinstance(value, dict):
                same(value, getattr(model, key))
            else:
                assert getattr(model, key) == value, key
    same(written, policy)
    bad = tmp_path / "serving.yaml"
    bad.write_text("version: 1\nlimits: {max_tokens: 10, default_max_tokens: 20, burst: 0}\n"
                   "audit_text: everything\nretention_days: 3\noutput_filter: off\n"
                   "hot_adapter: {merge_after_requests: -1}\n")
    with pytest.raises(ConfigError) as caught:
        read_policy("serving", bad)
    message = str(caught.value)
    assert str(bad) in message
    for problem in ("burst", "audit_text", "retention_days", "merge_after_requests"):
        assert problem in message, message
    unquoted = tmp_path / "off.yaml"
    unquoted.write_text("output_filter: off\n")  # YAML's bare off is false: read as the mode it means
    assert read_policy("serving", unquoted)[0].output_filter == "off"
    with pytest.raises(ConfigError, match="default_max_tokens must not exceed max_tokens"):
        (tmp_path / "d.yaml").write_text("limits: {max_tokens: 10, default_max_tokens: 20}\n")
        read_policy("serving", tmp_path / "d.yaml")


def test_an_installed_serving_policy_naming_llama_server_engine_still_loads(tmp_path):
    """The llama_server section was named engine before: a policy installed then loads as it was written; a file
    giving both names is refused rather than one silently winning."""
    older = tmp_path / "older.yaml"
    older.write_text("engine: {parallel: 4, drain_seconds: 30}\n")
    policy = read_policy("serving", older)[0]
    assert (policy.llama_server.parallel, policy.llama_server.drain_seconds) == (4, 30)
    both = tmp_path / "both.yaml"
    both.write_text("llama_server: {parallel: 4}\nengine: {parallel: 8}\n")
    with pytest.raises(ConfigError, match="engine"):
        read_policy("serving", both)


def test_the_rate_limiter_refuses_past_the_burst_and_the_concurrency_cap(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("appliance.serve.gateway.limits.time.monotonic", lambda: clock[0])
    limiter = RateLimiter(rate_per_minute=60, burst=3, max_concurrent=2)
    limiter.acquire("a")
    limiter.acquire("a")
    with pytest.raises(ApiError) as busy:
        limiter.acquire("a")  # two in flight
    assert busy.value.status == 429 and busy.value.code == "concurrency_limit" and busy.value.headers["Retry-After"]
    limiter.acquire("b")  # another token has its own limits
    limiter.release("a")
    limiter.acquire("a")  # the third of the burst
    limiter.release("a")
    limiter.release("a")
    with pytest.raises(ApiError) as empty:
        limiter.acquire("a")
    assert empty.value.code == "rate_limit_exceeded" and empty.value.headers["Retry-After"] == "1"
    clock[0] += 1.0  # one request a second comes back
    limiter.acquire("a")


def test_the_binding_backend_runs_on_a_private_socket(tmp_path, monkeypatch):
    monkeypatch.setenv("APPLIANCE_TOKEN", "apl_x_secret")
    backend = BindingBackend("smollm2", tmp_path / "m.gguf", tmp_path / "run" / "backend.sock", 2, 2048,
                              merge_after=8, hot_window=60)
    command = backend.command()
    assert command[1:3] == ["-m", "appliance.serve.binding_server"]
    assert command[command.index("--socket") + 1] == str(tmp_path / "run" / "backend.sock")
    # a hot adapter's merged copy lives beside the socket, in the private run folder
    assert command[command.index("--merge-dir") + 1] == str(tmp_path / "run" / "merged")
    assert command[command.index("--merge-after") + 1] == "8" and command[command.index("--hot-window") + 1] == "60"
    env = backend.env()
    assert "APPLIANCE_TOKEN" not in env and env["HF_HUB_OFFLINE"] == "1"


def test_the_output_filter_and_the_kept_text_use_the_ingest_scrubber(staff, tmp_path):
    from appliance.config import load_settings
    from appliance.context import Context
    from appliance.db import connect
    from appliance.serve.gateway import Gateway, Outcome
    from appliance.serve.gateway.stream import _redacted

    settings = load_settings()
    ctx = Context(settings, connect(settings))
    backend = BindingBackend("smollm2", tmp_path / "m.gguf", tmp_path / "s.sock", 1, 512)
    policy = ServingPolicy(output_filter="redact", audit_text="scrubbed")
    gateway = Gateway(ctx, backend, "smollm2", "0" * 64, policy, tmp_path)
    try:
        outcome = Outcome()
        text = "Write to jane.doe@example.org or call 555-867-5309 today."
        redacted = gateway.filter_output(text, outcome)
        assert "jane.doe@example.org" not in redacted and "<EMAIL_ADDRESS>" in redacted
        assert outcome.entities.get("EMAIL_ADDRESS") == 1
        kept = gateway.kept_text(text)
        assert "jane.doe@example.org" not in kept and "<EMAIL_ADDRESS>" in kept
        flagging = Gateway(ctx, backend, "smollm2", "0" * 64, ServingPolicy(output_filter="flag",
                                                                           audit_text="none"), tmp_path)
        flagged = Outcome()
        assert flagging.filter_output(text, flagged) == text and flagged.entities.get("EMAIL_ADDRESS") == 1
        assert flagging.kept_text(text) is None
        flagging.audit.close()
        digest = Gateway(ctx, backend, "smollm2", "0" * 64, ServingPolicy(), tmp_path)
        kept = digest.kept_text("abc")  # keyed: a dictionary of likely prompts does not reverse it
        assert kept.startswith("hmac-sha256:") and len(kept) == len("hmac-sha256:") + 64
        assert kept[12:] != hashlib.sha256(b"abc").hexdigest() and digest.kept_text("abc") == kept
        key = (settings.keys_dir / "serve-text.key")
        assert key.stat().st_mode & 0o777 == 0o600
        assert kept[12:] == hmac.new(key.read_bytes(), b"abc", hashlib.sha256).hexdigest()
        digest.audit.close()
    finally:
        gateway.audit.close()
    held = [{"id": "c", "choices": [{"index": 0, "delta": {"content": "jane"}, "finish_reason": None}]},
            {"id": "c", "choices": [{"index": 0, "delta": {"content": ".doe@"}, "finish_reason": None}]},
            {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}]
    whole, ending = _redacted(held, "<EMAIL_ADDRESS>", "chat")
    assert whole["choices"][0]["delta"]["content"] == "<EMAIL_ADDRESS>"
    assert ending["choices"][0]["finish_reason"] == "length"


def test_the_gateways_audit_writer_fails_closed_is_bounded_and_recovers(staff):
    """The gateway's writer with its database locked by another process: the request's write fails within the
    writer's wait (never an answer without its event), new requests are refused up front, a full queue refuses
    instead of growing; once the lock goes, the outage is recorded and writes work again."""
    import asyncio
    import sqlite3
    import time

    from sqlalchemy import select

    from appliance.audit.events import Event
    from appliance.config import load_settings
    from appliance.context import Context
    from appliance.db import connect
    from appliance.db.tables import audit_event
    from appliance.serve.audit_writer import AuditUnavailable, AuditWriter
    from appliance.serve.gateway import GATEWAY

    settings = load_settings()
    ctx = Context(settings, connect(settings)).acting_as(GATEWAY).not_signing()
    writer = AuditWriter(ctx, capacity=4, wait_seconds=1.0)
    request = Event("serve.request", "model", "smollm2", details={"status": 200})
    # A second process holding SQLite's exclusive lock: the driver's own connection and BEGIN EXCLUSIVE.
    holder = sqlite3.connect(settings.home / "appliance.db", timeout=30, isolation_level=None)
    try:
        assert asyncio.run(writer.write(GATEWAY, request)) > 0  # durable: it has its sequence number

        async def client_goes_away() -> None:  # a request cancelled while its event is being written
            task = asyncio.ensure_future(writer.write(GATEWAY, request))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(client_goes_away())
        writer.put(GATEWAY, request).cancel()
        assert asyncio.run(writer.write(GATEWAY, request)) > 0 and writer.thread.is_alive()  # the writer lives on
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(AuditUnavailable, match="the audit trail cannot record requests: database is locked"):
            asyncio.run(writer.write(GATEWAY, request))
        with pytest.raises(AuditUnavailable):
            writer.check()  # refused up front while writes fail
        stuck = writer.put(GATEWAY, request)  # the writer now tries again, and waits on the lock ...
        time.sleep(0.2)
        queued = [writer.put(GATEWAY, request) for _ in range(5)]  # ... while the queue fills: bounded
        assert "the audit queue is full" in str(queued[-1].exception(timeout=1))
        for _ in range(2):  # refused while the writer's next try waits on the lock: the outage counts them too
            with pytest.raises(AuditUnavailable):
                writer.check()
        full = sum(1 for q in queued if q.done() and "the audit queue is full" in str(q.exception()))
        holder.execute("ROLLBACK")
        deadline = time.monotonic() + 15
        while writer.failure is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert writer.failure is None
        stuck.exception(timeout=5)  # settled either way: failed with the outage, or written after it
        e = audit_event.c
        with ctx.engine.connect() as conn:
            outage = conn.execute(select(e.reason, e.details).where(e.action == "serve.audit")
                                  .order_by(e.seq.desc())).first()
        assert outage and "audit writes failed from" in outage[0]
        assert json.loads(outage[1])["refused"] == 1 + 2 + full, outage  # every refusal, none left for later
        assert asyncio.run(writer.write(GATEWAY, request)) > 0
    finally:
        holder.close()
        writer.close()


def test_an_instance_started_for_a_switch_stops_with_the_backend_even_when_the_switch_is_cancelled(tmp_path):
    """llama-server, really started: a switch's new instance is loading (not answering yet) when the gateway stops
    and cancels the switch; stopping the backend stops that instance too, and nothing starts after the stop."""
    import asyncio
    import contextlib
    import subprocess

    from appliance.errors import InputError
    from appliance.models.sources import embedded_gguf
    from appliance.serve.llama_server import LlamaServerBackend

    _, gguf, _ = embedded_gguf("smollm2")
    with pytest.raises(InputError, match=r"a Unix socket's path may have at most 107: give the appliance a shorter"):
        LlamaServerBackend("smollm2", gguf, tmp_path / ("h" * 100) / "run", 1, 512)  # refused before anything runs
    run_dir = tmp_path / "run"
    backend = LlamaServerBackend("smollm2", gguf, run_dir, 1, 512, parallel=1, drain_seconds=1.0)

    def instances() -> list[str]:
        found = subprocess.run(["pgrep", "-f", f"llama-server .*--host {run_dir}/llama-server/"],
                               capture_output=True, text=True)
        return found.stdout.split()

    async def cancelled_switch() -> None:
        switch = asyncio.ensure_future(backend.commit())
        for _ in range(100):  # until its llama-server process exists
            await asyncio.sleep(0.02)
            if instances():
                break
        switch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await switch

    try:
        asyncio.run(cancelled_switch())
        assert instances() and backend.instance is None  # started, never switched to
        backend.stop(grace=5.0)
        assert instances() == []
        with pytest.raises(RuntimeError, match="the backend is stopping"):
            asyncio.run(backend.commit())
        assert instances() == []
    finally:
        for pid in instances():
            subprocess.run(["kill", "-9", pid], check=False)


def test_the_gateways_own_counters_are_read_back_by_family_and_label():
    """What the console's Serving page and `doctor --gateway` read: the gateway's real /metrics exposition."""
    from appliance.serve.gateway.metrics import Metrics
    from appliance.serve.status import parse_metrics

    metrics = Metrics()
    metrics.requests.labels("triage", "200").inc(3)
    metrics.requests.labels("smollm2", "429").inc()
    metrics.tokens.labels("triage", "completion").inc(40)
    metrics.latency.labels("triage").observe(0.2)
    metrics.adapters.set(2)
    samples = parse_metrics(metrics.render().decode())
    by = {(s.name, s.label_text): s.value for s in samples}
    assert by == {("appliance_requests_total", "model=triage, status=200"): 3.0,
                  ("appliance_requests_total", "model=smollm2, status=429"): 1.0,
                  ("appliance_tokens_total", "kind=completion, model=triage"): 40.0,
                  ("appliance_adapters_loaded", ""): 2.0,
                  ("appliance_backend_restarts_total", ""): 0.0}
