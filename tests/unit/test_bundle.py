"""`appliance bundle`: keygen, build from a lock (here two small local wheels, no index) and verify offline;
every kind of damage is named: a changed wheel, a missing or added file, a forged manifest, another key."""

import base64
import json
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE

pytestmark = pytest.mark.unit


def _wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel, as pip accepts it."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for n, text in files.items():
            z.writestr(n, text)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A release key and a cpu bundle of two small wheels plus the appliance's own wheel."""
    import hashlib

    from appliance.bundle import build, keygen

    root = tmp_path_factory.mktemp("bundle")
    wheels = root / "wheels"
    wheels.mkdir()
    lock = root / "requirements-cpu.lock"
    lines = []
    for name, version in (("tinyalpha", "1.0"), ("tinybeta", "2.3")):
        w = _wheel(wheels, name, version)
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{hashlib.sha256(w.read_bytes()).hexdigest()}")
    lock.write_text("\n".join(lines) + "\n")
    private, public, print_ = keygen(root / "keys", PASSPHRASE.encode())
    assert private.stat().st_mode & 0o777 == 0o600 and b"ENCRYPTED" in private.read_bytes()
    summary = build("cpu", root / "bundle", private, PASSPHRASE.encode(), lock=lock, find_links=(wheels,),
                    no_index=True)
    return root, root / "bundle", public, print_, summary


