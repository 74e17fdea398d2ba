"""`appliance data ...`."""

from __future__ import annotations

import json

import click

from appliance.cli.app import App, cli, emit_json, pass_app
from appliance.cli.params import InFile, OutFile
from appliance.identity.roles import require
from appliance.userfiles import InputFile, OutputFile

_FORMAT = click.option("--format", "fmt", default="auto", show_default=True,
                       type=click.Choice(["auto", "chat", "sharegpt", "instruction", "preference", "text"]))


@cli.group()
def data() -> None:
    """Ingest, lint, inspect and export datasets."""


@data.command("ingest")
@click.argument("files", nargs=-1, required=True, type=InFile())
@click.option("--name", required=True, help="Dataset name; each ingest makes NAME@vN.")
@_FORMAT
@click.option("--strict", is_flag=True, help="Refuse the whole batch if any record is bad.")
@click.option("--model", help="Registered model whose tokenizer counts tokens for lint.")
@click.option("--json", "as_json", is_flag=True, help="Print the version as JSON.")
@pass_app
def data_ingest(app: App, files: tuple[InputFile, ...], name: str, fmt: str, strict: bool, model: str | None,
                as_json: bool) -> None:
    """Validate, scrub personal data, lint, de-duplicate and version FILES (JSONL, JSON, CSV, Parquet).

    FILES are read with your own permissions; only the scrubbed records are stored. The installed scrub policy
    (`appliance policies list`) applies; the version records its digest and computed strictness."""
    from appliance.data.ingest import ingest
    from appliance.data.lint import summary_lines

    result = ingest(app.ctx, list(files), name, fmt=fmt, strict=strict, tokenizer_model=model)
    v = result.version
    if as_json:
        emit_json({**v.as_dict(full=False), "created": result.created, "scrub_report": v.scrub_report})
        return
    if not result.created:
        click.echo(f"unchanged: {v.ref} already holds exactly this content (sha256 {v.digest[:16]}...)")
        return
    how = "detected" if v.lineage.get("format_detected") else "given"
    click.echo(f"{v.ref}: {v.records} records ({v.train_records} train, {v.eval_records} eval), format {v.format} "
               f"({how}), {v.rejected} rejected, sha256 {v.digest[:16]}...")
    found = v.scrub_report["entities_found"]
    click.echo("scrubbed: " + (", ".join(f"{k} {n}" for k, n in found.items()) or "nothing found")
               + f" in {v.scrub_report['records_scrubbed']} records")
    again = v.scrub_report.get("second_pass") or {}
    if again:  # found only once their neighbours were replaced, and scrubbed as well before anything was stored
        click.echo("second pass scrubbed: " + ", ".join(f"{k} {n}" for k, n in again.items()))
    languages = v.scrub_report.get("texts_by_language") or {}
    if set(languages) - {"en"}:  # some texts were read by another language's named-entity pass
        click.echo("texts read by each language's spaCy pipeline: "
                   + ", ".join(f"{k} {n}" for k, n in languages.items()))
    residual = v.scrub_report["residual"]
    click.echo("residual scan: " + (", ".join(f"{k} {n}" for k, n in residual.items()) or "clean"))
    click.echo(f"canaries: {v.scrub_report['canaries']}")
    for line in summary_lines(v.lint_report):
        click.echo(f"lint: {line}")
    click.echo(f"lint: exact duplicates dropped: {v.lint_report['dropped_exact_duplicates']}")
    for reject in v.rejects[:10]:
        click.echo(f"rejected: {reject['file']}: {reject['where']}: {reject['field']}: {reject['reason']}")
    if len(v.rejects) > 10:
        click.echo(f"rejected: ... and {len(v.rejects) - 10} more (`appliance data show {v.ref} --json`)")


