"""Building llama.cpp's `llama-server` from the llama.cpp tree vendored in the locked llama-cpp-python sdist.

The binding decodes one sequence at a time; `llama-server` batches every open request over parallel slots with
one KV cache. It is built from the same sdist the lock pins (so the server and the binding share one llama.cpp
commit: the GGUF and LoRA code the tests cover), once per machine, cached under
`~/.cache/appliance/llama-server/<sdist sha256>-<options digest>/`, and carried by the offline bundle.

Every download of the llama.cpp build is switched off: no prebuilt web UI (`LLAMA_USE_PREBUILT_UI=OFF`), no UI
build, no OpenSSL, no tests or examples (their CMake fetches models); as root the configure and build run
under `unshare -n`, so a step that tried to reach the network would fail the build. The binary is portable
across x86-64 CPUs with AVX2 (`GGML_NATIVE=OFF`: not tuned to the build machine's instruction set) and links
ggml statically.

The same tree's converters (`convert_hf_to_gguf.py`, `convert_lora_to_gguf.py`, the `conversion` package and
its own `gguf-py`) are taken out beside the binary and installed under this Python's prefix
(`share/appliance/llama.cpp`): model import and adapter packaging run them (`appliance.models.llama_tools`).

    python -m appliance.serve.llama_server_build [--sdist FILE] [--link DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from appliance.digests import sha256_file
from appliance.errors import InputError, StorageError

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "llama_cpp_python"
BINARY = "llama-server"
CONVERTERS = "llama.cpp-convert"  # the cache's and the bundle's folder name for the converters
# What the converters need from the tree: the two scripts, the model classes and the gguf package they import.
CONVERTER_PATHS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/", "gguf-py/gguf/", "LICENSE")
OPTIONS = ("-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF", "-DBUILD_SHARED_LIBS=OFF",
           "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_OPENSSL=OFF",
           "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_LLGUIDANCE=OFF",
           "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TOOLS=ON")


def cache_root() -> Path:
    base = os.environ.get("APPLIANCE_BUILD_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "appliance")
    return Path(base) / "llama-server"


def pinned(lock: Path | None = None) -> tuple[str, str]:
    """(version, sha256) of llama-cpp-python in the CPU lock."""
    lock = lock or REPO / "offline-wheels" / "requirements-cpu.lock"
    text = lock.read_text() if lock.is_file() else ""
    found = re.search(rf"^{PACKAGE}==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{{64}})", text, re.M)
    if not found:
        raise InputError(f"{lock}: does not pin {PACKAGE} with its sha256")
    return found.group(1), found.group(2)


def options_digest() -> str:
    return hashlib.sha256("\n".join(OPTIONS).encode()).hexdigest()[:12]


def cached_binary(sdist_sha256: str) -> Path:
    return cache_root() / f"{sdist_sha256[:16]}-{options_digest()}" / BINARY


def fetch_sdist(version: str, sha256: str, dest: Path, pip_options: tuple[str, ...] = ()) -> Path:
    """The pinned sdist: from the cache, or through pip (the registry or `pip_options`' --find-links, hash-checked),
    as every install does."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{PACKAGE}-{version}.tar.gz"
    if path.is_file() and sha256_file(path) == sha256:
        return path
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "req.txt"
        req.write_text(f"{PACKAGE}=={version} --hash=sha256:{sha256}\n")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "--require-hashes", "-r", str(req), "-d", tmp, *pip_options], check=True)
        got = next(Path(tmp).glob(f"{PACKAGE}-{version}.tar.gz"), None)
        if got is None:
            raise StorageError(f"pip download left no {PACKAGE}-{version}.tar.gz")
        shutil.move(str(got), path)
    return path


def pins_llama_server(lock: Path) -> bool:
    """Whether the lock pins the llama-cpp-python sdist llama-server is built from."""
    try:
        pinned(lock)
    except InputError:
        return False
    return True


