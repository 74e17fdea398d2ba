"""Training speed and memory: the appliance's default engine against a plain TRL + PEFT script.

Both sides train the embedded SmolLM2-135M-Instruct on the same help-desk conversations, with the same LoRA
settings, batch size, learning rate, seed and number of steps, one after the other in this run. Each side runs
in a child process of its own so that its peak resident memory is its own (and so that Unsloth's patches of
transformers cannot reach the baseline).

The baseline is written the way TRL's documentation shows: `SFTTrainer(model=<path>, peft_config=LoraConfig(...),
args=SFTConfig(...))`, keeping TRL's defaults for precision and gradient checkpointing. It needs `use_cpu=True`
to start on a machine without a GPU, and the CPU loss fix that the appliance also installs (TRL's Triton loss
kernel fails without a GPU), and nothing else.

Each side runs twice in ABBA order; a run's first 2 steps are not timed, and tokens are the non-padding tokens
of the timed steps, counted by the trainer the same way on every side.

    .venv/bin/python bench/train_bench.py [--steps 20]
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


UNTIMED = 2  # the first steps (allocator warm-up, lazy initialisation) are left out of every figure
PROFILE = os.environ.get("TRAIN_BENCH_PROFILE") == "1"  # set by --profile for the children


class _Clock:
    """A TrainerCallback timing each training step and the non-padding tokens it saw (model loading not timed)."""

    @staticmethod
    def make():
        from transformers import TrainerCallback

        class Clock(TrainerCallback):
            seconds: list[float] = []
            tokens: list[int] = []

            def on_step_begin(self, args, state, control, **kwargs):
                Clock._t, Clock._n = time.perf_counter(), state.num_input_tokens_seen

            def on_step_end(self, args, state, control, **kwargs):
                Clock.seconds.append(time.perf_counter() - Clock._t)
                Clock.tokens.append(int(state.num_input_tokens_seen - Clock._n))

        return Clock


class _Profiled:
    """A TrainerCallback that profiles steps 3 to 5 with torch.profiler and keeps the table of the operators that
    took the most time (`--profile`)."""

    @staticmethod
    def make(table: dict):
        import torch
        from transformers import TrainerCallback

        class Profiled(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                if state.global_step == UNTIMED:
                    self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                    self.profiler.__enter__()

            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == UNTIMED + 3:
                    self.profiler.__exit__(None, None, None)
                    events = self.profiler.key_averages()
                    total = sum(e.self_cpu_time_total for e in events)
                    table["rows"] = [(e.key, e.self_cpu_time_total / total) for e in
                                     sorted(events, key=lambda e: -e.self_cpu_time_total)[:10]]
                    table["step_s"] = total / 3 / 1e6

        return Profiled


def _result(trainer, clock) -> dict:
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    seconds, tokens = sum(clock.seconds[UNTIMED:]), sum(clock.tokens[UNTIMED:])
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds, "losses": losses,
            "untimed_s": round(sum(clock.seconds[:UNTIMED]), 1),
            "final_loss": sum(losses[-3:]) / len(losses[-3:]), "steps": trainer.state.global_step}


def side_appliance(hf: Path, rows: list[dict], steps: int, out: Path, engine: str = "auto") -> dict:
    from appliance.train import frameworks
    from appliance.train.recipe import load_recipe

    recipe, _ = load_recipe(RECIPE)
    choice = frameworks.choose(engine, recipe)
    model, tokenizer = frameworks.load(choice, hf, recipe)
    clock, table = _Clock.make(), {}
    trainer = frameworks.trainer_for(recipe, model, tokenizer, rows, out, steps,
                                     [clock()] + ([_Profiled.make(table)()] if PROFILE else []))
    trainer.train()
    return {**_result(trainer, clock), "engine": choice.framework, "reason": choice.reason, "profile": table}


def side_baseline(hf: Path, rows: list[dict], steps: int, out: Path, tuned: bool = False,
                  compiled: bool = False) -> dict:
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
    table: dict = {}
    trainer = SFTTrainer(model=str(hf), args=args, train_dataset=Dataset.from_list(rows), peft_config=peft_config,
                         callbacks=[clock()] + ([_Profiled.make(table)()] if PROFILE else []))
    if compiled:  # each decoder layer through TorchInductor; lengths vary by batch, so dynamic shapes
        for layer in trainer.model.base_model.model.model.layers:
            layer.compile(dynamic=True)
    trainer.train()
    engine = "trl, fp32, no gradient checkpointing" if tuned else "trl, TRL's defaults: bf16, gradient checkpointing"
    if compiled:
        engine += ", decoder layers compiled"
    return {**_result(trainer, clock), "engine": engine, "profile": table}


def side_tuned(hf: Path, rows: list[dict], steps: int, out: Path) -> dict:
    """The same script with TRL's two CPU-hostile defaults turned off: what a user who profiled would run."""
    return side_baseline(hf, rows, steps, out, tuned=True)


