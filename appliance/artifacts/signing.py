"""Signing artifact directories with OpenSSF model_signing and the appliance's ECDSA artifact key (offline:
never Sigstore's online flow), and verifying them with every failure named.

The signature (`model.sig`) is a Sigstore bundle holding a DSSE envelope whose payload is an in-toto
statement: its subject is the directory's name and its predicate lists every file with its sha256. The
stock command verifies it: `model_signing verify key DIR --signature DIR/model.sig --public_key PUB`.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from appliance.artifacts import decisions, registry
from appliance.artifacts.package import SIGNATURE, file_digests
from appliance.audit.events import Event
from appliance.audit.log import record, record_alone
from appliance.context import Context
from appliance.db import session_scope
from appliance.errors import InputError, IntegrityError, NotFound, PolicyViolation
from appliance.eval import store as evaluation
from appliance.fsutil import ensure_private_dir
from appliance.identity.roles import require
from appliance.keys import crypto, store
from appliance.train import runs
from appliance.userfiles import InputTree


def _hashing():
    from model_signing import hashing

    return hashing.Config().set_ignored_paths(paths=[SIGNATURE])


def _differences(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    out = [f"{name}: sha256 differs" for name in sorted(expected) if name in actual and actual[name] != expected[name]]
    out += [f"{name}: missing" for name in sorted(set(expected) - set(actual))]
    out += [f"{name}: added" for name in sorted(set(actual) - set(expected))]
    return out


def sign(ctx: Context, ref: str) -> registry.Artifact:
    from model_signing import signing

    require(ctx, "sign", "artifact", ref)
    artifact = registry.get(ctx.engine, ctx.settings, ref)
    if artifact.status != "packaged":
        raise InputError(f"artifact {artifact.name!r} is {artifact.status}; only a packaged artifact is signed")
    evaluated = evaluation.get_result(ctx.engine, artifact.eval_id)
    if not evaluated.releasable:
        failed = ", ".join(evaluated.failed_gates)
        reason = f"run {artifact.run_name!r} failed release gates ({failed}); an officer must override them first"
        record_alone(ctx, Event("artifact.sign", "artifact", artifact.name, outcome="denied", reason=reason))
        raise PolicyViolation(reason, hint="evals.override")
    from appliance import policies
    from appliance.artifacts.duties import recorded_policies

    problems = policies.unadmitted(ctx.engine, recorded_policies(
        ctx, runs.get_run(ctx.engine, artifact.run_name), evaluated.policy_digest))
    if problems:
        reason = f"artifact {artifact.name!r} was not made under installed policies: {'; '.join(problems)}"
        record_alone(ctx, Event("artifact.sign", "artifact", artifact.name, outcome="denied", reason=reason,
                                details={"rule": "installed-policies"}))
        raise PolicyViolation(reason, hint="policies")
    directory = artifact.directory(ctx.settings)
    changed = _differences(artifact.files, file_digests(directory))
    if changed:
        raise IntegrityError(f"artifact {artifact.name!r} changed since it was packaged: {'; '.join(changed)}")
    key = store.active_key(ctx.engine, "artifact")
    if key is None:
        raise NotFound("no active artifact key", hint="keys.init")
    statement = decisions.signed(ctx, "sign", artifact.name, artifact.manifest_digest)  # the engineer's own key
    ensure_private_dir(ctx.settings.tmp_dir)
    with tempfile.TemporaryDirectory(dir=ctx.settings.tmp_dir) as tmp:
        staged = Path(tmp) / SIGNATURE
        try:
            config = signing.Config().use_elliptic_key_signer(
                private_key=ctx.settings.keys_dir / key.private_file, password=crypto.passphrase(ctx.settings))
        except (ValueError, TypeError):
            raise IntegrityError("cannot decrypt the artifact signing key: wrong passphrase or damaged key file"
                                 ) from None
        config.set_hashing_config(_hashing()).sign(directory, staged)
        staged.chmod(0o600)
        shutil.move(staged, directory / SIGNATURE)
    with session_scope(ctx.engine) as s:
        registry.update(s.connection(), artifact.id, "packaged", status="signed", signed_by=ctx.actor.user,
                        signed_at=runs.now(), signing_key_id=key.key_id)
        record(ctx, s, Event("artifact.sign", "artifact", artifact.name, object_sha256=artifact.manifest_digest,
                             details={"key_id": key.key_id, "statement": statement}))
    return registry.get(ctx.engine, ctx.settings, artifact.name)


@dataclass
class Verification:
    artifact: str
    checks: list[dict] = field(default_factory=list)
    key_id: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c["ok"] for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append({"check": name, "ok": ok, "detail": detail})
        return ok

    def as_dict(self) -> dict:
        return {"artifact": self.artifact, "ok": self.ok, "key_id": self.key_id, "checks": self.checks}


def _statement(signature: Path) -> dict:
    """The signed in-toto statement inside the bundle; ValueError when the file is not a whole bundle."""
    try:
        bundle = json.loads(signature.read_bytes())
        payload = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"], validate=True))
        resources = payload["predicate"]["resources"]
        if not isinstance(resources, list):
            raise TypeError
        return payload
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None


def _verifies(directory: Path, signature: Path, public_pem: str) -> bool:
    from model_signing import verifying

    with tempfile.NamedTemporaryFile("w", suffix=".pem") as pub:
        pub.write(public_pem)
        pub.flush()
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=pub.name).set_hashing_config(
                _hashing()).verify(directory, signature)
            return True
        except Exception:  # model_signing raises ValueError and others for any mismatch
            return False


def verify(ctx: Context, ref: str | InputTree) -> Verification:
    """Signature against the trust store and revocation list, the signed file list against the directory,
    then the registry's and the provenance's digests. Every failure is named; `ok` only when all hold.

    `ref` is an artifact's name, or a folder a person names (`userfiles.InputTree`: read with their
    permissions): a copy carried elsewhere is checked against the registry's record of the same name."""
    if isinstance(ref, InputTree):
        require(ctx, "read", "artifact", ref.basename)  # before anything of theirs is copied in
        registry.get(ctx.engine, ctx.settings, ref.basename)  # an artifact of this appliance's, or nothing copied
        with ref.local(ctx.settings.tmp_dir) as folder:
            return _verify(ctx, folder.resolve(), ref.name.rstrip("/"))
    if "/" in ref:
        if not Path(ref).is_dir():
            raise NotFound(f"{ref}: no such folder")
        return _verify(ctx, Path(ref).resolve(), ref)
    artifact = registry.get(ctx.engine, ctx.settings, ref)
    return _verify(ctx, artifact.directory(ctx.settings), str(artifact.directory(ctx.settings)))


