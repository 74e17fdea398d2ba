"""`appliance package RUN`: the release artifact directory of an evaluated run.

    adapter/                 the PEFT adapter (safetensors + config, tokenizer and chat template)
    adapter.gguf             the same adapter as a llama.cpp GGUF LoRA
    provenance.json          an in-toto Statement v1 with a SLSA Provenance v1 predicate
    eval/                    the evaluation report, its plots and result.json
    verdict.json             the release gates, the verdict and any officer override
    README.md                the model card
(`model.sig` is added by `appliance sign`.)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from appliance import __version__
from appliance.artifacts import decisions, registry
from appliance.artifacts.gguf_lora import convert
from appliance.audit.events import Event
from appliance.audit.log import record
from appliance.context import Context
from appliance.data import versions
from appliance.db import session_scope
from appliance.digests import folder_digest, manifest_digest, sha256_file
from appliance.errors import AlreadyExists, InputError
from appliance.eval import store as evaluation
from appliance.fsutil import private_tree, staged_dir
from appliance.identity.roles import require
from appliance.models.registry import get_model, model_dir
from appliance.train import runs

SIGNATURE = "model.sig"
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
BUILD_TYPE = "https://appliance.invalid/buildtypes/lora-training/v1"
Say = Callable[[str], None]


def canonical_digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def environment_digest() -> tuple[str, int]:
    """sha256 over the sorted `name==version` lines of the installed Python distributions (the resolved
    lock of the environment that trained and packaged), and how many there are."""
    lines = sorted({f"{d.metadata['Name'].lower()}=={d.version}" for d in importlib.metadata.distributions()
                    if d.metadata["Name"]})
    return hashlib.sha256("\n".join(lines).encode()).hexdigest(), len(lines)


def file_digests(root: Path) -> dict[str, str]:
    """Every regular file under root (the signature excluded) -> sha256; symlinks are refused."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise InputError(f"{path}: symbolic link inside an artifact; refused")
        if path.is_file() and path.stat().st_nlink > 1:
            raise InputError(f"{path}: hard link inside an artifact; refused")
        if path.suffix in PICKLE_SUFFIXES:
            raise InputError(f"{path}: pickle-format file inside an artifact; only safetensors are allowed")
        if path.is_file() and path.relative_to(root).as_posix() != SIGNATURE:
            out[path.relative_to(root).as_posix()] = sha256_file(path)
    return out


def provenance(run: runs.Run, dataset: versions.DatasetVersion, subjects: dict[str, str], ev) -> dict:
    env_digest, env_count = environment_digest()
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in sorted(subjects.items())],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"recipe": run.recipe, "recipeFile": run.recipe_file,
                                       "recipeDigest": run.recipe_digest, "baseModel": run.base_model,
                                       "dataset": run.dataset_ref, "maxSteps": run.max_steps},
                "internalParameters": {"framework": run.framework, "frameworkReason": run.framework_reason,
                                       "seed": run.seed, "trainedBy": run.created_by},
                "resolvedDependencies": [
                    {"uri": f"appliance:model/{run.base_model}", "digest": {"sha256": run.base_digest}},
                    {"uri": f"appliance:dataset/{run.dataset_ref}", "digest": {"sha256": run.dataset_digest},
                     "annotations": {"scrubReportSha256": canonical_digest(dataset.scrub_report),
                                     "scrubPolicySha256": dataset.policy_digest}},
                    {"uri": "appliance:python-environment", "digest": {"sha256": env_digest},
                     "annotations": {"distributions": env_count}},
                    {"uri": f"appliance:evaluation/{ev.id}", "digest": {"sha256": canonical_digest(ev.result)},
                     "annotations": {"passed": ev.passed, "overriddenBy": ev.override_by}},
                ],
            },
            "runDetails": {
                "builder": {"id": f"appliance://{platform.node() or 'localhost'}/train",
                            "version": {"appliance": __version__}},
                "metadata": {"invocationId": run.id, "startedOn": run.started_at, "finishedOn": run.finished_at},
            },
        },
    }


