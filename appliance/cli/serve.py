"""`appliance serve`: the backend and the OpenAI-compatible gateway."""

from __future__ import annotations

import ipaddress
import os

import click

from appliance.cli.app import App, cli, pass_app


def build_gateway(app: App, backend_kind: str, model_name: str | None):
    """The gateway for the registered base model (checked against its digest) and the chosen backend, under the
    installed serving policy."""
    from appliance import policies
    from appliance.context import Actor
    from appliance.errors import InputError
    from appliance.models.registry import get_model, list_models, model_dir
    from appliance.serve.backends import BindingBackend, VllmBackend
    from appliance.serve.gateway import Gateway
    from appliance.serve.llama_server import LlamaServerBackend
    from appliance.serve.llamacpp import verified_gguf
    ctx = app.system_ctx.acting_as(Actor("gateway", "system", "system"))
    policy = policies.load(ctx, "serving").policy
    if model_name is None:
        servable = [m.name for m in list_models(app.engine) if (m.hf_dir if backend_kind == "vllm"
                                                                else m.gguf_file)]
        if len(servable) != 1:
            raise InputError(f"name the base model with --model (registered: {', '.join(servable) or 'none'})")
        model_name = servable[0]
    model, files = get_model(app.engine, model_name)
    run_dir = app.settings.home / "run"
    run_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(run_dir, 0o700)
    threads = app.settings.file.llama.n_threads or os.cpu_count() or 1
    if backend_kind == "llamacpp":
        gguf = verified_gguf(app.settings, model, files)
        digest = next(f.sha256 for f in files if f.relpath == model.gguf_file)
        backend = LlamaServerBackend(model.name, gguf, run_dir, threads, app.settings.file.llama.n_ctx,
                                     parallel=policy.llama_server.parallel,
                                     drain_seconds=policy.llama_server.drain_seconds)
    elif backend_kind == "llamacpp-binding":
        gguf = verified_gguf(app.settings, model, files)
        digest = next(f.sha256 for f in files if f.relpath == model.gguf_file)
        backend = BindingBackend(model.name, gguf, run_dir / "backend.sock", threads, app.settings.file.llama.n_ctx,
                                  merge_after=policy.hot_adapter.merge_after_requests,
                                  hot_window=policy.hot_adapter.window_seconds)
    else:
        if not model.hf_dir:
            raise InputError(f"model {model.name!r} has no safetensors copy for vLLM to load")
        digest = model.digest
        backend = VllmBackend(model.name, model_dir(app.settings, model) / model.hf_dir, run_dir)
    return Gateway(ctx, backend, model.name, digest, policy, app.settings.logs_dir)


@cli.command()
@click.option("--backend", "backend_kind", type=click.Choice(["llamacpp", "llamacpp-binding", "vllm"]),
              default="llamacpp", show_default=True,
              help="llama.cpp's llama-server on CPU (batched), the one-sequence llama-cpp-python binding (kept for "
                   "comparison), or vLLM on a CUDA GPU.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback exposes the gateway to the network.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--model", "model_name", help="The registered base model (default: the only one registered).")
@pass_app
def serve(app: App, backend_kind: str, host: str, port: int, model_name: str | None) -> None:
    """Serve the base model and every approved adapter behind an OpenAI-compatible API.

    Runs as the appliance's service account. Clients send `Authorization: Bearer <API token>`
    (`appliance tokens create`). Approving an adapter loads it (after verifying it) and revoking
    unloads it, within the policy's sync_seconds, without a restart. Stop with Ctrl-C or SIGTERM."""
    from appliance.errors import InputError
    from appliance.serve import http_server
    from appliance.serve.gateway import create_app

    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise InputError(f"--host {host!r}: give an IP address (127.0.0.1, ::1, or an interface's)") from None
    import fcntl
    import logging
    import socket

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    served = logging.getLogger("appliance.serve")
    served.addHandler(handler)
    served.setLevel(logging.INFO)
    gateway = build_gateway(app, backend_kind, model_name)
    lock = open(app.settings.home / "run" / "serve.lock", "w")  # held until the process ends  # noqa: SIM115
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise InputError(f"another `appliance serve` is running for {app.settings.home}") from None
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    if not loopback:
        click.echo(f"warning: listening on {host}, reachable from the network; put TLS in front", err=True)
    click.echo(f"serving {gateway.model} with {backend_kind} at http://{host}:{port}/v1 "
               f"(backend log {gateway.log})", err=True)
    http_server.run(create_app(gateway), host, port, gateway.policy)
