"""Training on a CUDA GPU: Unsloth against plain TRL for each method, tokens/s and peak VRAM side by side.

    .venv/bin/python bench/gpu_train_bench.py [--steps 20]           # needs a CUDA GPU
    .venv/bin/python bench/gpu_train_bench.py --device cpu --steps 3 # the same sides on the CPU: a smoke run

For SFT with LoRA, SFT with QLoRA (4-bit NF4), DPO and ORPO on the embedded SmolLM2-135M-Instruct, with the
recipes shipped in policies/recipes/: `--engine unsloth` (SFT only; the appliance's Unsloth path trains SFT) and
`--engine trl`, each side in a child process of its own (so that Unsloth's patches cannot reach the TRL side and
each side's peak VRAM is its own), the same rows, seed and steps. The first 2 steps are not timed. Tokens are the
tokens trained on (padding not counted); where a trainer's batches carry no `input_ids` to count (ORPO's), the
examples/s column still compares the sides. Anchors to compare with: Unsloth's README (2x faster, 70% less VRAM)
and TRL's documentation (2.74x with Unsloth on an A100).

Without a CUDA GPU (and without `--device cpu`) it says so and exits 2.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "policies" / "recipes"
CASES = {  # name: (recipe, examples file, engines)
    "sft-lora": ("smollm2-135m-lora-sft.yaml", "helpdesk.jsonl", ("unsloth", "trl")),
    "sft-qlora": ("smollm2-135m-qlora-sft.yaml", "helpdesk.jsonl", ("unsloth", "trl")),
    "dpo": ("smollm2-135m-lora-dpo.yaml", "preferences.jsonl", ("trl",)),
    "orpo": ("smollm2-135m-lora-orpo.yaml", "preferences.jsonl", ("trl",)),
}
UNTIMED = 2


def rows_for(examples: str) -> list[dict]:
    """The rows `appliance train` hands its trainer (`train/data.py`), from an example file."""
    out = []
    for line in (ROOT / "examples" / examples).read_text().splitlines():
        record = json.loads(line)
        if "chosen" in record:
            out.append({k: record[k] for k in ("prompt", "chosen", "rejected")})
        else:
            messages = record["messages"]
            out.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return out


def side(case: str, engine: str, hf: Path, steps: int, out: Path) -> dict:
    import torch
    from transformers import TrainerCallback

    from appliance.train import frameworks
    from appliance.train.recipe import load_recipe

    recipe_file, examples, _ = CASES[case]
    recipe, _ = load_recipe(RECIPES / recipe_file)
    marks: list[tuple[float, int]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            marks.append((time.perf_counter(), int(state.num_input_tokens_seen or 0)))

    choice = frameworks.choose(engine, recipe)
    model, tokenizer = frameworks.load(choice, hf, recipe)
    trainer = frameworks.trainer_for(recipe, model, tokenizer, rows_for(examples), out, steps, [Clock()])
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    (t0, n0), (t1, n1) = marks[UNTIMED - 1], marks[-1]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    examples_per_step = recipe.batch_size * recipe.gradient_accumulation
    return {"case": case, "engine": choice.framework, "reason": choice.reason, "timed_steps": len(marks) - UNTIMED,
            "seconds": t1 - t0, "tokens_per_s": (n1 - n0) / (t1 - t0) if n1 > n0 else None,
            "examples_per_s": (len(marks) - UNTIMED) * examples_per_step / (t1 - t0),
            "peak_vram_bytes": torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
            "final_loss": sum(losses[-3:]) / len(losses[-3:]), "dtype": str(model.dtype)}


def child(case: str, engine: str, hf: Path, steps: int, work: Path, device: str) -> dict:
    result_file, log = work / f"{case}-{engine}.json", work / f"{case}-{engine}.log"
    env = None if device == "cuda" else {**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""}
    with open(log, "w") as sink:
        done = subprocess.run([sys.executable, __file__, "--case", case, "--engine", engine, "--hf", str(hf),
                               "--steps", str(steps), "--result", str(result_file)], stdout=sink,
                              stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        return {"case": case, "engine": engine, "error": log.read_text()[-1500:]}
    return json.loads(result_file.read_text())


def _line(r: dict) -> str:
    if "error" in r:
        return f"  {r['case']:<10} {r['engine']:<8} FAILED: {r['error'].strip().splitlines()[-1]}"
    tps = "-" if r["tokens_per_s"] is None else f"{r['tokens_per_s']:8.1f}"
    vram = "-" if r["peak_vram_bytes"] is None else f"{r['peak_vram_bytes'] / 2**20:7.0f} MiB"
    return (f"  {r['case']:<10} {r['engine']:<8} {tps} tokens/s  {r['examples_per_s']:6.2f} examples/s  "
            f"peak VRAM {vram}  final loss {r['final_loss']:.4f}  [{r['dtype']}; {r['reason']}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--case", choices=tuple(CASES))
    parser.add_argument("--engine", choices=("unsloth", "trl"))
    parser.add_argument("--hf", type=Path)
    parser.add_argument("--result", type=Path)
    args = parser.parse_args()
    if args.case:
        import appliance  # noqa: F401  (offline environment before any hub library loads)

        with tempfile.TemporaryDirectory() as out:
            args.result.write_text(json.dumps(side(args.case, args.engine, args.hf, args.steps, Path(out))))
        return
    if args.steps <= UNTIMED:
        raise SystemExit(f"--steps must be above the {UNTIMED} untimed steps")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here: nothing measured (`--device cpu` runs the same sides on the CPU as a smoke run)")
        raise SystemExit(2)
    from appliance.chatter import silence
    from appliance.models.convert import gguf_to_hf
    from appliance.models.sources import embedded_gguf

    silence()  # the converter's tensor bar

    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
    print(f"{gpu}: SmolLM2-135M-Instruct, the shipped recipes, {args.steps} steps ({UNTIMED} untimed), one child "
          "process per side", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        hf = work / "hf"
        gguf_to_hf(embedded_gguf("smollm2")[1], hf)
        for case, (_, _, engines_) in CASES.items():
            for engine in engines_:
                results.append(child(case, engine, hf, args.steps, work, args.device))
                print(_line(results[-1]), flush=True)
    by = {(r["case"], r["engine"]): r for r in results if "error" not in r}
    for case in ("sft-lora", "sft-qlora"):
        u, t = by.get((case, "unsloth")), by.get((case, "trl"))
        if u and t:
            vram = (f"; peak VRAM {u['peak_vram_bytes'] / t['peak_vram_bytes']:.0%} of TRL's"
                    if u["peak_vram_bytes"] and t["peak_vram_bytes"] else "")
            print(f"{case}: Unsloth {u['examples_per_s'] / t['examples_per_s']:.2f}x TRL's examples/s{vram}; final "
                  f"loss {u['final_loss']:.4f} against {t['final_loss']:.4f}")
    if any("error" in r for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