def model_card(name: str, run: runs.Run, dataset: versions.DatasetVersion, ev) -> str:
    task, suite = ev.result["task"], ev.result["suite"]
    primary = task["primary"]
    before, after = suite["base"]["accuracy"], suite["adapter"]["accuracy"]
    gates = "\n".join(f"| {g['gate']} | {g['value'] if g['value'] is not None else '-'} | {g['threshold']} | "
                      f"{g['status'].upper()} |" for g in ev.result["gates"])
    override = (f"\nFailed gates were overridden by {ev.override_by} on {ev.override_at}: {ev.override_reason}\n"
                if ev.override_by else "")
    found = dataset.scrub_report.get("entities", {}) if isinstance(dataset.scrub_report, dict) else {}
    return f"""# {name}

A LoRA adapter for `{run.base_model}` trained by the air-gapped fine-tuning appliance.

## Intended use
{run.method.upper()} fine-tuning on `{dataset.ref}` ({dataset.format} records). Use it for requests like those
in that dataset, through the appliance's gateway, once approved. Not evaluated for other tasks or languages.

## Training data
`{dataset.ref}`: {dataset.records} records ({dataset.train_records} train, {dataset.eval_records} held out),
{dataset.rejected} rejected at ingest. Personal data was scrubbed before storage under policy
`{dataset.policy_digest[:16]}...` (strictness {dataset.policy_strictness}); entities replaced: {found or 'none'}.
Dataset digest `{run.dataset_digest}`.

## Training
Recipe `{run.recipe_file}` (`{run.recipe_digest[:16]}...`), framework {run.framework}, seed {run.seed},
{run.steps_done} steps, final loss {run.final_loss:.4f}; trained by {run.created_by}, finished {run.finished_at}.

## Evaluation (base -> adapter)
- Task ({task['items']} held-out items): {primary} {task['base'][primary]:.3f} -> {task['adapter'][primary]:.3f};
  ROUGE-L {task['base']['rouge_l']:.3f} -> {task['adapter']['rouge_l']:.3f}.
- General suite ({suite['items']} items): accuracy {before:.3f} -> {after:.3f}.
- Full report: `eval/report.md`.

| gate | value | threshold | status |
|---|---|---|---|
{gates}
{override}
## Limitations
A small adapter on a small base model: it learns the form of the training answers, not new knowledge, and
inherits the base model's errors. Evaluation covers the held-out split and a frozen general suite only.

## Files and verification
`provenance.json` (in-toto Statement v1, SLSA Provenance v1) lists every file's sha256 and what the adapter was
built from. `model.sig` (after signing) verifies with OpenSSF model_signing and the appliance's public key:
`model_signing verify key DIR --signature DIR/model.sig --public_key PUB`.
"""


def package(ctx: Context, run_name: str, *, name: str | None = None, say: Say = lambda _: None
            ) -> registry.Artifact:
    require(ctx, "package", "run", run_name)
    run = runs.get_run(ctx.engine, run_name)
    if run.status != "succeeded":
        raise InputError(f"run {run_name!r} is {run.status}; only a finished run can be packaged")
    ev = evaluation.latest(ctx.engine, run_name)
    adapter = ctx.settings.home / run.path / "adapter"
    if folder_digest(adapter) != ev.adapter_digest:
        raise InputError(f"run {run_name!r}: the adapter changed since it was evaluated; evaluate it again")
    name = name or run_name
    if not registry.NAME_RE.match(name):
        raise InputError(f"artifact name {name!r}: use 1-64 lowercase letters, digits, '.', '_' or '-'")
    if registry.name_taken(ctx.engine, name):
        raise AlreadyExists(f"an artifact named {name!r} exists; choose another", param="name")
    dataset = versions.get_version(ctx.engine, run.dataset_ref)
    base, _ = get_model(ctx.engine, run.base_model)
    base_dir = model_dir(ctx.settings, base)
    final = ctx.settings.artifacts_dir / name
    with staged_dir(ctx.settings.tmp_dir, final) as stage:
        shutil.copytree(adapter, stage / "adapter")
        gguf_base = base_dir / base.gguf_file if base.gguf_file else None
        summary = convert(adapter, base_dir / base.hf_dir, stage / "adapter.gguf", gguf_base)
        say(f"GGUF LoRA: {summary['tensors']} tensors, rank {summary['rank']}, alpha {summary['alpha']:g}")
        report_dir = (ctx.settings.home / ev.report_path).parent
        shutil.copytree(report_dir, stage / "eval")
        (stage / "verdict.json").write_text(json.dumps(
            {"eval_id": ev.id, "passed": ev.passed, "releasable": ev.releasable, "gates": ev.result["gates"],
             "override": {"by": ev.override_by, "at": ev.override_at, "reason": ev.override_reason}
             if ev.override_by else None}, indent=1, sort_keys=True))
        (stage / "README.md").write_text(model_card(name, run, dataset, ev))
        subjects = file_digests(stage)
        (stage / "provenance.json").write_text(json.dumps(provenance(run, dataset, subjects, ev), indent=1))
        digests = file_digests(stage)
    private_tree(final)
    artifact = registry.Artifact(
        id=uuid.uuid4().hex, name=name, run_id=run.id, run_name=run.name, eval_id=ev.id, status="packaged",
        path=f"artifacts/{name}", files=digests, manifest_digest=manifest_digest(sorted(digests.items())),
        packaged_by=ctx.actor.user, packaged_at=runs.now(), signed_by=None, signed_at=None, signing_key_id=None,
        decided_by=None, decided_at=None, decision_reason=None)
    try:
        statement = decisions.signed(ctx, "package", name, artifact.manifest_digest)  # the engineer's own key
        with session_scope(ctx.engine) as s:
            registry.insert(s.connection(), artifact)
            record(ctx, s, Event("artifact.package", "artifact", name, object_sha256=artifact.manifest_digest,
                                 details={"run": run.name, "eval_id": ev.id, "files": len(digests),
                                          "statement": statement}))
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return artifact