def _verify(ctx: Context, directory: Path, shown: str) -> Verification:
    if directory.parent == ctx.settings.artifacts_dir.resolve():
        artifact = registry.get(ctx.engine, ctx.settings, directory.name)
        directory = artifact.directory(ctx.settings)
    else:  # a copy carried elsewhere: checked against the registry's record of the artifact of the same name
        artifact = registry.get(ctx.engine, ctx.settings, directory.name)
    require(ctx, "read", "artifact", artifact.name)
    result = Verification(artifact.name)
    signature = directory / SIGNATURE
    label = f"{shown}/{SIGNATURE}"
    if not signature.is_file():
        result.add("signature", False, f"{label}: no signature; run `appliance sign {artifact.name}`")
        return result
    try:
        statement = _statement(signature)
    except ValueError as exc:
        result.add("signature", False, f"{label}: truncated or not a model_signing bundle ({exc})")
        return result
    try:
        current = file_digests(directory)
    except InputError as exc:  # a link or a pickle file inside the directory
        result.add("files", False, str(exc))
        return result
    signed = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    subject = statement.get("subject", [{}])[0].get("name")
    if subject != directory.name:
        result.add("signature", False, f"{label}: signs artifact {subject!r}, not {directory.name!r}")
    changed = _differences(signed, current)
    result.add("files", not changed, "every file matches the signed list" if not changed else "; ".join(changed))
    from appliance.keys import pins

    pinned, pin_problem = pins.read(ctx.settings, "artifact")
    stored = {k.key_id: k for k in store.list_keys(ctx.engine) if k.purpose == "artifact"}
    signer = None
    if not changed:
        signer = next((k for k in pinned if _verifies(directory, signature, crypto.pem_of(pinned[k]))), None) or \
            next((k for k, rec in stored.items() if _verifies(directory, signature, rec.public_pem)), None)
    if signer is None and not changed:
        result.add("key", False, "the signature verifies with no pinned artifact key (unknown key, or the "
                                 "signature was altered)" + (f"; {pin_problem}" if pin_problem else ""))
    elif signer is not None:
        result.key_id = signer
        record = stored.get(signer)
        if signer not in pinned:
            result.add("key", False, f"signed with key {signer[:16]}, found only in the database (not in "
                                     f"{pins.path_of(ctx.settings, 'artifact')})")
        elif record is not None and record.status == "revoked":
            result.add("key", False, f"signed with revoked key {signer[:16]} ({record.revoked_reason})")
        else:
            result.add("key", True, f"signed with pinned key {signer[:16]} ({record.status if record else 'pinned'})")
    registered = _differences(artifact.files, current)
    result.add("registry", not registered, "files match the digests recorded at packaging" if not registered
               else "; ".join(registered))
    result.add("provenance", *_provenance_check(ctx, artifact, directory, current))
    return result


def _provenance_check(ctx: Context, artifact: registry.Artifact, directory: Path,
                      current: dict[str, str]) -> tuple[bool, str]:
    try:
        statement = json.loads((directory / "provenance.json").read_text())
        subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
        deps = {d["uri"]: d["digest"]["sha256"]
                for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"provenance.json unreadable: {exc}"
    problems = [f"{name}: not as in provenance" for name, digest in subjects.items() if current.get(name) != digest]
    run = runs.get_run(ctx.engine, artifact.run_name)
    if deps.get(f"appliance:model/{run.base_model}") != run.base_digest:
        problems.append(f"base model digest differs from run {run.name}'s record")
    if deps.get(f"appliance:dataset/{run.dataset_ref}") != run.dataset_digest:
        problems.append(f"dataset digest differs from run {run.name}'s record")
    return not problems, "; ".join(problems) or "provenance matches the files and the registry's records"
