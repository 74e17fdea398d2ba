"""llama.cpp's own tools, run on the appliance's files: the Hugging Face -> GGUF converter, the PEFT LoRA ->
GGUF LoRA converter, and the quantizer.

The converters are the scripts of the llama.cpp tree vendored in the locked llama-cpp-python sdist (the commit
the binding and llama-server are built from), installed beside this Python by `llama_server_build`; each runs
as a child process of this Python with the hub libraries offline, no `--remote`, and a base folder given, so
nothing is fetched. The quantizer is llama.cpp's `llama_model_quantize` through the binding, in a child process
too, so a crash or its per-tensor log stays out of the caller. Every tool writes a temporary file that is
renamed into place only when the tool succeeded; its log is kept in the temporary folder and its last lines
named in the error when it fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from appliance.errors import InputError, StorageError

# GGML file types the quantizer can write (llama.cpp's `llama_ftype` values).
QUANT_TYPES = {"F16": 1, "Q4_0": 2, "Q8_0": 7, "Q5_0": 8, "Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18, "BF16": 32}
# Bytes a weight takes in each type (for the preflight and the progress bar); block scales included.
BYTES_PER_WEIGHT = {"F32": 4.0, "F16": 2.0, "BF16": 2.0, "Q8_0": 1.0625, "Q6_K": 0.82, "Q5_K_M": 0.69,
                    "Q5_0": 0.69, "Q4_K_M": 0.6, "Q4_0": 0.5625}
_QUANTIZE = """
import ctypes, sys
import llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = int(sys.argv[3])
params.nthread = int(sys.argv[4])
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(params)))
"""


def converters() -> Path:
    from appliance.serve.llama_server_build import find_converters

    folder = find_converters()
    if folder is None:
        raise StorageError("llama.cpp's converters are not installed under this Python "
                           f"({Path(sys.prefix) / 'share/appliance/llama.cpp'}); run `make install`, or install the "
                           "bundle's engines/llama.cpp-convert")
    return folder


def _env() -> dict[str, str]:
    from appliance.offline import OFFLINE_ENV

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLAMA_", "NO_LOCAL_GGUF"))}
    env.update({k: v for k, v in OFFLINE_ENV.items()}, PYTHONNOUSERSITE="1", TQDM_DISABLE="1",
               PYTHONDONTWRITEBYTECODE="1")
    # The child sees the packages this process sees (a release's wrapper may add its environment to the
    # host's interpreter rather than run the environment's own).
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def _watch(path: Path, expected: int, label: str, stop: threading.Event) -> None:
    """A progress bar on stderr (a terminal only) from the size `path` has reached against `expected` bytes."""
    from tqdm import tqdm

    with tqdm(total=max(expected, 1), unit="B", unit_scale=True, desc=label, leave=False,
              disable=not sys.stderr.isatty(), file=sys.stderr, dynamic_ncols=True) as bar:
        while not stop.wait(0.5):
            size = path.stat().st_size if path.exists() else 0
            bar.update(min(size, expected) - bar.n)


def _run(cmd: list[str], out: Path, *, label: str, expected: int, what: str) -> None:
    """Run a tool writing `out` (through a temporary name beside it); the tool's log names the failure."""
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.unlink(missing_ok=True)
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(tmp, expected, label, stop), daemon=True)
    if "{" in out.name or "}" in out.name:  # llama.cpp's converter formats the output name
        raise InputError(f"{out.name}: braces are not allowed in a GGUF file name")
    with tempfile.TemporaryDirectory(prefix=".llama-tool-", dir=out.parent) as work:
        log_path = Path(work) / "log.txt"
        watcher.start()
        try:
            with open(log_path, "wb") as log:
                done = subprocess.run([part if part != "{out}" else str(tmp) for part in cmd], stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_env(), cwd=work)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            stop.set()
            watcher.join()
        if done.returncode != 0 or not tmp.is_file():
            tmp.unlink(missing_ok=True)
            lines = [ln.strip() for ln in log_path.read_text("utf-8", "replace").splitlines() if ln.strip()]
            cause = _cause(lines)
            raise StorageError(f"{what} failed (exit {done.returncode}): {cause}")
    os.chmod(tmp, 0o600)
    os.replace(tmp, out)


def _cause(lines: list[str]) -> str:
    """The line of a tool's log that says why it stopped: an error line if there is one, else the last."""
    for line in reversed(lines):
        if line.startswith(("ERROR", "Error", "error")) or "Error:" in line or "error:" in line:
            return line[:400]
    return (lines[-1] if lines else "no output")[:400]


def hf_to_gguf(hf_dir: Path, out: Path, *, outtype: str = "f16", expected_bytes: int = 0) -> Path:
    """`hf_dir` (a Hugging Face folder) as a GGUF file at `out`, by llama.cpp's `convert_hf_to_gguf.py`."""
    if outtype not in ("f32", "f16", "bf16", "q8_0"):
        raise InputError(f"GGUF output type {outtype!r}: one of f32, f16, bf16, q8_0")
    script = converters() / "convert_hf_to_gguf.py"
    _run([sys.executable, str(script), str(hf_dir), "--outfile", "{out}", "--outtype", outtype], out,
         label=f"GGUF {outtype}", expected=expected_bytes, what=f"llama.cpp's converter on {hf_dir}")
    return out


def lora_to_gguf(adapter_dir: Path, base_hf_dir: Path, out: Path) -> Path:
    """A PEFT LoRA adapter as llama.cpp's GGUF LoRA (f32), by llama.cpp's `convert_lora_to_gguf.py` with the
    base model's folder (its config; no weights are read)."""
    script = converters() / "convert_lora_to_gguf.py"
    size = sum(p.stat().st_size for p in adapter_dir.glob("*.safetensors"))
    _run([sys.executable, str(script), str(adapter_dir), "--base", str(base_hf_dir), "--outfile", "{out}",
          "--outtype", "f32"], out, label="GGUF LoRA", expected=size,
         what=f"llama.cpp's LoRA converter on {adapter_dir}")
    return out


def quantize(src: Path, out: Path, qtype: str, *, parameters: int = 0) -> Path:
    """`src` (an f16/bf16/f32 GGUF) quantized to `qtype` by llama.cpp's quantizer."""
    if qtype not in QUANT_TYPES:
        raise InputError(f"quantization {qtype!r}: one of {', '.join(QUANT_TYPES)}")
    expected = int(parameters * BYTES_PER_WEIGHT.get(qtype, 1.0))
    _run([sys.executable, "-c", _QUANTIZE, str(src), "{out}", str(QUANT_TYPES[qtype]), str(os.cpu_count() or 1)],
         out, label=qtype, expected=expected, what=f"llama.cpp's quantizer ({qtype}) on {src.name}")
    return out
