"""Training speed and memory: the appliance's default engine against a plain TRL + PEFT script.

Both sides train the embedded SmolLM2-135M-Instruct on the same help-desk conversations, with the same LoRA
settings, batch size, learning rate, seed and number of steps, one after the other in this run. Each side runs
in a child process of its own so that its peak resident memory is its own (and so that Unsloth's patches of
transformers cannot reach the baseline).

The baseline is written the way TRL's documentation shows: `SFTTrainer(model=<path>, peft_config=LoraConfig(...),
args=SFTConfig(...))`, keeping TRL's defaults for precision and gradient checkpointing. It needs `use_cpu=True`
to start on a machine without a GPU, and the CPU loss fix that the appliance also installs (TRL's Triton loss
kernel fails without a GPU), and nothing else.

    .venv/bin/python bench/train_bench.py [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "policies/recipes/smollm2-135m-lora-sft.yaml"


def _rows(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        messages = json.loads(line)["messages"]
        out.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return out


class _Clock:
    """A TrainerCallback timing the training steps (the first step included, model loading not)."""

    @staticmethod
    def make():
        from transformers import TrainerCallback

        class Clock(TrainerCallback):
            started = ended = None

            def on_train_begin(self, args, state, control, **kwargs):
                Clock.started = time.perf_counter()

            def on_train_end(self, args, state, control, **kwargs):
                Clock.ended = time.perf_counter()

        return Clock


def _result(trainer, clock) -> dict:
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    seconds = clock.ended - clock.started
    tokens = int(trainer.state.num_input_tokens_seen)
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds, "losses": losses,
            "final_loss": sum(losses[-3:]) / len(losses[-3:]), "steps": trainer.state.global_step}


def side_appliance(hf: Path, rows: list[dict], steps: int, out: Path, engine: str = "auto") -> dict:
    from appliance.train import engines
    from appliance.train.recipe import load_recipe

    recipe, _ = load_recipe(RECIPE)
    choice = engines.choose(engine, recipe)
    model, tokenizer = engines.load(choice, hf, recipe)
    clock = _Clock.make()
    trainer = engines.trainer_for(recipe, model, tokenizer, rows, out, steps, [clock()])
    trainer.train()
    return {**_result(trainer, clock), "engine": choice.engine, "reason": choice.reason}


def side_baseline(hf: Path, rows: list[dict], steps: int, out: Path, tuned: bool = False) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from appliance.train import cpu_loss
    from appliance.train.recipe import load_recipe

    cpu_loss.install()  # without it TRL's Triton loss kernel fails on a machine without a GPU
    recipe, _ = load_recipe(RECIPE)
    a = recipe.adapter
    clock = _Clock.make()
    peft_config = LoraConfig(r=a.rank, lora_alpha=a.alpha, lora_dropout=a.dropout,
                             target_modules=list(a.target_modules), task_type="CAUSAL_LM")
    args = SFTConfig(output_dir=str(out), use_cpu=True, max_steps=steps,
                     per_device_train_batch_size=recipe.batch_size, learning_rate=recipe.schedule.learning_rate,
                     warmup_steps=recipe.schedule.warmup_steps, max_length=recipe.max_seq_length, seed=recipe.seed,
                     logging_steps=1, save_strategy="no", report_to="none",
                     include_num_input_tokens_seen="non_padding",
                     **({"bf16": False, "gradient_checkpointing": False} if tuned else {}))
    trainer = SFTTrainer(model=str(hf), args=args, train_dataset=Dataset.from_list(rows), peft_config=peft_config,
                         callbacks=[clock()])
    trainer.train()
    engine = "trl, fp32, no gradient checkpointing" if tuned else "trl, TRL's defaults: bf16, gradient checkpointing"
    return {**_result(trainer, clock), "engine": engine}


def side_tuned(hf: Path, rows: list[dict], steps: int, out: Path) -> dict:
    """The same script with TRL's two CPU-hostile defaults turned off: what a user who profiled would run."""
    return side_baseline(hf, rows, steps, out, tuned=True)


def side_unsloth(hf: Path, rows: list[dict], steps: int, out: Path) -> dict:
    """`--engine unsloth`: Unsloth's path, which `auto` takes on a CUDA GPU."""
    return side_appliance(hf, rows, steps, out, engine="unsloth")


SIDES = {"appliance": side_appliance, "unsloth": side_unsloth, "baseline": side_baseline, "tuned": side_tuned}


def _child(side: str, hf: Path, rows_file: Path, steps: int, work: Path) -> dict:
    """Run one side in a fresh interpreter; its result plus its peak RSS from the kernel's accounting."""
    result_file, log = work / f"{side}.json", work / f"{side}.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, __file__, "--side", side, "--hf", str(hf), "--rows", str(rows_file),
                                 "--steps", str(steps), "--result", str(result_file)],
                                stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{side} failed:\n{log.read_text()[-3000:]}")
    result = json.loads(result_file.read_text())
    result["peak_rss_bytes"] = usage.ru_maxrss * 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--side", choices=tuple(SIDES))
    parser.add_argument("--hf", type=Path)
    parser.add_argument("--rows", type=Path)
    parser.add_argument("--result", type=Path)
    args = parser.parse_args()
    if args.side:
        import appliance  # noqa: F401  (offline environment before any hub library loads)

        rows = json.loads(args.rows.read_text())
        side = SIDES[args.side]
        with tempfile.TemporaryDirectory() as out:
            result = side(args.hf, rows, args.steps, Path(out))
        args.result.write_text(json.dumps(result))
        return

    from appliance.chatter import silence
    from appliance.models.convert import gguf_to_hf
    from appliance.models.sources import embedded_gguf

    silence()  # the converter's tensor bar

    rows = _rows(ROOT / "examples/helpdesk.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        hf = work / "hf"
        gguf_to_hf(embedded_gguf("smollm2")[1], hf)
        rows_file = work / "rows.json"
        rows_file.write_text(json.dumps(rows))
        print(f"SmolLM2-135M-Instruct, LoRA r=16 on all linear layers, batch 4, {args.steps} steps, "
              f"{len(rows)} help-desk conversations", flush=True)
        results = {side: _child(side, hf, rows_file, args.steps, work) for side in SIDES}
    app, base = results["appliance"], results["baseline"]
    for name, r in results.items():
        print(f"  {name:9}  {r['tokens_per_s']:7.1f} tokens/s  ({r['tokens']} tokens in {r['seconds']:.1f} s)  "
              f"peak RSS {r['peak_rss_bytes'] / 2**20:6.0f} MiB  final loss {r['final_loss']:.4f}  [{r['engine']}]")
    speed = app["tokens_per_s"] / base["tokens_per_s"]
    memory = app["peak_rss_bytes"] / base["peak_rss_bytes"]
    loss = abs(app["final_loss"] - base["final_loss"]) / base["final_loss"]
    print(f"against the baseline: speed {speed:.2f}x (target >= 2x); peak memory {memory:.0%} of the baseline "
          f"(target <= 60%); final loss differs by {loss:.1%} (target <= 5%)")
    tuned = results["tuned"]
    for name in ("appliance", "unsloth"):
        side = results[name]
        print(f"{name} against the tuned script: speed {side['tokens_per_s'] / tuned['tokens_per_s']:.2f}x; peak "
              f"memory {side['peak_rss_bytes'] / tuned['peak_rss_bytes']:.0%}; final loss differs by "
              f"{abs(side['final_loss'] - tuned['final_loss']) / tuned['final_loss']:.1%}")


if __name__ == "__main__":
    main()
