"""The base-model registry: import into APPLIANCE_HOME/models/NAME, record every file's sha256, verify."""

from __future__ import annotations

import getpass
import re
import shutil
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from appliance.audit.events import Event
from appliance.audit.log import record
from appliance.config import Settings
from appliance.context import Context
from appliance.db import session_scope
from appliance.db.tables import base_model, model_file
from appliance.digests import folder_files, manifest_digest, sha256_file
from appliance.errors import AlreadyExists, InputError, NotFound
from appliance.fsutil import private_tree, staged_dir
from appliance.identity.roles import require
from appliance.models import architectures, sources
from appliance.userfiles import InputTree, as_tree

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class RegisteredModel:
    id: str
    name: str
    source: str  # "embedded" or "path"
    origin: str  # the package and version, or the path it was imported from
    architecture: str | None
    gguf_file: str | None  # relative to the model's folder
    hf_dir: str | None  # relative to the model's folder
    digest: str  # sha256 over the canonical manifest of the stored files
    source_digest: str  # the same over what was imported, to recognise a re-import
    total_bytes: int
    imported_at: str
    imported_by: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelFile:
    model_id: str
    relpath: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ImportResult:
    model: RegisteredModel
    created: bool  # False when the same model was already registered under that name


@dataclass(frozen=True)
class FileProblem:
    relpath: str
    problem: str  # "missing", "modified", "unexpected"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InputError(f"model name {name!r}: use 1-64 lowercase letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    return name


def default_name(path: Path) -> str:
    stem = path.name[:-5] if path.name.lower().endswith(".gguf") else path.name
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")[:64]
    return cleaned or "model"


def get_model(engine: Engine, name: str) -> tuple[RegisteredModel, list[ModelFile]]:
    with session_scope(engine) as s:
        model = _existing_in(s, name)
        if model is None:
            raise NotFound(f"no model named {name!r}", hint="models.list")
        f = model_file.c
        files = [ModelFile(**row._mapping) for row in
                 s.execute(select(model_file).where(f.model_id == model.id).order_by(f.relpath))]
    return model, files


def list_models(engine: Engine) -> list[RegisteredModel]:
    with session_scope(engine) as s:
        return [RegisteredModel(**row._mapping) for row in s.execute(select(base_model).order_by(base_model.c.name))]


def model_dir(settings: Settings, model: RegisteredModel) -> Path:
    return settings.models_dir / model.name


def _existing_in(session, name: str) -> RegisteredModel | None:
    row = session.execute(select(base_model).where(base_model.c.name == name)).first()
    return None if row is None else RegisteredModel(**row._mapping)


def _existing(engine: Engine, name: str) -> RegisteredModel | None:
    with session_scope(engine) as s:
        return _existing_in(s, name)


def _copy_hashed(src: Path, dst: Path) -> str:
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(src, dst)
    return sha256_file(dst)


def _register(ctx: Context, *, name: str, source: str, origin: str, source_digest: str, fill,
              architecture: str | None, gguf_file: str | None, hf_dir: str | None, details=dict) -> ImportResult:
    """Stage the model's folder with `fill(stage)`, rename it into place, then record it and its audit
    event in one transaction."""
    settings, engine = ctx.settings, ctx.engine
    existing = _existing(engine, name)
    if existing is not None:
        if existing.source_digest == source_digest:
            return ImportResult(existing, created=False)
        raise AlreadyExists(f"a different model is already registered as {name!r}; choose another", param="name")
    final = settings.models_dir / name
    if final.exists():
        raise AlreadyExists(f"{final}: exists but is not registered; move it away before importing {name!r}")
    with staged_dir(settings.tmp_dir, final) as stage:
        fill(stage)
        private_tree(stage)
        entries = [(p.relative_to(stage).as_posix(), sha256_file(p), p.stat().st_size) for p in folder_files(stage)]
    model = RegisteredModel(
        id=uuid.uuid4().hex, name=name, source=source, origin=origin, architecture=architecture,
        gguf_file=gguf_file, hf_dir=hf_dir, digest=manifest_digest((r, d) for r, d, _ in entries),
        source_digest=source_digest, total_bytes=sum(size for *_, size in entries), imported_at=_now(),
        imported_by=ctx.actor.user if ctx.actor.role != "system" else f"system ({getpass.getuser()})",
    )
    try:
        with session_scope(engine) as s:
            s.execute(insert(base_model).values(asdict(model)))
            if entries:
                s.execute(insert(model_file), [asdict(ModelFile(model.id, rel, digest, size))
                                               for rel, digest, size in entries])
            record(ctx, s, Event("model.import", "model", name, object_sha256=model.digest,
                                 details={"source": source, "origin": origin, "files": len(entries),
                                          "bytes": model.total_bytes, "architecture": architecture,
                                          **details()}))
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return ImportResult(model, created=True)


def import_embedded(ctx: Context, key: str, name: str | None = None) -> ImportResult:
    """Register an embedded model's GGUF for serving and write its safetensors copy for training."""
    require(ctx, "models.import", "model", name or key)
    spec, gguf_path, version = sources.embedded_gguf(key)
    check_name(name or spec.name)
    info = sources.read_gguf_info(gguf_path)
    gguf_rel = f"gguf/{spec.filename}"

    def fill(stage: Path) -> None:
        from appliance.models.convert import gguf_to_hf

        _copy_hashed(gguf_path, stage / gguf_rel)
        gguf_to_hf(stage / gguf_rel, stage / "hf")

    return _register(ctx, name=name or spec.name, source="embedded",
                     origin=f"{spec.distribution}=={version} ({spec.license})",
                     source_digest=sha256_file(gguf_path), fill=fill, architecture=info.architecture,
                     gguf_file=gguf_rel, hf_dir="hf")