@data.command("lint")
@click.argument("files", nargs=-1, required=True, type=InFile())
@_FORMAT
@click.option("--model", help="Registered model whose tokenizer counts tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
def data_lint(app: App, files: tuple[InputFile, ...], fmt: str, model: str | None, as_json: bool) -> None:
    """Check FILES without storing anything: bad records, duplicates, conflicts, lengths."""
    from appliance.data.ingest import _tokenizer, limits_of, parse
    from appliance.data.lint import LintRecord, lint, summary_lines

    ctx = app.ctx
    require(ctx, "data.ingest", "dataset", "lint")
    parsed = parse(list(files), fmt, limits_of(ctx))
    tokenizer, context_length = _tokenizer(ctx, model)
    report = lint([LintRecord(rid, rec, parsed.fmt) for rid, rec in parsed.records], tokenizer=tokenizer,
                  context_length=context_length)
    report["format"] = parsed.fmt
    report["rejects"] = [r.as_dict() for r in parsed.rejects]
    if as_json:
        emit_json(report)
    else:
        click.echo(f"format: {parsed.fmt} ({'detected' if parsed.detected else 'given'})")
        for line in summary_lines(report):
            click.echo(line)
        click.echo(f"bad records: {len(parsed.rejects)}")
        for r in parsed.rejects[:20]:
            click.echo(f"  {r.line()}")
    if parsed.rejects:
        raise SystemExit(1)


@data.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def data_list(app: App, as_json: bool) -> None:
    """List dataset versions."""
    from appliance.data import versions

    require(app.ctx, "read", "dataset", "*")
    found = versions.list_versions(app.engine)
    if as_json:
        emit_json([v.as_dict(full=False) for v in found])
        return
    if not found:
        click.echo("no datasets")
    for v in found:
        click.echo(f"{v.ref:<28} {v.format:<12} {v.records:>8} records {v.rejected:>6} rejected  "
                   f"{v.digest[:16]}  {v.created_at} {v.created_by}")


@data.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, with every report.")
@pass_app
def data_show(app: App, ref: str, as_json: bool) -> None:
    """Show NAME[@vN]: counts, lineage, scrub report, lint report."""
    from appliance.data import versions
    from appliance.data.lint import summary_lines

    require(app.ctx, "read", "dataset", ref)
    v = versions.get_version(app.engine, ref)
    if as_json:
        emit_json({**v.as_dict(), "canaries": len(versions.canaries(app.engine, v))})
        return
    click.echo(f"{v.ref}  sha256 {v.digest}")
    click.echo(f"format {v.format}; {v.records} records ({v.train_records} train, {v.eval_records} eval); "
               f"{v.rejected} rejected; created {v.created_at} by {v.created_by}")
    click.echo("inputs: " + ", ".join(f"{f['file']} (sha256 {f['sha256'][:12]})" for f in v.lineage["inputs"]))
    click.echo(f"policy sha256 {v.policy_digest[:16]} (strictness {v.policy_strictness}); "
               f"NLP {v.lineage['nlp_model']} sha256 {v.lineage['nlp_model_digest'][:12]}"
               + "".join(f"; {language}: {p['model']} sha256 {p['digest'][:12]}"
                         for language, p in (v.lineage.get("nlp_pipelines") or {}).items()))
    if v.scrub_report.get("texts_by_language"):
        click.echo("texts read by each language's spaCy pipeline: "
                   + json.dumps(v.scrub_report["texts_by_language"]))
    click.echo("scrubbed: " + json.dumps(v.scrub_report["entities_found"]) + "; of them in a second pass: "
               + json.dumps(v.scrub_report.get("second_pass") or {}) + "; residual: "
               + json.dumps(v.scrub_report["residual"]))
    for line in summary_lines(v.lint_report):
        click.echo(f"lint: {line}")


@data.command("export")
@click.argument("ref")
@click.option("--out", required=True, type=OutFile(), help="Where to write the JSONL (written as you).")
@click.option("--split", type=click.Choice(["all", "train", "eval"]), default="all", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@pass_app
def data_export(app: App, ref: str, out: OutputFile, split: str, as_json: bool) -> None:
    """Write the scrubbed records of NAME[@vN] as JSONL, in their input schema.

    The export is an audit event (`data.export`): the version, the split, the record count and the sha256 of
    the bytes written; the file by its base name only."""
    from appliance.data import versions

    done = versions.export_jsonl(app.ctx, ref, out, split)
    if as_json:
        emit_json(done)
        return
    click.echo(f"wrote {done['records']} records of {done['ref']} to {out} (sha256 {done['sha256'][:16]}...)")


@data.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def data_diff(app: App, a: str, b: str, as_json: bool) -> None:
    """Compare two dataset versions: records added and removed, and how the reports changed."""
    from appliance.data import versions

    require(app.ctx, "read", "dataset", f"{a}..{b}")
    va, vb = versions.get_version(app.engine, a), versions.get_version(app.engine, b)

    def keys(v):
        rows = versions.read_split(app.settings, v, "train") + versions.read_split(app.settings, v, "eval")
        return {json.dumps({k: x for k, x in r.items() if k != "id"}, sort_keys=True) for r in rows}

    ka, kb = keys(va), keys(vb)
    result = {"a": va.ref, "b": vb.ref, "same_content": va.digest == vb.digest, "only_in_a": len(ka - kb),
              "only_in_b": len(kb - ka), "in_both": len(ka & kb),
              "entities_found": {"a": va.scrub_report["entities_found"], "b": vb.scrub_report["entities_found"]},
              "policy_changed": va.policy_digest != vb.policy_digest}
    if as_json:
        emit_json(result)
        return
    click.echo(f"{va.ref} -> {vb.ref}: {result['in_both']} records in both, {result['only_in_a']} removed, "
               f"{result['only_in_b']} added" + ("; identical content" if result["same_content"] else ""))
    if result["policy_changed"]:
        click.echo("scrub policy changed between them")
