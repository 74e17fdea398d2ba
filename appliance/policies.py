"""The installed gating policies: pii (scrubbing at ingest), training, release (the gates) and serving.

They come from the installed policy folder only (`paths.policies_dir()`: /etc/appliance/policies on an
install, writable by root alone; the checkout's `policies/` in development); no command takes a policy file
of its own choosing. The first time a process meets a file whose digest is not the newest one the audit trail
admits for that policy, it records a `policy.change` event with the old and the new digest, so the trail holds
the history of every policy the appliance ran under. Dataset versions, runs and evaluations record the
digests they were checked against; signing and approval refuse a digest that history does not admit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import select

from appliance.audit.events import Event
from appliance.audit.log import lock_appends, record
from appliance.config import load_yaml_model, parse_yaml_model
from appliance.context import SYSTEM, Context, OsIdentity
from appliance.db import session_scope
from appliance.db.tables import audit_event
from appliance.errors import ConfigError, InputError, PolicyViolation
from appliance.paths import policies_dir


def _models() -> dict[str, tuple[type[BaseModel], str]]:
    from appliance.audit.policy import AuditPolicy
    from appliance.data.policy import PiiPolicy
    from appliance.eval.policy import ReleasePolicy
    from appliance.serve.policy import ServingPolicy
    from appliance.train.policy import TrainingPolicy

    return {"pii": (PiiPolicy, "scrub policy"), "training": (TrainingPolicy, "training policy"),
            "release": (ReleasePolicy, "release policy"), "serving": (ServingPolicy, "serving policy"),
            "audit": (AuditPolicy, "audit policy")}


KINDS = ("pii", "training", "release", "serving", "audit")


@dataclass(frozen=True)
class Installed:
    kind: str
    path: Path
    digest: str
    policy: BaseModel


def path_of(kind: str) -> Path:
    if kind not in KINDS:
        raise InputError(f"policy {kind!r}: one of {', '.join(KINDS)}")
    return policies_dir() / f"{kind}.yaml"


def read(kind: str, path: Path | None = None) -> tuple[BaseModel, str]:
    """Parse and validate a policy file (the installed one by default); records nothing."""
    model, what = _models()[kind]
    return load_yaml_model(path or path_of(kind), model, what)


def load(ctx: Context, kind: str) -> Installed:
    """The installed policy of this kind, its digest admitted into the audit trail's history."""
    path = path_of(kind)
    policy, digest = read(kind, path)
    _admit(ctx, kind, path, digest)
    return Installed(kind, path, digest, policy)


def _changes(kind: str):
    e = audit_event.c
    return select(e.object_sha256).where(e.action == "policy.change", e.object_type == "policy", e.object_id == kind)


def _newest(conn, kind: str) -> str | None:
    return conn.execute(_changes(kind).order_by(audit_event.c.seq.desc()).limit(1)).scalar()


def _admit(ctx: Context, kind: str, path: Path, digest: str) -> None:
    with ctx.engine.connect() as conn:
        if _newest(conn, kind) == digest:
            return
    try:
        info = os.stat(path)
        owner = {"owner_uid": info.st_uid, "mode": oct(info.st_mode & 0o7777)}
    except OSError:
        owner = {}
    # The appliance noticing the change, in its own name, whoever's command it was.
    noticing = Context(ctx.settings, ctx.engine, SYSTEM, ctx.correlation_id, OsIdentity.of_process())
    with session_scope(ctx.engine) as s:
        conn = s.connection()
        lock_appends(conn)
        old = _newest(conn, kind)
        if old == digest:
            return
        record(noticing, s, Event("policy.change", "policy", kind, object_sha256=digest, details={
            "old": old, "new": digest, "file": str(path), "noticed_for": ctx.actor.user, **owner}))


def admitted(engine, kind: str) -> set[str]:
    """Every digest the trail's history admits for this policy."""
    with engine.connect() as conn:
        rows = conn.execute(_changes(kind)).all()
    return {r[0] for r in rows}


def unadmitted(engine, recorded: dict[str, str | None]) -> list[str]:
    """For {kind: digest recorded on a dataset, run or evaluation}: a problem line for each digest the history
    does not admit (a missing one included)."""
    problems = []
    for kind, digest in recorded.items():
        if not digest:
            problems.append(f"{kind} policy: no digest recorded")
        elif digest not in admitted(engine, kind):
            problems.append(f"{kind} policy: digest {digest[:16]}... was never an installed {kind} policy")
    return problems


def require_admitted(ctx: Context, recorded: dict[str, str | None], subject: str) -> None:
    problems = unadmitted(ctx.engine, recorded)
    if problems:
        raise PolicyViolation(f"{subject}: {'; '.join(problems)}", hint="policies")


def installed_report(ctx: Context) -> list[dict]:
    """Each installed policy: file, digest, whether it parses, what the history holds (`appliance policies list`)."""
    out = []
    for kind in KINDS:
        path = path_of(kind)
        entry: dict = {"policy": kind, "file": str(path)}
        try:
            item = load(ctx, kind)
            entry.update(digest=item.digest, valid=True)
            if kind == "pii":
                from appliance.data.policy import strictness

                entry["strictness"] = strictness(item.policy)
        except ConfigError as exc:
            entry.update(digest=None, valid=False, error=str(exc))
        entry["admitted"] = len(admitted(ctx.engine, kind))
        out.append(entry)
    return out


def check_file(path_or_file, kind: str | None = None) -> dict:
    """Validate a candidate policy without installing it: `appliance policies check FILE`."""
    from appliance.userfiles import as_input

    source = as_input(path_or_file)
    kind = kind or Path(source.basename).stem
    if kind not in KINDS:
        raise InputError(f"{source.name}: name the policy with --kind (one of {', '.join(KINDS)})", param="kind")
    policy, digest = parse_yaml_model(source.read_bytes(), source.name, _models()[kind][0], "policy")
    report = {"file": source.name, "policy": kind, "digest": digest, "valid": True}
    if kind == "pii":
        from appliance.data.policy import covered, strictness

        report["strictness"] = strictness(policy)
        report["covered"] = sorted(covered(policy))
    return report