def _network_off(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0 and shutil.which("unshare"):
        return ["unshare", "-n", *cmd]
    return cmd


def build(sdist: Path, *, jobs: int | None = None, say=print) -> Path:
    """The cached binary for this sdist, built first if absent. Returns its path."""
    digest = sha256_file(sdist)
    target = cached_binary(digest)
    if target.is_file():
        say(f"llama-server: cached build {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    with tempfile.TemporaryDirectory(prefix="llama-server-build-") as tmp:
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name]
            tar.extractall(tmp, members=members, filter="data")
        src = next(Path(tmp).glob("*/vendor/llama.cpp"))
        out = Path(tmp) / "build"
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        say(f"llama-server: building from {sdist.name} (sha256 {digest[:16]}…), network off; a few minutes")
        subprocess.run(_network_off(["cmake", "-S", str(src), "-B", str(out), *gen, *OPTIONS]), check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(_network_off(["cmake", "--build", str(out), "--target", BINARY, "-j",
                                     str(jobs or os.cpu_count() or 1)]), check=True, stdout=subprocess.DEVNULL)
        built = out / "bin" / BINARY
        if not built.is_file():
            raise StorageError(f"{built}: the build finished without the binary")
        partial = target.with_suffix(".partial")
        shutil.copy2(built, partial)
        os.chmod(partial, 0o755)
        os.replace(partial, target)
        (target.parent / "source.txt").write_text(f"{sdist.name} sha256:{digest}\n" + "\n".join(OPTIONS) + "\n")
    say(f"llama-server: built {target}")
    return target


def converters(sdist: Path) -> Path:
    """The cached folder of llama.cpp's converters from this sdist, taken out first if absent."""
    digest = sha256_file(sdist)
    target = cache_root() / f"{digest[:16]}-{CONVERTERS}"
    if (target / "convert_hf_to_gguf.py").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    with tempfile.TemporaryDirectory(prefix="llama-convert-", dir=target.parent) as tmp:
        with tarfile.open(sdist) as tar:
            members = []
            for m in tar.getmembers():
                _, _, rel = m.name.partition("/vendor/llama.cpp/")
                if rel and any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in CONVERTER_PATHS):
                    members.append(m)
            tar.extractall(tmp, members=members, filter="data")
        src = next(Path(tmp).glob("*/vendor/llama.cpp"), None)
        if src is None or not (src / "convert_hf_to_gguf.py").is_file():
            raise StorageError(f"{sdist}: holds no vendor/llama.cpp/convert_hf_to_gguf.py")
        (src / "source.txt").write_text(f"{sdist.name} sha256:{digest}\n")
        for path in [src, *src.rglob("*")]:  # readable by every account that imports or packages, whatever the umask
            os.chmod(path, 0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
        try:
            os.replace(src, target)
        except OSError:
            if not (target / "convert_hf_to_gguf.py").is_file():  # not another process's finished extraction
                raise
    return target


def link_converters(folder: Path, prefix: Path) -> Path:
    """Copy the converters under `prefix`/share/appliance/llama.cpp (where `find_converters` looks first)."""
    dest = prefix / "share" / "appliance" / "llama.cpp"
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(folder, partial)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(partial, dest)
    return dest


def find_converters() -> Path | None:
    """llama.cpp's converters: `APPLIANCE_LLAMA_CONVERTERS`, else under this Python's prefix, else under the prefix
    of the environment whose packages this Python runs (a release's wrapper may run the host's interpreter)."""
    import importlib.util

    named = os.environ.get("APPLIANCE_LLAMA_CONVERTERS")
    if named:
        folders = [Path(named)]
    else:
        folders = [Path(sys.prefix) / "share" / "appliance" / "llama.cpp"]
        spec = importlib.util.find_spec("llama_cpp")
        if spec is not None and spec.origin:  # <prefix>/lib/pythonX.Y/site-packages/llama_cpp/__init__.py
            folders.append(Path(spec.origin).resolve().parents[4] / "share" / "appliance" / "llama.cpp")
    return next((f for f in folders if (f / "convert_hf_to_gguf.py").is_file()), None)


def link_into(binary: Path, bin_dir: Path) -> Path:
    """Copy the binary beside the venv's python (where the appliance looks first)."""
    dest = bin_dir / BINARY
    partial = dest.with_suffix(".partial")
    shutil.copy2(binary, partial)
    os.chmod(partial, 0o755)
    os.replace(partial, dest)
    os.utime(dest)  # newer than what make built it from
    return dest


def find() -> Path | None:
    """The llama-server the appliance runs: `APPLIANCE_LLAMA_SERVER`, else beside this Python, else on PATH."""
    named = os.environ.get("APPLIANCE_LLAMA_SERVER")
    if named:
        return Path(named)
    beside = Path(sys.executable).parent / BINARY
    if beside.is_file():
        return beside
    found = shutil.which(BINARY)
    return Path(found) if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llama_server_build", description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, help="the llama-cpp-python sdist (default: the lock's, cached)")
    parser.add_argument("--link", type=Path, default=Path(sys.executable).parent,
                        help="folder to copy the binary into (default: this Python's bin)")
    args = parser.parse_args(argv)
    version, sha = pinned()
    sdist = args.sdist or fetch_sdist(version, sha, cache_root() / "sdist")
    if sha256_file(sdist) != sha:
        raise SystemExit(f"{sdist}: sha256 differs from the lock's {sha}")
    print(f"llama-server: {link_into(build(sdist), args.link)}")
    print(f"llama.cpp converters: {link_converters(converters(sdist), args.link.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