def import_path(ctx: Context, source: InputTree | Path, name: str | None = None, hf_copy: bool = False,
                say=print) -> ImportResult:
    """Import a GGUF file (optionally with a safetensors copy for training) or a Hugging Face folder, read with
    the permissions of the person who named it (`userfiles`)."""
    tree = as_tree(source)
    name = name or default_name(Path(tree.basename))
    require(ctx, "models.import", "model", name)
    check_name(name)
    with tree.local(ctx.settings.tmp_dir) as path:
        return _import_local(ctx, path, tree.origin, name, hf_copy, say)


def _import_local(ctx: Context, path: Path, origin: str, name: str, hf_copy: bool, say=print) -> ImportResult:
    kind = sources.classify(path)
    if kind == "gguf":
        info = sources.read_gguf_info(path)
        architectures.check_gguf(info.architecture, path)
        gguf_rel = f"gguf/{path.name}"

        def fill(stage: Path) -> None:
            _copy_hashed(path, stage / gguf_rel)
            if hf_copy:
                from appliance.models.convert import gguf_to_hf

                gguf_to_hf(stage / gguf_rel, stage / "hf")

        return _register(ctx, name=name, source="path", origin=origin,
                         source_digest=sha256_file(path), fill=fill, architecture=info.architecture,
                         gguf_file=gguf_rel, hf_dir="hf" if hf_copy else None)
    if hf_copy:
        raise InputError("applies to GGUF files; a Hugging Face folder is already in that form", param="hf_copy")
    return _import_hf(ctx, path, origin, name, say)


def _import_hf(ctx: Context, path: Path, origin: str, name: str, say) -> ImportResult:
    """A Hugging Face folder: checked, its architecture and chat template checked, the disk and memory checked
    before anything is copied; then copied for training and converted by llama.cpp for serving."""
    from appliance import policies
    from appliance.models import chat_template, gguf_from_hf

    files, _ = sources.collect_hf_folder(path)
    arch = architectures.of_folder(path)
    existing = _existing(ctx.engine, name)
    digests: dict[str, str] = {}
    if existing is not None:  # the same folder again is a no-op, whatever the disk or the policy say now
        digests = {f.relpath: sha256_file(f.path) for f in files}
        if existing.source_digest == manifest_digest(digests.items()):
            return ImportResult(existing, created=False)
    template = architectures.chat_template_of_folder(path)
    if template is not None:
        chat_template.check(template, path)
    shape = gguf_from_hf.read_shape(path)
    serving = policies.load(ctx, "serving")
    qtype = gguf_from_hf.quantization_for(shape, serving.policy)
    gguf_from_hf.preflight(shape, qtype, ctx.settings.tmp_dir, path)
    digests = digests or {f.relpath: sha256_file(f.path) for f in files}
    source_digest = manifest_digest(digests.items())
    gguf_rel = f"gguf/model-{qtype}.gguf"
    made: dict = {}

    def fill_hf(stage: Path) -> None:
        for f in files:  # what was checked is what is converted: a file changed since is refused
            if _copy_hashed(f.path, stage / "hf" / f.relpath) != digests[f.relpath]:
                raise InputError(f"{f.path}: changed while it was being imported; import it again")
        made.update(gguf_from_hf.produce(stage / "hf", stage / gguf_rel, qtype, shape, ctx.settings.tmp_dir, say))

    return _register(ctx, name=name, source="path", origin=origin, source_digest=source_digest, fill=fill_hf,
                     architecture=arch.hf, gguf_file=gguf_rel, hf_dir="hf",
                     details=lambda: {"gguf": {**made, "file": gguf_rel, "policy_sha256": serving.digest,
                                               "parameters": shape.parameters, "from": "hf"},
                                      "chat_template": template is not None})


def verify_model(settings: Settings, model: RegisteredModel, files: list[ModelFile]) -> list[FileProblem]:
    """Re-hash every recorded file; report missing, modified and unexpected files."""
    root = model_dir(settings, model)
    problems = []
    recorded = {f.relpath for f in files}
    for f in files:
        path = root / f.relpath
        if not path.is_file():
            problems.append(FileProblem(f.relpath, "missing"))
        elif path.stat().st_size != f.size or sha256_file(path) != f.sha256:
            problems.append(FileProblem(f.relpath, "modified"))
    if root.is_dir():
        for path in folder_files(root):
            rel = path.relative_to(root).as_posix()
            if rel not in recorded:
                problems.append(FileProblem(rel, "unexpected"))
    return problems


def chat_template(settings: Settings, model: RegisteredModel) -> str | None:
    """The chat template the model carries: its Hugging Face folder's, else its GGUF's; None for a base model."""
    root = model_dir(settings, model)
    if model.hf_dir:
        found = architectures.chat_template_of_folder(root / model.hf_dir)
        if found is not None:
            return found
    if model.gguf_file:
        from gguf import GGUFReader

        field = GGUFReader(root / model.gguf_file).fields.get("tokenizer.chat_template")
        if field is not None:
            value = field.contents()
            return value if isinstance(value, str) and value.strip() else None
    return None


NO_TEMPLATE_REMEDY = ("give the recipe a chat_template, or train on a dataset in the text format (plain "
                      "continuation needs no template)")
