"""The offline bundle: what IT carries across the air gap.

`build` (on a connected machine) fetches every wheel the profile's committed lock names (pip checks each against
the lock's sha256; a package published only as source, llama-cpp-python, is built into a wheel), builds the
appliance's own wheel, optionally adds model packs (a registered model's files with their digests), writes the
bundle's install lock (every wheel it carries, by sha256), a CycloneDX SBOM, and a manifest of every file's
sha256 signed with the release key. `verify` (on the target, offline) checks the signature, every hash, the
lock against the wheels, and names anything missing, changed or unexpected.

    BUNDLE/
      offline-wheels/*.whl
      requirements-<profile>.lock    pip install --no-index --find-links offline-wheels --require-hashes
                                     --only-binary :all: --no-deps -r requirements-<profile>.lock
      engines/llama-server           (cpu) llama.cpp's server, built from the lock's llama-cpp-python sdist
      engines/llama.cpp-convert/     (cpu) llama.cpp's model and LoRA converters from the same sdist
      models/<name>/...  models/<name>/model.json
      sbom.cdx.json
      manifest.json  manifest.sig  release-key.pub.pem
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from appliance.digests import sha256_file
from appliance.errors import InputError, IntegrityError, StorageError

REPO = Path(__file__).resolve().parents[1]
PROFILES = ("cpu", "cuda")
FORMAT = 1
SIGNED = ("manifest.json", "manifest.sig")  # the manifest covers every other file
Say = Callable[[str], None]


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).as_posix() not in SIGNED}


# --- the release key ---------------------------------------------------------------------------------------------
def keygen(out_dir: Path, passphrase: bytes) -> tuple[Path, Path, str]:
    """A new release key pair: release-key.pem (PKCS#8, encrypted, 0600) and release-key.pub.pem."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    private, public = out_dir / "release-key.pem", out_dir / "release-key.pub.pem"
    for path in (private, public):
        if path.exists():
            raise InputError(f"{path}: already exists; a release key is never overwritten")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(passphrase))
    with open(os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(pem)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public, fingerprint(public.read_bytes())


def fingerprint(public_pem: bytes) -> str:
    """sha256 of the public key's DER form: what IT compares when the key is handed over."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(public_pem)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _private_key(path: Path, passphrase: bytes):
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=passphrase)
    except OSError as exc:
        raise InputError(f"--key {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise InputError(f"--key {path}: not a release key this passphrase opens") from None


# --- build -------------------------------------------------------------------------------------------------------
BINDING_CMAKE_ARGS = "-DGGML_NATIVE=OFF"


def _pip_build_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "appliance" / f"pip-{hashlib.sha256(BINDING_CMAKE_ARGS.encode()).hexdigest()[:12]}"


def _pip(args: list[str], say: Say) -> None:
    # llama-cpp-python's wheel is compiled here: portable (GGML_NATIVE=OFF, as llama-server is), never tuned to the
    # build machine, whose instruction set (AVX-512, AMX) the target hardware may lack. pip keys a wheel it built
    # by the sdist alone, not by CMAKE_ARGS: its cache is one per set of build options (as `make install` keeps),
    # so a wheel built natively on this machine never enters a bundle.
    env = {**os.environ, "CMAKE_ARGS": BINDING_CMAKE_ARGS, "PIP_CACHE_DIR": str(_pip_build_cache())}
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-3:]
        raise StorageError("pip " + args[0] + " failed: " + " | ".join(tail))
    say(f"pip {args[0]}: done")


def _llama_server(lock: Path, staging: Path, pip_options: list[str], say: Say) -> None:
    """engines/llama-server: the CPU backend, built (or taken from the build cache) from the lock's sdist."""
    from appliance.serve import llama_server_build as build

    if not build.pins_llama_server(lock):
        return
    version, sha = build.pinned(lock)
    try:
        sdist = build.fetch_sdist(version, sha, build.cache_root() / "sdist", tuple(pip_options))
    except subprocess.CalledProcessError as exc:
        raise StorageError(f"could not fetch the {build.PACKAGE} {version} sdist that llama-server is built "
                           f"from (pip exited {exc.returncode})") from None
    binary = build.build(sdist, say=say)
    (staging / "engines").mkdir(mode=0o755)
    shutil.copy2(binary, staging / "engines" / build.BINARY)  # the bundle's folder keeps its name: installs read it
    shutil.copytree(build.converters(sdist), staging / "engines" / build.CONVERTERS)
    say(f"llama-server: {build.BINARY} and llama.cpp's converters from {sdist.name}")


def _install_lock(wheels: Path, profile: str) -> str:
    from packaging.utils import parse_wheel_filename

    lines = [f"# The {profile} bundle's wheels, each by its sha256. Install with:",
             "#   pip install --no-index --find-links offline-wheels --require-hashes --only-binary :all: "
             f"--no-deps -r requirements-{profile}.lock", ""]
    for wheel in sorted(wheels.glob("*.whl"), key=lambda p: p.name.lower()):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{sha256_file(wheel)}")
    return "\n".join(lines) + "\n"


def _sbom(root: Path, profile: str, created: str) -> dict:
    """CycloneDX 1.6: one component per wheel (purl, sha256) and one per model pack."""
    from packaging.utils import parse_wheel_filename

    from appliance import __version__

    components = []
    for wheel in sorted((root / "offline-wheels").glob("*.whl"), key=lambda p: p.name.lower()):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        components.append({"type": "library", "bom-ref": f"pkg:pypi/{name}@{version}", "name": str(name),
                           "version": str(version), "purl": f"pkg:pypi/{name}@{version}",
                           "hashes": [{"alg": "SHA-256", "content": sha256_file(wheel)}],
                           "properties": [{"name": "appliance:file", "value": f"offline-wheels/{wheel.name}"}]})
    for pack in sorted((root / "models").glob("*/model.json")):
        info = json.loads(pack.read_text())
        components.append({"type": "machine-learning-model", "bom-ref": f"model:{info['name']}",
                           "name": info["name"], "version": info["digest"][:16],
                           "hashes": [{"alg": "SHA-256", "content": info["digest"]}]})
    return {"bomFormat": "CycloneDX", "specVersion": "1.6", "serialNumber": f"urn:uuid:{uuid.uuid4()}",
            "version": 1, "metadata": {"timestamp": created, "component": {
                "type": "application", "bom-ref": "appliance", "name": "appliance", "version": __version__,
                "properties": [{"name": "appliance:profile", "value": profile}]}},
            "components": components}


def _model_pack(home_settings, name: str, dest: Path) -> None:
    from appliance.db import connect
    from appliance.models.registry import get_model, model_dir

    engine = connect(home_settings)
    try:
        model, files = get_model(engine, name)
    finally:
        engine.dispose()
    source = model_dir(home_settings, model)
    pack = dest / name
    for f in files:
        target = pack / f.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / f.relpath, target)
        if sha256_file(target) != f.sha256:
            raise IntegrityError(f"model {name}: {f.relpath} no longer matches its recorded sha256")
    (pack / "model.json").write_text(json.dumps({"name": name, "digest": model.digest, "architecture":
                                                 model.architecture, "files": {f.relpath: f.sha256 for f in files}},
                                                indent=1, sort_keys=True) + "\n")


