"""Importing a Hugging Face folder for llama.cpp: `appliance models import` against what an operator would run by
hand (llama.cpp's `convert_hf_to_gguf.py` to f16, then llama.cpp's quantizer to Q8_0), on the same folder, one
after the other in this run; wall time and peak resident memory of each (`/usr/bin/time`, the child processes
included). The import also copies the folder, hashes every file and records it; the by-hand run does neither.

Two folders: the embedded SmolLM2-135M's safetensors copy (made from its GGUF), and a Qwen2.5-0.5B-shaped folder
(494M parameters, random weights, f32) written by transformers here.

    .venv/bin/python bench/convert_bench.py [--skip-large]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def _timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(seconds, peak RSS in GB) of `cmd` and its children."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        subprocess.run(["/usr/bin/time", "-o", out.name, "-f", "%e %M", *cmd], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds, kb = out.read().split()[-2:]
    return float(seconds), int(kb) * 1024 / 1e9


def _qwen05(dest: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from tests.helpers import sentencepiece_model, write_tokenizer_config

    config = Qwen2Config(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
                         tie_word_embeddings=True, bos_token_id=2, eos_token_id=1, pad_token_id=1)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(dest, safe_serialization=True)
    sentencepiece_model(dest)
    write_tokenizer_config(dest)
    return dest


def _embedded(dest: Path) -> Path:
    from appliance.models.convert import gguf_to_hf
    from appliance.models.sources import embedded_gguf

    gguf_to_hf(embedded_gguf("smollm2")[1], dest)
    return dest


def _measure(name: str, folder: Path, work: Path) -> dict:
    from appliance.models.llama_tools import QUANT_TYPES, converters

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    f16, q8 = work / f"{name}-f16.gguf", work / f"{name}-q8.gguf"
    convert_s, convert_gb = _timed([PY, str(converters() / "convert_hf_to_gguf.py"), str(folder), "--outfile",
                                    str(f16), "--outtype", "f16"], env)
    quant = ("import ctypes, sys, llama_cpp\np = llama_cpp.llama_model_quantize_default_params()\n"
             f"p.ftype = {QUANT_TYPES['Q8_0']}\np.nthread = {os.cpu_count()}\n"
             "sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p)))")
    quant_s, quant_gb = _timed([PY, "-c", quant, str(f16), str(q8)], env)
    home = work / f"home-{name}"
    app_env = {**env, "APPLIANCE_HOME": str(home), "APPLIANCE_DATABASE_URL": "", "APPLIANCE_TOKEN": ""}
    # The registry's import as the appliance itself (the CLI's permission check needs an admin's session).
    script = ("import sys\nfrom pathlib import Path\nfrom appliance.config import load_settings\n"
              "from appliance.context import Context\nfrom appliance.db import connect, migrate\n"
              "from appliance.models import registry\nsettings = load_settings()\nsettings.home.mkdir(mode=0o700)\n"
              "engine = connect(settings, create=True)\nmigrate(engine)\n"
              "registry.import_path(Context(settings, engine), Path(sys.argv[1]), sys.argv[2], say=lambda _: None)")
    import_s, import_gb = _timed([PY, "-c", script, str(folder), name], app_env)
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    by_hand = convert_s + quant_s
    return {"model": name, "safetensors_gb": round(size / 1e9, 2), "convert_s": convert_s, "quantize_s": quant_s,
            "by_hand_s": round(by_hand, 1), "by_hand_peak_gb": round(max(convert_gb, quant_gb), 2),
            "import_s": import_s, "import_peak_gb": round(import_gb, 2),
            "import_vs_by_hand": round(import_s / by_hand, 2),
            "q8_gb": round(q8.stat().st_size / 1e9, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-large", action="store_true", help="only the embedded model")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    results = []
    with tempfile.TemporaryDirectory(prefix="convert-bench-") as tmp:
        work = Path(tmp)
        results.append(_measure("smollm2-135m", _embedded(work / "smollm2"), work))
        if not args.skip_large:
            results.append(_measure("qwen2-0.5b-shaped", _qwen05(work / "qwen05"), work))
    for r in results:
        print(json.dumps(r))
        print(f"{r['model']}: import {r['import_s']:.1f} s (peak {r['import_peak_gb']} GB) against by hand "
              f"{r['by_hand_s']:.1f} s (converter {r['convert_s']:.1f} s + quantizer {r['quantize_s']:.1f} s, peak "
              f"{r['by_hand_peak_gb']} GB): {r['import_vs_by_hand']}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
