"""Ingest: files -> validated, scrubbed, linted, de-duplicated, split, versioned dataset.

Raw input is never copied under APPLIANCE_HOME: records are scrubbed in memory and only the scrubbed
form is written. Reports hold entity types, counts and record ids, never values.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from appliance.audit.events import Event
from appliance.audit.log import record
from appliance.context import Context
from appliance.data import formats, versions
from appliance.data.canaries import plant
from appliance.data.lint import LintRecord, lint
from appliance.data.policy import PiiPolicy, strictness
from appliance.data.scrub import Scrubber
from appliance.db import session_scope
from appliance.errors import ConfigError, InputError, StorageError
from appliance.fsutil import ensure_private_dir, private_tree
from appliance.identity.roles import require
from appliance.userfiles import InputFile, as_input

_SALT_FILE = "pii-hmac.salt"


@dataclass
class Parsed:
    fmt: str
    detected: bool
    records: list[tuple[str, dict]] = field(default_factory=list)  # (source position, normalised record)
    rejects: list[formats.Reject] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)


def limits_of(ctx: Context) -> formats.Limits:
    cfg = ctx.settings.file.ingest
    return formats.Limits(cfg.max_file_mb * 1024**2, cfg.max_record_kb * 1024, cfg.max_records)


def parse(files: list[InputFile | Path], fmt: str, limits: formats.Limits) -> Parsed:
    """Read and validate every record; format 'auto' is detected from the first record that has one. The files
    are read with the permissions of the person who named them (`userfiles`), and recorded (`files`, rejects,
    source positions) by base name and sha256, never by the path typed: directory names can be personal data."""
    if not files:
        raise InputError("no input files given")
    detected = fmt == "auto"
    chosen = None if detected else fmt
    out = Parsed(fmt="", detected=detected)
    for source in map(as_input, files):
        out.files.append({"file": source.basename, "sha256": source.sha256(), "bytes": source.size()})
        for item in formats.read_records(source, limits):
            if isinstance(item, formats.Reject):
                out.rejects.append(item)
                continue
            if chosen is None:
                chosen = formats.detect_format(item.data)
                if chosen is None:
                    out.rejects.append(formats.Reject(item.file, item.where, "(record)",
                                                      "no known schema (messages, conversations, instruction/output, "
                                                      "prompt/chosen/rejected, text)"))
                    continue
            normalised, reject = formats.validate(item, chosen)
            if reject:
                out.rejects.append(reject)
            else:
                out.records.append((f"{item.file}:{item.where}", normalised))  # file: its base name
            if len(out.records) > limits.max_records:
                raise InputError(f"more than {limits.max_records} records: over the record limit")
    out.fmt = chosen or "unknown"
    return out


_STAGE_PREFIX = ".ingest-"
_STALE_SECONDS = 3600


def recover_staged(ctx: Context) -> list[str]:
    """Finish what a crash between an ingest's commit and its rename left: a staged folder whose version is in
    the database is renamed into place; one whose version is not (its transaction never committed) is removed
    once it is an hour old (a younger one may be another ingest's, under way). Returns what it did."""
    import shutil
    import time

    done = []
    tmp = ctx.settings.tmp_dir
    if not tmp.is_dir():
        return done
    for stage in tmp.glob(f"{_STAGE_PREFIX}*"):
        vid = stage.name[len(_STAGE_PREFIX):]
        with ctx.engine.connect() as conn:
            path = versions.path_of(conn, vid)
        if path is not None:
            final = ctx.settings.home / path
            if not final.exists():
                ensure_private_dir(final.parent)
                os.replace(stage, final)
                done.append(f"finished {path}")
                continue
        if time.time() - stage.stat().st_mtime > _STALE_SECONDS or path is not None:
            shutil.rmtree(stage, ignore_errors=True)
            done.append(f"removed {stage.name}")
    return done


def hmac_key(ctx: Context) -> bytes:
    """The install's key for keyed hashing of personal data: derived from the key passphrase and a random
    salt kept with the keys, so tokens are stable across datasets but cannot be recomputed without both."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from appliance.fsutil import atomic_write_bytes
    from appliance.keys.crypto import passphrase

    ensure_private_dir(ctx.settings.keys_dir)
    salt_path = ctx.settings.keys_dir / _SALT_FILE
    if not salt_path.exists():
        atomic_write_bytes(salt_path, os.urandom(32))
    return HKDF(hashes.SHA256(), 32, salt_path.read_bytes(), b"appliance pii hmac v1").derive(passphrase(ctx.settings))


def _split(records: list[tuple[str, dict]], share: float, seed: int) -> tuple[list, list]:
    def rank(item):
        return hashlib.sha256(f"{seed}:{json.dumps(item[1], sort_keys=True)}".encode()).hexdigest()

    ordered = sorted(records, key=rank)
    n_eval = int(round(len(ordered) * share)) if len(ordered) >= 10 else 0
    eval_ids = {rid for rid, _ in ordered[:n_eval]}
    return [r for r in records if r[0] not in eval_ids], [r for r in records if r[0] in eval_ids]


def _nlp_digest(model: str) -> str:
    import importlib.util

    from appliance.digests import folder_files, manifest_digest, sha256_file

    spec = importlib.util.find_spec(model)
    root = Path(next(iter(spec.submodule_search_locations)))
    return manifest_digest((p.relative_to(root).as_posix(), sha256_file(p)) for p in folder_files(root)
                           if "__pycache__" not in p.parts)


def _recognizer_data() -> dict[str, str]:
    from appliance.data.recognizers import data_digests  # imports Presidio, which the scrubber has imported its way

    return data_digests()


def _versions_of(*dists: str) -> dict:
    out = {}
    for d in dists:
        try:
            out[d] = importlib.metadata.version(d)
        except importlib.metadata.PackageNotFoundError:
            out[d] = None
    return out


@dataclass
class IngestResult:
    version: versions.DatasetVersion
    created: bool


def scrub_records(scrubber: Scrubber, records: list[tuple[str, dict]], fmt: str):
    """Scrubbed records, entity counts, ids of records that had something scrubbed, the scrubbed texts whose
    full analysis found nothing more (the residual scan need not repeat it), and how many texts each language's
    spaCy pipeline read."""
    fields = [formats.text_fields(r, fmt) for _, r in records]
    flat = [t for f in fields for _, t in f]
    results = scrubber.scrub(flat)
    verified = {r.text for r in results if r.verified}
    languages = Counter(r.language for r in results if r.language)
    out, counts, touched, i = [], Counter(), [], 0
    for (rid, rec), f in zip(records, fields, strict=True):
        part = results[i:i + len(f)]
        i += len(f)
        found = sum((r.found for r in part), Counter())
        if found:
            touched.append(rid)
            counts.update(found)
        out.append((rid, formats.with_texts(rec, fmt, [r.text for r in part])))
    return out, counts, touched, verified, languages


def ingest(ctx: Context, paths: list[InputFile | Path], name: str, *, fmt: str = "auto", strict: bool = False,
           tokenizer_model: str | None = None) -> IngestResult:
    """Scrubbed under the installed scrub policy (`policies.load`), whose digest and computed strictness the
    version records."""
    from appliance import policies

    versions.check_name(name)
    require(ctx, "data.ingest", "dataset", name)
    if fmt != "auto" and fmt not in formats.FORMATS:
        raise InputError(f"{fmt!r}: one of auto, {', '.join(formats.FORMATS)}", param="fmt")
    installed = policies.load(ctx, "pii")
    policy, policy_digest, level = installed.policy, installed.digest, strictness(installed.policy)
    parsed = parse(paths, fmt, limits_of(ctx))
    if strict and parsed.rejects:
        first = parsed.rejects[0]
        raise InputError(f"{first.line()} (--strict: {len(parsed.rejects)} bad record(s), nothing ingested)")
    if not parsed.records:
        detail = f"; first problem: {parsed.rejects[0].line()}" if parsed.rejects else ""
        raise InputError(f"no valid records in {', '.join(as_input(p).name for p in paths)}{detail}")
    scrubber = scrubber_for(ctx, policy)
    scrubbed, counts, touched, verified, languages = scrub_records(scrubber, parsed.records, parsed.fmt)
    tokenizer, context_length = _tokenizer(ctx, tokenizer_model)
    cfg = ctx.settings.file.ingest

    def assemble(scrubbed):
        # Exact duplicates (after scrubbing) are dropped; the first occurrence stays.
        seen, unique, dropped = set(), [], []
        for rid, rec in scrubbed:
            key = json.dumps(rec, sort_keys=True, ensure_ascii=False)
            (dropped if key in seen else unique).append((rid, rec))
            seen.add(key)
        ids = [(f"r{i:06d}", rec) for i, (_, rec) in enumerate(unique)]
        position = {f"r{i:06d}": src for i, (src, _) in enumerate(unique)}
        lint_report = lint([LintRecord(rid, rec, parsed.fmt) for rid, rec in ids], tokenizer=tokenizer,
                           context_length=context_length)
        lint_report["dropped_exact_duplicates"] = len(dropped)
        planted, canary_list, canary_note = (ids, [], "canaries not requested by the policy")
        if policy.canaries.enabled:
            planted, canary_list, canary_note = plant(ids, parsed.fmt, policy.canaries)
        train, held_out = _split(planted, cfg.eval_share, cfg.split_seed)
        digest = versions.content_digest([("train", {"id": i, **r}) for i, r in train]
                                         + [("eval", {"id": i, **r}) for i, r in held_out])
        return position, lint_report, planted, canary_list, canary_note, train, held_out, digest

    # The residual scan (a second full analysis of every stored text) runs in forked workers while this
    # process de-duplicates, lints, plants canaries and splits.
    pending = scrubber.start_residual([t for _, r in scrubbed for _, t in formats.text_fields(r, parsed.fmt)],
                                      verified=verified)
    try:
        assembled = assemble(scrubbed)
        found_again = pending.result()
        rescrubbed = dict(pending.rescrubbed)
    finally:
        pending.close()
    residual = Counter()
    if rescrubbed:
        # What the scan found is scrubbed too, and the texts scrubbed again are scanned again (a few rounds at
        # most; what is still found then is reported as the residual), before anything is stored.
        todo = list(rescrubbed.values())
        for _ in range(2):
            more, again = scrubber.rescrub(todo)
            found_again.update(more)
            rescrubbed = {old: again.get(new, new) for old, new in rescrubbed.items()}
            todo = list(again.values())
            if not todo:
                break
        if todo:
            residual = scrubber.rescrub(todo)[0]
        again_ids = set()
        for i, (rid, rec) in enumerate(scrubbed):
            texts = [t for _, t in formats.text_fields(rec, parsed.fmt)]
            if any(t in rescrubbed for t in texts):
                scrubbed[i] = (rid, formats.with_texts(rec, parsed.fmt, [rescrubbed.get(t, t) for t in texts]))
                again_ids.add(rid)
        touched = list(dict.fromkeys([*touched, *again_ids]))
        counts = counts + found_again
        assembled = assemble(scrubbed)
    position, lint_report, planted, canary_list, canary_note, train, held_out, digest = assembled
    existing = versions.find_by_digest(ctx.engine, name, digest)
    if existing:
        return IngestResult(existing, created=False)
    touched_sources = set(touched)
    scrub_report = {
        "policy": installed.path.name, "policy_digest": policy_digest, "strictness": level,
        "entities_found": dict(sorted(counts.items())), "records_scrubbed": len(touched),
        "record_ids_scrubbed": [rid for rid, src in position.items() if src in touched_sources][:200],
        "second_pass": dict(sorted(found_again.items())), "residual": dict(sorted(residual.items())),
        "canaries": canary_note or f"{len(canary_list)} canaries",
        "texts_by_language": dict(sorted(languages.items())),
    }
    lineage = {
        "inputs": parsed.files, "format": parsed.fmt, "format_detected": parsed.detected,
        "policy_digest": policy_digest, "recognizers": sorted({r.name for r in scrubber.analyzer.registry.recognizers}),
        "recognizer_data": _recognizer_data(),
        "nlp_model": policy.nlp.model, "nlp_model_digest": _nlp_digest(policy.nlp.model),
        "nlp_pipelines": {language: {"model": model, "digest": _nlp_digest(model)}
                          for language, model in sorted(policy.nlp.pipelines.items())},
        "libraries": _versions_of("presidio-analyzer", "presidio-anonymizer", "spacy", "datasets",
                                  *(model.replace("_", "-") for model in (policy.nlp.model,
                                                                          *policy.nlp.pipelines.values()))),
        "split": {"eval_share": cfg.eval_share, "seed": cfg.split_seed},
        "tokenizer_model": tokenizer_model, "source_positions": position,
    }
    rejects = [r.as_dict() for r in parsed.rejects]
    vid = uuid.uuid4().hex
    recover_staged(ctx)

    def manifest_of(number: int) -> str:
        return json.dumps({"name": name, "version": number, "digest": digest, "format": parsed.fmt,
                           "lineage": lineage, "scrub_report": scrub_report, "lint_report": lint_report,
                           "rejects": rejects}, indent=1, sort_keys=True)

    # The files are written before the transaction (which holds the write lock only for the rows and the event)
    # and renamed into place after its commit; a crash between the two is finished by `recover_staged`.
    ensure_private_dir(ctx.settings.tmp_dir)
    stage = ctx.settings.tmp_dir / f"{_STAGE_PREFIX}{vid}"
    stage.mkdir(mode=0o700)
    try:
        with ctx.engine.connect() as conn:
            planned = versions.next_version(conn, name)
        versions.write_split(stage / "train.parquet", [{"id": i, **r} for i, r in train])
        if held_out:
            versions.write_split(stage / "eval.parquet", [{"id": i, **r} for i, r in held_out])
        (stage / "manifest.json").write_text(manifest_of(planned))
        private_tree(stage)
        with session_scope(ctx.engine) as s:
            conn = s.connection()
            number = versions.next_version(conn, name)
            if number != planned:  # another ingest of this name committed meanwhile
                (stage / "manifest.json").write_text(manifest_of(number))
            rel = Path("datasets") / name / f"v{number}"
            final = ctx.settings.home / rel
            if final.exists():
                raise StorageError(f"{final}: already exists")
            v = versions.DatasetVersion(
                id=vid, name=name, version=number, digest=digest, format=parsed.fmt, records=len(planted),
                train_records=len(train), eval_records=len(held_out), rejected=len(rejects), path=rel.as_posix(),
                policy_digest=policy_digest, policy_strictness=level,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"), created_by=ctx.actor.user,
                lineage=lineage, scrub_report=scrub_report, lint_report=lint_report, rejects=rejects)
            versions.insert(conn, v)
            for c in canary_list:
                versions.insert_canary(conn, vid, c)
            record(ctx, s, Event("data.ingest", "dataset", v.ref, object_sha256=digest, details={
                "records": v.records, "rejected": v.rejected, "format": v.format, "policy_digest": policy_digest,
                "inputs": [f["sha256"] for f in parsed.files], "entities_found": scrub_report["entities_found"]}))
    except BaseException:
        import shutil

        shutil.rmtree(stage, ignore_errors=True)
        raise
    ensure_private_dir(final.parent)
    os.replace(stage, final)
    return IngestResult(v, created=True)


def _needs_hmac(policy: PiiPolicy) -> bool:
    return any(rule.operator == "hash" for rule in policy.entities.values())


def scrubber_for(ctx: Context, policy: PiiPolicy, key: bytes | None = None) -> Scrubber:
    """The scrubber for a PII policy, with the install's HMAC key (or `key`) when the policy hashes entities."""
    return Scrubber(policy, (key or hmac_key(ctx)) if _needs_hmac(policy) else None)


def default_scrubber(ctx: Context, key: bytes | None = None) -> Scrubber:
    """The scrubber of the installed scrub policy: what ingest applies (with `key` for its keyed hashes: the
    gateway's own, as it cannot read the key passphrase)."""
    from appliance import policies

    return scrubber_for(ctx, policies.load(ctx, "pii").policy, key)


def _tokenizer(ctx: Context, model_name: str | None):
    if not model_name:
        return None, None
    from appliance.models.registry import get_model, model_dir

    model, _ = get_model(ctx.engine, model_name)
    if not model.hf_dir:
        raise ConfigError(f"model {model_name!r} has no Hugging Face copy, so its tokenizer is not available")
    from transformers import AutoConfig, AutoTokenizer

    path = model_dir(ctx.settings, model) / model.hf_dir
    config = AutoConfig.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path), getattr(config, "max_position_embeddings", None)