def build(profile: str, out: Path, key_path: Path, passphrase: bytes, *, lock: Path | None = None,
          find_links: tuple[Path, ...] = (), no_index: bool = False, models: tuple[str, ...] = (),
          home_settings=None, say: Say = lambda _: None) -> dict:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if profile not in PROFILES:
        raise InputError(f"--profile {profile!r}: one of {', '.join(PROFILES)}")
    lock = lock or REPO / "offline-wheels" / f"requirements-{profile}.lock"
    if not lock.is_file():
        raise InputError(f"{lock}: no lock for the {profile} profile (`make lock` writes it on a connected machine)")
    out = Path(os.path.abspath(out))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out {out}: exists and is not an empty folder")
    key = _private_key(key_path, passphrase)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InputError(f"--key {key_path}: not an ECDSA P-256 release key")
    staging = out.parent / f".{out.name}.building-{uuid.uuid4().hex[:8]}"
    wheels = staging / "offline-wheels"
    wheels.mkdir(parents=True, mode=0o755)
    try:
        links = [a for d in find_links for a in ("--find-links", str(d))] + (["--no-index"] if no_index else [])
        _pip(["wheel", "--quiet", "--no-deps", "--require-hashes", "-r", str(lock), "-w", str(wheels), *links], say)
        _pip(["wheel", "--quiet", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(wheels)], say)
        if any(p.suffix != ".whl" for p in wheels.iterdir()):
            raise StorageError(f"pip left something other than wheels in {wheels}")
        (staging / f"requirements-{profile}.lock").write_text(_install_lock(wheels, profile))
        if profile == "cpu":
            _llama_server(lock, staging, links, say)
        for name in models:
            if home_settings is None:
                raise InputError("--model needs an appliance home (APPLIANCE_HOME) where the model is registered")
            _model_pack(home_settings, name, staging / "models")
            say(f"model pack: {name}")
        created = datetime.now(UTC).isoformat(timespec="seconds")
        (staging / "sbom.cdx.json").write_text(json.dumps(_sbom(staging, profile, created), indent=1) + "\n")
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        (staging / "release-key.pub.pem").write_bytes(public)
        from appliance import __version__

        manifest = {"format": FORMAT, "profile": profile, "created_at": created, "appliance_version": __version__,
                    "key_fingerprint": fingerprint(public), "files": _files(staging)}
        data = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
        (staging / "manifest.json").write_bytes(data)
        signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
        (staging / "manifest.sig").write_text(base64.b64encode(signature).decode() + "\n")
        if out.exists():
            out.rmdir()
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"bundle": str(out), "profile": profile, "wheels": len(list((out / "offline-wheels").glob("*.whl"))),
            "files": len(manifest["files"]), "models": list(models), "key_fingerprint": manifest["key_fingerprint"]}