def side_compiled(hf: Path, rows: list[dict], steps: int, out: Path) -> dict:
    """The tuned script with torch.compile on each decoder layer (a candidate: kept only if it wins)."""
    return side_baseline(hf, rows, steps, out, tuned=True, compiled=True)


def side_unsloth(hf: Path, rows: list[dict], steps: int, out: Path) -> dict:
    """`--engine unsloth`: Unsloth's path, which `auto` takes on a CUDA GPU."""
    return side_appliance(hf, rows, steps, out, engine="unsloth")


SIDES = {"appliance": side_appliance, "unsloth": side_unsloth, "baseline": side_baseline, "tuned": side_tuned,
         "compiled": side_compiled}


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


def _combined(runs: list[dict]) -> dict:
    """A side's two runs as one: tokens and seconds summed, the higher peak RSS, the last run's losses."""
    tokens, seconds = sum(r["tokens"] for r in runs), sum(r["seconds"] for r in runs)
    return {**runs[-1], "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
            "spread": [round(r["tokens_per_s"], 1) for r in runs], "untimed": [r["untimed_s"] for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help=f"steps a run (the first {UNTIMED} untimed)")
    parser.add_argument("--side", choices=tuple(SIDES))
    parser.add_argument("--hf", type=Path)
    parser.add_argument("--rows", type=Path)
    parser.add_argument("--result", type=Path)
    parser.add_argument("--profile", action="store_true",
                        help="one run of the tuned script and of the appliance, each with torch.profiler on steps 3-5: "
                             "where a step's time goes")
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
        # A cache of the run's own: the compiled side's first run compiles cold, its second finds the cache warm.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(work / "inductor")
        if args.profile:
            os.environ["TRAIN_BENCH_PROFILE"] = "1"
            for side in ("tuned", "appliance"):
                result = _child(side, hf, rows_file, max(args.steps, UNTIMED + 4), work)
                print(f"\n{side} [{result['engine']}]: a step {result['profile']['step_s']:.2f} s of CPU time "
                      "(steps 3-5, both threads' operators)")
                for name, share in result["profile"]["rows"]:
                    print(f"  {share:6.1%}  {name}")
            return
        order = list(SIDES) + list(SIDES)[::-1]  # ABBA: a drift of the machine falls on every side alike
        runs: dict[str, list[dict]] = {side: [] for side in SIDES}
        for side in order:
            runs[side].append(_child(side, hf, rows_file, args.steps, work))
    results = {side: _combined(r) for side, r in runs.items()}
    app, base = results["appliance"], results["baseline"]
    for name, r in results.items():
        print(f"  {name:9}  {r['tokens_per_s']:7.1f} tokens/s (runs {r['spread']}; {r['tokens']} tokens in "
              f"{r['seconds']:.1f} s; first {UNTIMED} steps {r['untimed']} s)  "
              f"peak RSS {r['peak_rss_bytes'] / 2**20:6.0f} MiB  final loss {r['final_loss']:.4f}  [{r['engine']}]")
    speed = app["tokens_per_s"] / base["tokens_per_s"]
    memory = app["peak_rss_bytes"] / base["peak_rss_bytes"]
    loss = abs(app["final_loss"] - base["final_loss"]) / base["final_loss"]
    print(f"against the baseline: speed {speed:.2f}x (target >= 2x); peak memory {memory:.0%} of the baseline "
          f"(target <= 60%); final loss differs by {loss:.1%} (target <= 5%)")
    tuned = results["tuned"]
    for name in ("appliance", "unsloth", "compiled"):
        side = results[name]
        print(f"{name} against the tuned script: speed {side['tokens_per_s'] / tuned['tokens_per_s']:.2f}x; peak "
              f"memory {side['peak_rss_bytes'] / tuned['peak_rss_bytes']:.0%}; final loss differs by "
              f"{abs(side['final_loss'] - tuned['final_loss']) / tuned['final_loss']:.1%}")


if __name__ == "__main__":
    main()
