"""Trainer callbacks: progress and per-step metrics (terminal, database, log file), safetensors checkpoints,
and restoring optimizer, scheduler and RNG state on resume."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback

from appliance.audit.events import Event
from appliance.audit.log import record
from appliance.db import session_scope
from appliance.train import checkpoints, runs


class ProgressCallback(TrainerCallback):
    def __init__(self, ctx, run, steps: int, say) -> None:
        self.ctx, self.run, self.steps, self.say = ctx, run, steps, say
        self.log = Path(ctx.settings.home / run.path / "train.log")
        self.started = self.last_time = time.perf_counter()
        self.last_tokens = 0
        self.first_step = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs or not state.is_world_process_zero:
            return
        now = time.perf_counter()
        # Tokens trained on (padding not counted: `include_num_input_tokens_seen="non_padding"`); None where the
        # trainer's batches carry no `input_ids` to count (ORPO's do not).
        tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        tps = None if not tokens else (tokens - self.last_tokens) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_tokens = now, tokens
        if self.first_step is None:
            self.first_step, self.started = state.global_step, now
        done = state.global_step - self.first_step
        eta = (now - self.started) / done * (self.steps - state.global_step) if done else float("nan")
        loss, lr = float(logs["loss"]), float(logs.get("learning_rate", 0.0))
        with session_scope(self.ctx.engine) as s:
            runs.add_metric(s.connection(), self.run.id, state.global_step, loss, lr, tps)
            runs.update(s.connection(), self.run.id, steps_done=state.global_step, final_loss=loss)
        line = {"step": state.global_step, "loss": loss, "learning_rate": lr,
                "tokens_per_second": None if tps is None else round(tps, 1)}
        with open(self.log, "a") as fh:
            fh.write(json.dumps(line) + "\n")
        eta_text = "?" if eta != eta else f"{int(eta // 60)}:{int(eta % 60):02d}"
        rate = "" if tps is None else f"{tps:,.0f} tok/s  "
        self.say(f"step {state.global_step}/{self.steps}  loss {loss:.4f}  lr {lr:.2e}  {rate}ETA {eta_text}")


class CheckpointCallback(TrainerCallback):
    def __init__(self, ctx, run, run_dir: Path, every: int) -> None:
        self.ctx, self.run, self.run_dir, self.every = ctx, run, run_dir, every

    def on_step_end(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        if state.global_step % self.every or state.global_step >= state.max_steps or not state.is_world_process_zero:
            return
        target = self.run_dir / "checkpoints" / f"step-{state.global_step}"
        checkpoints.save(target, model, optimizer, lr_scheduler, state)
        with session_scope(self.ctx.engine) as s:
            record(self.ctx, s, Event("train.checkpoint", "run", self.run.name,
                                      details={"step": state.global_step}))


class LeaseCallback(TrainerCallback):
    """Stops training at the end of a step once the run's lease is lost (`lease.Heartbeat`)."""

    def __init__(self, beat) -> None:
        self.beat = beat

    def on_step_end(self, args, state, control, **kwargs):
        self.beat.check()


class ResumeCallback(TrainerCallback):
    """Trainer restores the adapter and its JSON state from the checkpoint itself; this restores the rest."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        checkpoints.restore(self.directory, optimizer, lr_scheduler)