def test_a_built_bundle_verifies_offline_and_pins_every_wheel(built, cli):
    root, bundle, public, print_, summary = built
    assert summary["wheels"] == 3 and summary["key_fingerprint"] == print_
    names = sorted(p.name for p in (bundle / "offline-wheels").iterdir())
    assert names[0].startswith("appliance-0.1.0-") and names[1:] == ["tinyalpha-1.0-py3-none-any.whl",
                                                                     "tinybeta-2.3-py3-none-any.whl"]
    lock = (bundle / "requirements-cpu.lock").read_text()
    assert "appliance==0.1.0 \\\n    --hash=sha256:" in lock and "tinybeta==2.3" in lock
    sbom = json.loads((bundle / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"
    assert {c["purl"] for c in sbom["components"]} == {"pkg:pypi/appliance@0.1.0", "pkg:pypi/tinyalpha@1.0",
                                                      "pkg:pypi/tinybeta@2.3"}
    assert all(len(c["hashes"][0]["content"]) == 64 for c in sbom["components"])
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["files"]) == {f"offline-wheels/{n}" for n in names} | {
        "requirements-cpu.lock", "sbom.cdx.json", "release-key.pub.pem"}
    verified = cli("bundle", "verify", bundle, "--public-key", public, "--json")
    assert verified.code == 0, verified.out
    assert json.loads(verified.out) == {"bundle": str(bundle), "ok": True, "profile": "cpu", "files": 6,
                                        "key_fingerprint": print_, "problems": []}


def _damaged_copy(bundle: Path, copy: Path) -> Path:
    """A copy of the bundle with one wheel changed, the SBOM gone and a wheel the manifest does not list."""
    import shutil

    shutil.copytree(bundle, copy)
    wheel = copy / "offline-wheels" / "tinybeta-2.3-py3-none-any.whl"
    data = bytearray(wheel.read_bytes())
    data[10] ^= 1
    wheel.write_bytes(bytes(data))
    (copy / "sbom.cdx.json").unlink()
    (copy / "offline-wheels" / "extra-9.9-py3-none-any.whl").write_bytes(b"not listed")
    return copy


def test_verify_names_every_damage(built, cli, tmp_path):
    import shutil

    from appliance.bundle import keygen

    _, bundle, public, _, _ = built
    copy = _damaged_copy(bundle, tmp_path / "copy")
    result = cli("bundle", "verify", copy, "--public-key", public)
    assert result.code == 4 and "NOT verified" in result.out
    for line in ("offline-wheels/tinybeta-2.3-py3-none-any.whl: sha256 differs from the manifest",
                 "sbom.cdx.json: missing", "offline-wheels/extra-9.9-py3-none-any.whl: not in the manifest"):
        assert line in result.out, result.out

    forged = tmp_path / "forged"
    shutil.copytree(bundle, forged)
    manifest = json.loads((forged / "manifest.json").read_text())
    manifest["files"]["requirements-cpu.lock"] = "0" * 64
    (forged / "manifest.json").write_text(json.dumps(manifest))
    result = cli("bundle", "verify", forged, "--public-key", public)
    assert result.code == 4 and "manifest.sig: not a signature of manifest.json" in result.out

    _, other, _ = keygen(tmp_path / "other", PASSPHRASE.encode())
    result = cli("bundle", "verify", bundle, "--public-key", other)
    assert result.code == 4 and "another release key" in result.out
    sig = base64.b64decode((bundle / "manifest.sig").read_text())
    assert len(sig) > 60  # a DER ECDSA signature


def test_build_refuses_bad_input_with_one_line(built, cli, tmp_path, monkeypatch):
    root, bundle, _, _, _ = built
    monkeypatch.setenv("APPLIANCE_KEY_PASSPHRASE", PASSPHRASE)
    key = root / "keys" / "release-key.pem"
    taken = cli("bundle", "build", "--profile", "cpu", "--out", bundle, "--key", key, "--lock",
                root / "requirements-cpu.lock", "--no-index")
    assert taken.code == 2 and "exists and is not an empty folder" in taken.err
    monkeypatch.setenv("APPLIANCE_KEY_PASSPHRASE", "a different passphrase, long enough")
    wrong = cli("bundle", "build", "--profile", "cpu", "--out", tmp_path / "b", "--key", key, "--lock",
                root / "requirements-cpu.lock", "--no-index")
    assert wrong.code == 2 and "not a release key this passphrase opens" in wrong.err
    again = cli("bundle", "keygen", "--out", root / "keys")
    assert again.code == 2 and "never overwritten" in again.err
    for result in (taken, wrong, again):
        assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.building-*"))


def _stdlib_verify(bundle: Path, public: Path, profile: str = "cpu"):
    """The Ansible role's pre-install check (Python's standard library and openssl), as the role runs it."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "ansible/roles/appliance/files/verify_bundle.py"
    return subprocess.run([sys.executable, "-I", str(script), str(bundle), str(public), profile],
                          capture_output=True, text=True)


def test_the_roles_standard_library_check_agrees_with_bundle_verify(built, tmp_path):
    """Before anything is installed on the target there is no `appliance` to run: the role's own check must
    refuse what `bundle verify` refuses, naming the same file."""
    import hashlib
    import shutil

    from appliance.bundle import keygen

    _, bundle, public, _, _ = built
    good = _stdlib_verify(bundle, public)
    digest = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    assert good.returncode == 0 and good.stdout.strip() == f"0.1.0-{digest[:12]}", good.stderr
    assert "manifest.json: a 'cpu' bundle, not 'cuda'" in _stdlib_verify(bundle, public, "cuda").stderr

    copy = _damaged_copy(bundle, tmp_path / "copy")
    damaged = _stdlib_verify(copy, public)
    assert damaged.returncode == 4 and not damaged.stdout
    assert damaged.stderr.splitlines() == [
        f"bundle {copy}: sbom.cdx.json: missing",
        f"bundle {copy}: offline-wheels/extra-9.9-py3-none-any.whl: not in the manifest",
        f"bundle {copy}: offline-wheels/tinybeta-2.3-py3-none-any.whl: sha256 differs from the manifest"]

    forged = tmp_path / "forged"
    shutil.copytree(bundle, forged)
    manifest = json.loads((forged / "manifest.json").read_text())
    manifest["files"]["requirements-cpu.lock"] = "0" * 64
    (forged / "manifest.json").write_text(json.dumps(manifest))
    result = _stdlib_verify(forged, public)
    assert result.returncode == 4 and "manifest.sig: not a signature of manifest.json" in result.stderr

    _, other, _ = keygen(tmp_path / "other", PASSPHRASE.encode())
    result = _stdlib_verify(bundle, other)
    assert result.returncode == 4 and "another release key" in result.stderr

    unpinned = tmp_path / "unpinned"
    shutil.copytree(bundle, unpinned)
    (unpinned / "requirements-cpu.lock").write_text("tinyalpha==1.0\n")
    result = _stdlib_verify(unpinned, public)
    assert "offline-wheels/tinybeta-2.3-py3-none-any.whl: not pinned by requirements-cpu.lock" in result.stderr