# --- verify ------------------------------------------------------------------------------------------------------
@dataclass
class BundleReport:
    bundle: str
    profile: str = ""
    files: int = 0
    key_fingerprint: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {"bundle": self.bundle, "ok": self.ok, "profile": self.profile, "files": self.files,
                "key_fingerprint": self.key_fingerprint, "problems": self.problems}


_LOCK_LINE = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})$", re.M)


def read_lock(text: str) -> dict[str, tuple[str, str]]:
    """A hash-pinned lock's pins: canonical name -> (version, sha256 of its file); a pin without a hash is not one."""
    from packaging.utils import canonicalize_name

    return {canonicalize_name(m.group(1)): (m.group(2), m.group(3)) for m in _LOCK_LINE.finditer(text)}


def verify(bundle: Path, public_key: Path) -> BundleReport:
    """Check the bundle offline: the manifest's signature by `public_key`, every file's sha256, nothing missing
    or added, and the install lock against the wheels. Every problem is named; nothing is changed."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from packaging.utils import parse_wheel_filename

    report = BundleReport(str(bundle))
    try:
        pem = public_key.read_bytes()
        key = serialization.load_pem_public_key(pem)
        report.key_fingerprint = fingerprint(pem)
    except OSError as exc:
        raise InputError(f"--public-key {public_key}: {exc.strerror}") from None
    except ValueError:
        raise InputError(f"--public-key {public_key}: not a PEM public key") from None
    if not bundle.is_dir():
        raise InputError(f"{bundle}: not a folder")
    try:
        data = (bundle / "manifest.json").read_bytes()
        signature = base64.b64decode((bundle / "manifest.sig").read_text().strip(), validate=True)
    except (OSError, ValueError) as exc:
        report.problems.append(f"manifest.json / manifest.sig: missing or unreadable ({exc})")
        return report
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        report.problems.append("manifest.sig: not a signature of manifest.json by the key "
                               f"{report.key_fingerprint[:16]} (a changed manifest, or another release key)")
    try:
        manifest = json.loads(data)
        listed: dict[str, str] = manifest["files"]
        report.profile = manifest.get("profile", "")
    except (ValueError, KeyError, TypeError):
        report.problems.append("manifest.json: not a bundle manifest")
        return report
    present = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - set(SIGNED)
    for name in sorted(set(listed) - present):
        report.problems.append(f"{name}: missing")
    for name in sorted(present - set(listed)):
        report.problems.append(f"{name}: not in the manifest")
    for name in sorted(set(listed) & present):
        if sha256_file(bundle / name) != listed[name]:
            report.problems.append(f"{name}: sha256 differs from the manifest")
    report.files = len(listed)
    lock = bundle / f"requirements-{report.profile}.lock"
    if lock.is_file():
        pinned = read_lock(lock.read_text())
        for wheel in sorted((bundle / "offline-wheels").glob("*.whl")):
            name, version, _, _ = parse_wheel_filename(wheel.name)
            if pinned.get(name) != (str(version), listed.get(f"offline-wheels/{wheel.name}")):
                report.problems.append(f"offline-wheels/{wheel.name}: not pinned by {lock.name} with its sha256")
    else:
        report.problems.append(f"requirements-{report.profile}.lock: missing")
    return report
