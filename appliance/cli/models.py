"""`appliance models ...` and `appliance chat`."""

from __future__ import annotations

import sys

import click

from appliance.cli.app import App, cli, emit_json, pass_app
from appliance.cli.params import InFile, InTree
from appliance.errors import InputError
from appliance.identity.roles import require
from appliance.userfiles import InputFile, InputTree


@cli.group()
def models() -> None:
    """Register and inspect base models."""


def _model_dict(model, files=None) -> dict:
    data = model.as_dict()
    if files is not None:
        data["files"] = [{"path": f.relpath, "sha256": f.sha256, "size": f.size} for f in files]
    return data


@models.command("import")
@click.argument("path", required=False, type=InTree())
@click.option("--embedded", metavar="NAME", help="Import a model shipped with the appliance (smollm2).")
@click.option("--name", help="Registry name (default: the embedded name, or the file or folder name).")
@click.option("--hf-copy", is_flag=True, help="For a GGUF file: also write a safetensors copy for training.")
@click.option("--json", "as_json", is_flag=True, help="Print the registered model as JSON.")
@pass_app
def models_import(app: App, path: InputTree | None, embedded: str | None, name: str | None, hf_copy: bool,
                  as_json: bool) -> None:
    """Import a base model: --embedded NAME, a GGUF file, or a Hugging Face folder (safetensors only).

    PATH is read with your own permissions. Every file is copied under APPLIANCE_HOME/models/NAME and its
    sha256 recorded. Pickle weights, symlinks leaving the source and incomplete folders are refused.
    """
    from appliance.models import registry

    if (path is None) == (embedded is None):
        raise click.UsageError("give either PATH or --embedded NAME")
    if embedded is not None:
        result = registry.import_embedded(app.ctx, embedded, name)
    else:
        result = registry.import_path(app.ctx, path, name, hf_copy=hf_copy,
                                      say=lambda line: click.echo(line, err=as_json))
    m = result.model
    if as_json:
        emit_json({**_model_dict(m), "created": result.created})
        return
    verb = "imported" if result.created else "already registered"
    click.echo(f"{verb}: {m.name} ({m.architecture or 'unknown architecture'}, {m.total_bytes / 1e6:.0f} MB, "
               f"sha256 {m.digest[:16]}...)")
    if m.gguf_file:
        click.echo(f"  llama.cpp: {m.gguf_file}")
    if m.hf_dir:
        click.echo(f"  training:  {m.hf_dir}/ (safetensors)")
    if registry.chat_template(app.settings, m) is None:
        click.echo(f"  chat template: none (a base model): chat datasets are refused for it; "
                   f"{registry.NO_TEMPLATE_REMEDY}")


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def models_list(app: App, as_json: bool) -> None:
    """List registered base models."""
    from appliance.models import registry

    require(app.ctx, "read", "model", "*")
    found = registry.list_models(app.engine)
    if as_json:
        emit_json([_model_dict(m) for m in found])
        return
    if not found:
        click.echo("no models registered")
    for m in found:
        forms = "+".join(f for f, present in (("gguf", m.gguf_file), ("hf", m.hf_dir)) if present)
        click.echo(f"{m.name:<24} {m.architecture or '-':<20} {forms:<8} {m.total_bytes / 1e6:>8.0f} MB  "
                   f"{m.digest[:16]}  {m.origin}")


@models.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def models_show(app: App, name: str, as_json: bool) -> None:
    """Show one model with every file and its sha256."""
    from appliance.models import registry

    require(app.ctx, "read", "model", name)
    m, files = registry.get_model(app.engine, name)
    if as_json:
        emit_json(_model_dict(m, files))
        return
    for key, value in _model_dict(m).items():
        click.echo(f"{key:<14} {value}")
    click.echo("files:")
    for f in files:
        click.echo(f"  {f.sha256}  {f.size:>12}  {f.relpath}")


def read_prompt(prompt: str | None, prompt_file: InputFile | None) -> str:
    """The prompt from exactly one source: PROMPT, `-` (standard input) or --prompt-file (read as the caller).
    A file's or stdin's final line break is not part of the prompt."""
    if prompt is not None and prompt_file is not None:
        raise InputError("give the prompt once: as PROMPT, as `-` (standard input) or with --prompt-file, "
                         "not both")
    if prompt is None and prompt_file is None:
        raise InputError("no prompt: give PROMPT, `-` to read it from standard input, or --prompt-file FILE")
    if prompt_file is not None:
        try:
            text = prompt_file.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{prompt_file.name}: the prompt file is not UTF-8 text") from None
        where = prompt_file.name
    elif prompt == "-":
        text, where = sys.stdin.read(), "standard input"
    else:
        return prompt
    text = text.removesuffix("\n").removesuffix("\r")
    if not text.strip():
        raise InputError(f"the prompt from {where} is empty")
    return text


@cli.command()
@click.argument("model")
@click.argument("prompt", required=False)
@click.option("--prompt-file", type=InFile(), help="Read the prompt from this file (UTF-8, read as you).")
@click.option("--system", help="A system message.")
@click.option("--max-tokens", default=128, show_default=True, type=click.IntRange(1, 8192))
@click.option("--json", "as_json", is_flag=True, help="Print the completion and token counts as JSON.")
@pass_app
def chat(app: App, model: str, prompt: str | None, prompt_file: InputFile | None, system: str | None,
         max_tokens: int, as_json: bool) -> None:
    """One chat completion from a registered model through llama.cpp (greedy), digest checked first.

    The prompt is PROMPT, or `-` to read it from standard input, or --prompt-file FILE: the last two keep it
    out of `ps` and the shell's history. Each chat is an audit event (`model.chat`): who asked, the model, and
    the prompt's and the answer's lengths and keyed digests, never their text."""
    from appliance.models.chat import chat as chat_once

    text = read_prompt(prompt, prompt_file)
    result = chat_once(app.ctx, model, text, system=system, max_tokens=max_tokens)
    if as_json:
        emit_json({"model": result.model, "text": result.text, "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": result.completion_tokens, "seconds": round(result.seconds, 3)})
        return
    click.echo(result.text)
    click.echo(f"[{result.model}: {result.completion_tokens} tokens in {result.seconds:.2f} s, "
               f"{result.tokens_per_second:.0f} tokens/s]", err=True)
