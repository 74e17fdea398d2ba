"""Training the embedded model for real: plan, policy, progress, checkpoints, resume after kill -9, and proof
that the adapter learns the taught format where the base model does not."""

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update

from appliance.db.tables import artifact, audit_event, eval_result, training_run
from tests.conftest import audit_events, home_db, run_appliance, run_inprocess

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SFT = ROOT / "policies" / "recipes" / "smollm2-135m-lora-sft.yaml"
FORMAT = re.compile(r"^CATEGORY: [A-Z]+\nPRIORITY: P[1-4]\nACTION: .+$")


def events(root: Path, prefix: str, run: str = "%") -> list[tuple[str, str, str]]:
    e = audit_event.c
    with home_db(root / "home").connect() as conn:
        return [tuple(r) for r in conn.execute(select(e.action, e.object_id, e.outcome).where(
            e.action.like(prefix + "%"), e.object_id.like(run)).order_by(e.seq))]


def test_plan_measures_without_training(lab):
    root, env = lab
    result = run_appliance("train", SFT, "--dataset", "helpdesk", "--plan", "--json", env=env)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["parameters"] > 130_000_000
    assert plan["trainable_parameters"] == 30 * 16 * (2 * (576 + 576) + 2 * (576 + 192) + 3 * (576 + 1536))
    assert plan["fits"] is True and plan["seconds_per_step"] > 0 and plan["estimated_seconds"] > 0
    assert "plan: time:" in result.stderr and "framework: " in result.stderr
    assert json.loads(run_appliance("runs", "list", "--json", env=env).stdout) == []


def installed(root: Path, tmp_path: Path, name: str, text: str) -> dict:
    """The lab's environment with a policy folder of its own installed, NAME.yaml replaced by TEXT."""
    folder = tmp_path / "installed-policies"
    shutil.copytree(root / "policies", folder, dirs_exist_ok=True)
    (folder / name).write_text(text)
    return {"APPLIANCE_POLICIES": str(folder)}


def test_policy_refusals_are_clear_and_audited(lab, tmp_path):
    root, env = lab
    strict = installed(root, tmp_path, "training.yaml",
                       "allowed_models: [{name: other, digest: embedded}]\nmin_scrub_strictness: 2\nmax_steps: 10\n")
    result = run_appliance("train", SFT, "--dataset", "helpdesk", "--name", "refused", env={**env, **strict})
    assert result.returncode == 5
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: training refused by policy: base model 'smollm2' is not on the allowed list")
    assert "60 steps is over the budget of 10" in line
    assert events(root, "train.start")[-1] == ("train.start", "refused", "denied")
    assert events(root, "policy.change")[-1] == ("policy.change", "training", "ok")  # the change is on the record
    officer = {**env, "APPLIANCE_SESSION_FILE": str(tmp_path / "officer-session")}
    assert run_appliance("login", "oscar", "--password-file", root / "oscar.pw", env=officer).returncode == 0
    refused = run_appliance("train", SFT, "--dataset", "helpdesk", env=officer)
    assert refused.returncode == 6 and "oscar (officer) may not train" in refused.stderr


def test_a_run_that_will_not_fit_is_refused_with_the_numbers(lab, tmp_path):
    root, env = lab
    huge = tmp_path / "huge.yaml"
    huge.write_text(SFT.read_text().replace("batch_size: 4", "batch_size: 4096").replace("max_seq_length: 512",
                                                                                         "max_seq_length: 131072"))
    result = run_appliance("train", huge, "--dataset", "helpdesk", "--name", "too-big", env=env)
    assert result.returncode == 5
    line = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"error: run will not fit: estimated peak memory [\d.]+ GiB is over the [\d.]+ GiB "
                        r"available \(--force overrides\)", line), line
    assert re.search(r"plan: peak memory: ~[\d.]+ GiB \(weights", result.stderr)
    assert events(root, "train.start", "too-big") == [("train.start", "too-big", "denied")]
    assert run_appliance("runs", "show", "too-big", env=env).returncode == 3  # nothing recorded as a run


def test_a_queued_run_is_trained_by_the_worker(lab):
    root, env = lab
    queued = run_appliance("train", SFT, "--dataset", "helpdesk", "--name", "queued", "--max-steps", "2", "--queue",
                           "--framework", "trl", env=env)
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.strip() == "run queued: queued for `appliance worker` (2 steps)"
    assert json.loads(run_appliance("runs", "show", "queued", "--json", env=env).stdout)["status"] == "queued"
    worker = run_appliance("worker", "--once", env={**env, "APPLIANCE_SESSION_FILE": str(root / "nobody")})
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert re.fullmatch(r"run queued: succeeded, 2 steps, final loss \d\.\d{4}", worker.stdout.strip())
    assert "run queued: claimed (queued by erin), 2 steps" in worker.stderr
    run = json.loads(run_appliance("runs", "show", "queued", "--json", env=env).stdout)
    assert run["status"] == "succeeded" and run["created_by"] == "erin" and run["started_at"]
    e = audit_event.c
    with home_db(root / "home").connect() as conn:
        actors = [tuple(r) for r in conn.execute(select(e.action, e.actor, e.actor_role)
                                                 .where(e.object_id == "queued").order_by(e.seq))]
    assert actors == [("train.queue", "erin", "engineer"), ("train.start", "worker", "system"),
                      ("train.end", "worker", "system")]
    again = run_appliance("worker", "--once", env=env)  # nothing left: returns at once
    assert again.returncode == 0 and again.stdout == ""


def test_advise_recommends_fine_tuning_for_a_format_the_base_model_misses(lab):
    root, env = lab
    result = run_appliance("advise", "helpdesk", "--recipe", SFT, "--json", env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    advice = json.loads(result.stdout)
    assert advice["metric"] == "format_match" and advice["items"] == 16
    assert advice["zero_shot"]["format_match"] < 0.2  # the base model does not answer in the format unprompted
    assert advice["few_shot"]["rouge_l"] < 0.6  # with examples it may copy the form, not the content
    assert advice["facts_share"] < 0.4  # triage answers are form, not facts
    assert advice["recommendation"] == "fine-tuning" and "new facts" in advice["reason"]
    assert events(root, "eval.advise", "helpdesk@v1") == [("eval.advise", "helpdesk@v1", "ok")]
    recorded = json.loads(run_appliance("evals", "advice", "--json", env=env).stdout)  # what the console shows
    assert [(a["dataset"], a["recommendation"], a["zero_shot"]) for a in recorded] == [
        ("helpdesk@v1", "fine-tuning", advice["zero_shot"]["format_match"])]
    bad = run_appliance("advise", "helpdesk", "--format", "(unclosed", env=env)
    assert bad.returncode == 2 and "not a regular expression" in bad.stderr and "Traceback" not in bad.stderr


def test_the_adapter_learns_the_format_the_base_model_lacks(lab):
    root, env = lab
    # TRL: on these CPUs it trains 1.4x faster than Unsloth's path (bench/train_bench.py); the default
    # framework's runs are covered by the worker, QLoRA and plan tests and by `make demo`.
    result = run_appliance("train", SFT, "--dataset", "helpdesk", "--name", "triage", "--framework", "trl", "--json",
                           env=env, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(result.stdout)
    assert run["status"] == "succeeded" and run["steps_done"] == 60 and run["final_loss"] < 1.0
    assert re.search(r"step 30/60  loss \d\.\d+  lr [\d.e+-]+  [\d,]+ tok/s  ETA \d+:\d\d", result.stderr)
    run_dir = root / "home" / "runs" / "triage"
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert not [p for p in run_dir.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-20", "step-40"]
    shown = json.loads(run_appliance("runs", "show", "triage", "--json", env=env).stdout)
    assert [m["step"] for m in shown["metrics"]] == list(range(1, 61))
    assert shown["dataset_digest"] and shown["base_digest"] and shown["recipe_digest"]
    assert shown["environment"]["libraries"]["trl"]
    assert [e[0] for e in events(root, "train.", "triage")] == ["train.queue", "train.start", "train.checkpoint",
                                                                "train.checkpoint", "train.end"]
    # Evaluation against the base model is the proof that it learned: the taught format on held-out prompts.
    evaluated = run_appliance("eval", "triage", "--judge", "smollm2", "--json", env=env, timeout=1200)
    assert evaluated.returncode in (0, 5), evaluated.stderr[-3000:]
    ev = json.loads(evaluated.stdout)
    task = ev["result"]["task"]
    assert task["primary"] == "format_match" and task["items"] == 24
    assert task["base"]["format_match"] < 0.2 and task["adapter"]["format_match"] > 0.8, task
    assert task["adapter"]["loss_per_token"] < task["base"]["loss_per_token"]
    suite = ev["result"]["suite"]
    assert suite["items"] == 150 and set(suite["base"]["by_kind"]) == {"knowledge", "arithmetic", "instructions",
                                                                       "refusals"}
    judge = ev["result"]["judge"]
    assert judge["comparisons"] == 32 == judge["adapter"] + judge["base"] + judge["tie"] + judge["unparseable"]
    leak = ev["result"]["leakage"]
    assert sorted(leak["mean_exposure_adapter"]) == ["1x", "20x", "5x", "controls"]
    assert len([c for c in leak["canaries"] if c["repetitions"] == 0]) == 3
    assert all(0 <= c["exposure_adapter"] <= 6.66 for c in leak["canaries"])
    gates = {g["gate"]: g for g in ev["result"]["gates"]}
    assert set(gates) == {"task_improvement", "max_forgetting", "min_judge_win_rate", "max_canary_exposure",
                          "no_training_pii"}
    assert gates["task_improvement"]["status"] == "pass" and gates["max_canary_exposure"]["status"] != "n/a"
    assert ev["passed"] == (evaluated.returncode == 0) == all(g["status"] != "fail" for g in gates.values())
    report = root / "home" / ev["report_path"]
    assert "| task_improvement |" in report.read_text()
    # The quoted examples (3 a side: prompt, reference, answer) and the 2 canary completions, scrubbed under the
    # policy the dataset was ingested with, before the report is stored (and later signed).
    dataset = json.loads(run_appliance("data", "show", ev["result"]["dataset"], "--json", env=env).stdout)
    assert ev["result"]["examples_scrubbed"]["policy_digest"] == dataset["policy_digest"]
    assert ev["result"]["examples_scrubbed"]["texts"] == 20
    assert "was scrubbed with the installed scrub policy" in report.read_text()
    assert {p.name for p in report.parent.iterdir()} == {"report.md", "result.json", "task.png", "forgetting.png",
                                                          "exposure.png"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in report.parent.iterdir())
    assert events(root, "eval.run", "triage") == [("eval.run", "triage", "ok")]


def test_evaluation_refuses_bad_input_and_stores_nothing(lab, tmp_path):
    root, env = lab
    assert run_appliance("eval", "no-such-run", env=env).returncode == 3
    queued = run_appliance("train", SFT, "--dataset", "helpdesk", "--name", "pending", "--max-steps", "2", "--queue",
                           env=env)
    assert queued.returncode == 0, queued.stderr
    pending = run_appliance("eval", "pending", env=env)
    assert pending.returncode == 2 and "run 'pending' is queued, not finished" in pending.stderr
    no_judge = run_appliance("eval", "triage", "--judge", "no-such-model", env=env)
    assert no_judge.returncode == 3 and "no-such-model" in no_judge.stderr
    broken = installed(root, tmp_path, "release.yaml", "version: 1\ngates: {task_improvment: 0.1}\n")
    bad_policy = run_appliance("eval", "triage", env={**env, **broken})
    assert bad_policy.returncode == 2 and "task_improvment" in bad_policy.stderr and "release.yaml" in bad_policy.stderr
    for result in (pending, no_judge, bad_policy):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    listed = json.loads(run_appliance("evals", "list", "--json", env=env).stdout)
    assert [e["run_name"] for e in listed] == ["triage"]  # the refused evaluations stored nothing


def _train_until(args: list[str], env: dict, line: str, meanwhile=lambda pid: None) -> list[str]:
    """Run `appliance ARGS`; once it prints `line`, call `meanwhile(pid)` and SIGKILL it; the lines it printed on
    stderr."""
    exe = Path(sys.executable).with_name("appliance")
    proc = subprocess.Popen([str(exe), *map(str, args)], env={**__import__("os").environ, **env},
                            stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for printed in proc.stderr:
            seen.append(printed)
            if printed.startswith(line):
                meanwhile(proc.pid)
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return seen


def _refused_while_alive(env: dict):
    def attempt(pid: int) -> None:
        refused = run_inprocess("train", "--resume", "killed", env=env)  # quick: the trainer goes on meanwhile
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert f"run 'killed' is running: process {pid} on " in refused.stderr, refused.stderr[-2000:]
    return attempt


def test_resume_after_kill_ends_where_an_uninterrupted_run_ends(lab, tmp_path):
    """Killed twice: resumed inline (`--resume`) and then by the worker (`--resume --queue`); it ends where a
    run that was never interrupted ends."""
    root, env = lab
    recipe = tmp_path / "short.yaml"
    recipe.write_text(SFT.read_text().replace("max_steps: 60", "max_steps: 6").replace("checkpoint_every: 20",
                                                                                        "checkpoint_every: 2"))
    whole = run_appliance("train", recipe, "--dataset", "helpdesk", "--name", "whole", "--framework", "trl", "--json",
                          env=env)
    assert whole.returncode == 0, whole.stderr[-2000:]
    for chatter in ("\r", "Warning", "Failed to load", "deprecated", "it/s]"):  # the appliance's own lines only
        assert chatter not in whole.stderr, whole.stderr[-3000:]
    _train_until(["train", recipe, "--dataset", "helpdesk", "--name", "killed", "--framework", "trl"], env, "step 3/6",
                 _refused_while_alive(env))  # no second trainer on a live run
    assert json.loads(run_appliance("runs", "show", "killed", "--json", env=env).stdout)["status"] == "running"
    assert "trainer         GONE: its trainer, process " in run_inprocess("runs", "show", "killed", env=env).stdout
    doctor = run_appliance("doctor", env=env)
    assert "warn  training runs" in doctor.stdout and "killed: its trainer, process" in doctor.stdout, doctor.stdout
    resumed = "".join(_train_until(["train", "--resume", "killed"], env, "step 5/6"))
    assert "run killed: marked failed: trainer gone: its trainer, process" in resumed, resumed[-2000:]
    assert "step 3/6" in resumed and "step 2/6" not in resumed  # continued after step 2
    service = {**env, "APPLIANCE_SESSION_FILE": str(root / "nobody")}
    reaper = run_appliance("worker", "--once", env=service)  # killed again: the worker finds it
    assert reaper.returncode == 0 and "run killed: marked failed: trainer gone" in reaper.stderr, reaper.stderr[-2000:]
    assert events(root, "train.fail", "killed") == [("train.fail", "killed", "error")] * 2
    queued = run_appliance("train", "--resume", "killed", "--queue", env=env)
    assert queued.returncode == 0, queued.stderr[-2000:]
    assert queued.stdout.strip() == "run killed: queued for `appliance worker` (6 steps)"
    worker = run_appliance("worker", "--once", env=service)
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert "step 5/6" in worker.stderr and "step 4/6" not in worker.stderr  # continued after step 4
    a = json.loads(whole.stdout)
    b = json.loads(run_appliance("runs", "show", "killed", "--json", env=env).stdout)
    assert b["status"] == "succeeded" and b["steps_done"] == a["steps_done"] == 6
    assert [m["step"] for m in b["metrics"]] == list(range(1, 7))  # the redone steps replaced, not repeated
    assert abs(a["final_loss"] - b["final_loss"]) < 0.02 * a["final_loss"] + 0.02, (a["final_loss"], b["final_loss"])


def test_two_processes_train_one_run_with_ddp_over_gloo(lab):
    root, env = lab
    torchrun, exe = Path(sys.executable).with_name("torchrun"), Path(sys.executable).with_name("appliance")
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "--no-python", str(exe), "train",
                             str(SFT), "--dataset", "helpdesk", "--name", "ddp", "--max-steps", "2", "--json"],
                            env={**__import__("os").environ, **env}, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(result.stdout)  # one result, from the first process
    assert run["status"] == "succeeded" and run["steps_done"] == 2 and run["environment"]["world_size"] == 2
    assert run["framework"] == "trl" and "distributed run (2 processes)" in run["framework_reason"]
    assert result.stderr.count("step 2/2") == 1  # progress from one process only
    assert [m["step"] for m in json.loads(run_appliance("runs", "show", "ddp", "--json", env=env).stdout)["metrics"]] \
        == [1, 2]
    assert [e[0] for e in events(root, "train.", "ddp")] == ["train.queue", "train.start", "train.end"]
    assert (root / "home" / "runs" / "ddp" / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("framework", ["unsloth", "trl"])
def test_qlora_trains_on_a_4_bit_base(lab, framework):
    root, env = lab
    recipe = ROOT / "policies" / "recipes" / "smollm2-135m-qlora-sft.yaml"
    result = run_appliance("train", recipe, "--dataset", "helpdesk", "--name", f"qlora-{framework}", "--max-steps", "2",
                           "--framework", framework, "--json", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(result.stdout)
    assert run["status"] == "succeeded" and run["steps_done"] == 2 and run["framework"] == framework
    footprint = re.search(r"model: base weights 4-bit NF4 \(bitsandbytes\), (\d+) MiB in memory", result.stderr)
    assert footprint and int(footprint.group(1)) < 300, result.stderr[-2000:]  # fp32 would be over 500 MiB
    assert (root / "home" / "runs" / f"qlora-{framework}" / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_preference_training_moves_the_margin_the_right_way(lab, method):
    root, env = lab
    if run_appliance("data", "show", "prefs", env=env).returncode != 0:
        ingested = run_appliance("data", "ingest", ROOT / "examples" / "preferences.jsonl", "--name", "prefs", env=env)
        assert ingested.returncode == 0, ingested.stderr
    recipe = ROOT / "policies" / "recipes" / f"smollm2-135m-lora-{method}.yaml"
    result = run_appliance("train", recipe, "--dataset", "prefs", "--name", method, "--max-steps", "8", "--json",
                           env=env, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(result.stdout)
    assert run["status"] == "succeeded" and run["framework"] == "trl" and "sft only" in run["framework_reason"]
    before, after = _margins(root, root / "home" / "runs" / method / "adapter")
    assert after > before, (before, after)


def _margins(root: Path, adapter: Path) -> tuple[float, float]:
    """Mean log p(chosen) - log p(rejected) over 16 training pairs, base vs base + adapter (scored by the
    evaluator's own scorer, in a child process)."""
    code = f"""
import json
from pathlib import Path
import pyarrow.parquet as pq
from appliance.eval.lm import AdapterLM
home = Path({str(root / 'home')!r})
rows = pq.read_table(home / "datasets/prefs/v1/train.parquet").to_pylist()[:16]
lm = AdapterLM(home / "models/smollm2/hf", Path({str(adapter)!r}))
pairs = [(r["prompt"], r[side]) for r in rows for side in ("chosen", "rejected")]
def margin(which):
    with lm.use(which):
        nll = [n for n, _ in lm.losses(pairs)]
    return sum(nll[i + 1] - nll[i] for i in range(0, len(nll), 2)) / len(rows)
print(json.dumps([margin("base"), margin("adapter")]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return tuple(json.loads(result.stdout.strip().splitlines()[-1]))


PARITY = """
import ctypes, json, sys, tempfile, numpy as np, torch
import appliance
from pathlib import Path
import llama_cpp
from llama_cpp import Llama
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
import pyarrow.parquet as pq
home, art = Path(sys.argv[1]), Path(sys.argv[2])
rows = pq.read_table(home / "datasets/helpdesk/v1/eval.parquet").to_pylist()[:8]
tok = AutoTokenizer.from_pretrained(home / "models/smollm2/hf")
texts = [tok.apply_chat_template(r["messages"], tokenize=False) for r in rows]
seqs = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(home / "models/smollm2/hf",
                                 dtype=torch.float32), art / "adapter").eval()
served = str(next((home / "models/smollm2").rglob("*.gguf")))
# The same weights in f32 (the HF copy is dequantised from this GGUF): isolates the converter from Q4 arithmetic.
exact = str(Path(tempfile.mkdtemp()) / "f32.gguf")
params = llama_cpp.llama_model_quantize_default_params()
params.ftype, params.allow_requantize = llama_cpp.LLAMA_FTYPE_ALL_F32, True
assert llama_cpp.llama_model_quantize(served.encode(), exact.encode(), ctypes.byref(params)) == 0
def cpp(llm, seq):
    llm.reset(); llm.eval(seq); return np.asarray(llm.scores[:len(seq)]).argmax(-1)
figures = {}
for name, gguf in (("f32", exact), ("served", served)):
    lora = Llama(model_path=gguf, lora_path=str(art / "adapter.gguf"), logits_all=True, n_ctx=1024, verbose=False)
    plain = Llama(model_path=gguf, logits_all=True, n_ctx=1024, verbose=False)
    agree = base = changed = total = 0
    for seq in seqs:
        with torch.no_grad():
            h = peft(torch.tensor([seq])).logits[0].argmax(-1).numpy()
            with peft.disable_adapter():
                hb = peft(torch.tensor([seq])).logits[0].argmax(-1).numpy()
        c, p = cpp(lora, seq), cpp(plain, seq)
        agree, base = agree + int((h == c).sum()), base + int((hb == p).sum())
        changed, total = changed + int((c != p).sum()), total + len(seq)
    lora.close(); plain.close()
    figures[name] = {"agree": agree / total, "base_agree": base / total, "changed": changed / total, "positions": total}
print(json.dumps(figures))
"""


def _scheduled_evaluation_flags_drift(root: Path, env: dict, officer: dict, directory: Path, backup: Path) -> None:
    """`eval --scheduled` on the approved `triage`: a stored, audited point per check; doctor shows a drop."""
    before = json.loads(run_appliance("evals", "show", "triage", "--json", env=env).stdout)
    task_metric = before["result"]["task"]["primary"]
    released = before["result"]["task"]["adapter"][task_metric]
    # SIMULATED FAILURE: the adapter's weights and the frozen sets cannot change under a signed artifact, so a
    # real fall needs another runtime; the release evaluation's task score is raised in the database instead.
    raised = {**before["result"]}
    raised["task"] = {**raised["task"], "adapter": {**raised["task"]["adapter"], task_metric: released + 0.25}}
    stored = update(eval_result).where(eval_result.c.id == before["id"])
    with home_db(root / "home").begin() as conn:
        conn.execute(stored.values(result=json.dumps(raised)))
    try:
        checked = run_appliance("eval", "--scheduled", "--json", env=env)
    finally:  # the later tests (the console's pages, their screenshots) see the evaluation as it was
        with home_db(root / "home").begin() as conn:
            conn.execute(stored.values(result=json.dumps(before["result"])))
    assert checked.returncode == 5 and "drift: triage fell beyond the policy" in checked.stderr, checked.stderr[-2000:]
    [point] = json.loads(checked.stdout)
    assert point["status"] == "drop" and point["task_metric"] == task_metric, point
    assert point["task_value"] == pytest.approx(released)  # the served adapter reproduces its release numbers
    assert point["suite_value"] == pytest.approx(before["result"]["suite"]["adapter"]["accuracy"])
    assert point["drops"]["task"] == pytest.approx(0.25) and "task fell 0.250" in point["detail"]
    doctor = run_appliance("doctor", env=env)
    assert "warn  drift" in doctor.stdout and "triage drop" in doctor.stdout, doctor.stdout
    # An approved artifact that no longer verifies is flagged without being measured.
    (directory / "README.md").write_text("changed after approval\n")
    try:
        tampered = run_appliance("eval", "--scheduled", "--json", env=env)
    finally:
        shutil.rmtree(directory)
        shutil.copytree(backup, directory)
    assert tampered.returncode == 5
    [point] = json.loads(tampered.stdout)
    assert point["status"] == "unverifiable" and "README.md: sha256 differs" in point["detail"], point
    assert point["task_value"] is None
    series = json.loads(run_appliance("evals", "drift", "triage", "--json", env=env).stdout)
    assert [p["status"] for p in series][-2:] == ["drop", "unverifiable"]
    events = json.loads(run_appliance("audit", "log", "--action", "eval.drift", "--json", env=officer).stdout)
    assert [e["actor"] for e in events[-2:]] == ["scheduler", "scheduler"], events


def test_package_sign_verify_and_approve_with_four_eyes(lab, tmp_path):
    """Runs after the evaluation above: packages `triage`, checks the GGUF LoRA against PEFT, signs, verifies
    with the appliance and the stock model_signing CLI, tampers, and walks the approval states."""
    root, env = lab
    packaged = run_appliance("package", "triage", "--json", env=env)
    assert packaged.returncode == 0, packaged.stderr[-3000:]
    art = json.loads(packaged.stdout)
    directory = Path(art["path"])
    assert art["status"] == "packaged" and directory == root / "home" / "artifacts" / "triage"
    assert {"adapter/adapter_model.safetensors", "adapter/adapter_config.json", "adapter.gguf", "provenance.json",
            "README.md", "verdict.json", "eval/report.md", "eval/result.json"} <= set(art["files"])
    statement = json.loads((directory / "provenance.json").read_text())
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert subjects["adapter.gguf"] == art["files"]["adapter.gguf"]
    run = json.loads(run_appliance("runs", "show", "triage", "--json", env=env).stdout)
    deps = {d["uri"]: d["digest"]["sha256"] for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert deps["appliance:model/smollm2"] == run["base_digest"]
    assert deps["appliance:dataset/helpdesk@v1"] == run["dataset_digest"]
    assert statement["predicate"]["runDetails"]["metadata"]["invocationId"] == run["id"]
    assert "## Intended use" in (directory / "README.md").read_text()

    parity = subprocess.run([sys.executable, "-c", PARITY, str(root / "home"), str(directory)], capture_output=True,
                            text=True, timeout=600)
    assert parity.returncode == 0, parity.stderr[-3000:]
    figures = json.loads(parity.stdout.strip().splitlines()[-1])
    # Same weights in f32: the converted adapter must reproduce PEFT's greedy choice (the bar is 95%; it is exact).
    assert figures["f32"]["agree"] >= 0.95 and figures["f32"]["changed"] > 0.05, figures
    # The served Q4_1 base: Q8 activations alone move ~7% of base tokens; the adapter must not add to that noise.
    served = figures["served"]
    assert served["agree"] >= min(0.95, served["base_agree"] - 0.02) and served["changed"] > 0.05, figures

    unsigned = run_appliance("verify", "triage", env=env)
    assert unsigned.returncode == 4 and "no signature" in unsigned.stdout
    officer = {**env, "APPLIANCE_SESSION_FILE": str(tmp_path / "oscar-session")}
    assert run_appliance("login", "oscar", "--password-file", root / "oscar.pw", env=officer).returncode == 0
    evaluated = json.loads(run_appliance("evals", "show", "triage", "--json", env=env).stdout)
    if not evaluated["passed"]:  # e.g. the 20x canary memorised: signing waits for an officer's override
        blocked = run_appliance("sign", "triage", env=env)
        assert blocked.returncode == 5 and "failed release gates" in blocked.stderr
        overridden = run_appliance("evals", "override", "triage", "--reason", "test canaries only; no real secrets",
                                   env=officer)
        assert overridden.returncode == 0, overridden.stderr
    assert run_appliance("sign", str(directory), env=env).returncode == 0  # by directory path
    pub = tmp_path / "artifact.pub"
    assert run_appliance("keys", "export-public", "--out", pub, env=env).returncode == 0
    stock = subprocess.run([str(Path(sys.executable).with_name("model_signing")), "verify", "key", str(directory),
                            "--signature", str(directory / "model.sig"), "--public_key", str(pub)],
                           capture_output=True, text=True, timeout=300)
    assert stock.returncode == 0, stock.stdout + stock.stderr
    verified = json.loads(run_appliance("verify", "triage", "--json", env=env).stdout)
    assert verified["ok"] and {c["check"] for c in verified["checks"]} == {"files", "key", "registry", "provenance"}

    backup = tmp_path / "backup"
    shutil.copytree(directory, backup)

    def broken(change) -> str:
        change()
        result = run_inprocess("verify", "triage", env=env)
        shutil.rmtree(directory)
        shutil.copytree(backup, directory)
        assert result.returncode == 4, result.stdout
        return result.stdout

    def flip(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))

    for name in sorted(art["files"]):  # one byte flipped in each file in turn
        assert f"FAIL  files       {name}: sha256 differs" in broken(lambda n=name: flip(directory / n))
    renamed = broken(lambda: (directory / "README.md").rename(directory / "CARD.md"))
    assert "README.md: missing" in renamed and "CARD.md: added" in renamed
    assert "extra.txt: added" in broken(lambda: (directory / "extra.txt").write_bytes(b"\0"))
    assert "pickle-format file inside an artifact" in broken(
        lambda: (directory / "adapter" / "x.pt").write_bytes(b"\0"))
    assert "symbolic link inside an artifact" in broken(lambda: (directory / "link").symlink_to("/etc/passwd"))
    assert "hard link inside an artifact" in broken(
        lambda: __import__("os").link(directory / "README.md", tmp_path / "hardlink"))
    assert "verdict.json: missing" in broken(lambda: (directory / "verdict.json").unlink())
    assert "truncated or not a model_signing bundle" in broken(
        lambda: (directory / "model.sig").write_bytes((backup / "model.sig").read_bytes()[:300]))
    assert "truncated or not a model_signing bundle" in broken(lambda: (directory / "model.sig").write_text("garbage"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "weights.bin").write_bytes(b"\1\2")
    key = tmp_path / "foreign.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)], check=True)
    subprocess.run([str(Path(sys.executable).with_name("model_signing")), "sign", "key", str(other),
                    "--private_key", str(key), "--signature", str(other / "model.sig")], check=True,
                   capture_output=True)
    assert "signs artifact 'other', not 'triage'" in broken(
        lambda: shutil.copy(other / "model.sig", directory / "model.sig"))
    foreign = tmp_path / "foreign-sig"
    shutil.copytree(backup, foreign / "triage")
    (foreign / "triage" / "model.sig").unlink()
    subprocess.run([str(Path(sys.executable).with_name("model_signing")), "sign", "key", str(foreign / "triage"),
                    "--private_key", str(key), "--signature", str(foreign / "triage" / "model.sig")], check=True,
                   capture_output=True)
    assert "verifies with no pinned artifact key" in broken(
        lambda: shutil.copy(foreign / "triage" / "model.sig", directory / "model.sig"))

    # Approval: officer only, never the trainer or packager, nor anyone they appointed, with a reason and under
    # installed policies; every step and every refusal audited with its rule.
    assert run_appliance("approve", "triage", "--reason", "engineer approving own work", env=env).returncode == 6
    admin = {**env, "APPLIANCE_SESSION_FILE": str(tmp_path / "admin-session")}
    assert run_appliance("login", "alice", "--password-file", root / "alice.pw", env=admin).returncode == 0
    assert run_appliance("approve", "triage", "--reason", "the admin approving it", env=admin).returncode == 6
    assert run_appliance("users", "set-role", "erin", "officer", env=admin).returncode == 0
    turned = {**env, "APPLIANCE_SESSION_FILE": str(tmp_path / "erin-officer")}
    try:
        assert run_appliance("login", "erin", "--password-file", root / "erin.pw", env=turned).returncode == 0
        own = run_appliance("approve", "triage", "--reason", "I trained it and it is fine", env=turned)
        assert own.returncode == 6 and ("four-eyes rule (account): erin trained the run and packaged the artifact "
                                        "and signed the artifact") in own.stderr
        # erin, made admin for a while, appoints an officer of her own (a role change ends her sessions)
        assert run_appliance("users", "set-role", "erin", "admin", env=admin).returncode == 0
        assert run_appliance("login", "erin", "--password-file", root / "erin.pw", env=turned).returncode == 0
        (tmp_path / "otto.first").write_text("Given-by-erin-1x\n")
        (tmp_path / "otto.pw").write_text("Chosen-by-him-later-2y\n")
        assert run_appliance("users", "add", "otto", "--role", "officer", "--password-file", tmp_path / "otto.first",
                             env=turned).returncode == 0
    finally:
        assert run_appliance("users", "set-role", "erin", "engineer", env=admin).returncode == 0
        assert run_appliance("login", "erin", "--password-file", root / "erin.pw", env=env).returncode == 0
    otto = {**env, "APPLIANCE_SESSION_FILE": str(tmp_path / "otto-session")}
    assert run_appliance("login", "otto", "--password-file", tmp_path / "otto.first", env=otto).returncode == 0
    assert run_appliance("passwd", "--old-password-file", tmp_path / "otto.first", "--new-password-file",
                         tmp_path / "otto.pw", env=otto).returncode == 0
    appointed = run_appliance("approve", "triage", "--reason", "erin's officer approving erin's work", env=otto)
    assert appointed.returncode == 6 and "four-eyes rule (appointed): erin created the account otto" in appointed.stderr
    db = home_db(root / "home")
    triage_run = update(training_run).where(training_run.c.name == "triage")
    triage_artifact = update(artifact).where(artifact.c.name == "triage")
    with db.begin() as conn:
        recorded = conn.execute(select(training_run.c.policy_digest).where(training_run.c.name == "triage")).scalar()
        conn.execute(triage_run.values(policy_digest="ab" * 32))
    try:  # a run whose recorded training policy was never installed (someone with the database edited it)
        forged = run_appliance("approve", "triage", "--reason", "gates passed; model card reviewed", env=officer)
        assert forged.returncode == 5 and "training policy: digest abababababababab... was never an installed" \
            in forged.stderr
        with db.begin() as conn:
            conn.execute(triage_artifact.values(status="packaged"))  # and signed anew
        resigned = run_appliance("sign", "triage", env=env)
        assert resigned.returncode == 5 and "training policy: digest abababababababab... was never an installed" \
            in resigned.stderr
    finally:
        with db.begin() as conn:
            conn.execute(triage_run.values(policy_digest=recorded))
            conn.execute(triage_artifact.values(status="signed"))
    approvals = audit_events(root / "home", "artifact.approve", "outcome", "details")
    rules = [json.loads(details or "{}").get("rule") for outcome, details in approvals if outcome == "denied"]
    assert rules[-3:] == ["four-eyes:account", "four-eyes:appointed", "installed-policies"]
    approved = run_appliance("approve", "triage", "--reason", "gates passed; model card reviewed", env=officer)
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == "artifact triage: approved by oscar"
    again = run_appliance("approve", "triage", "--reason", "approving twice is refused", env=officer)
    assert again.returncode == 2 and "is approved" in again.stderr
    _scheduled_evaluation_flags_drift(root, env, officer, directory, backup)
    signing = ["artifact.sign:denied", "artifact.sign:ok"] if not evaluated["passed"] else ["artifact.sign:ok"]
    assert [e[0] + ":" + e[2] for e in events(root, "artifact.", "triage")] == [
        "artifact.package:ok", *signing, *["artifact.approve:denied"] * 3, "artifact.sign:denied",
        "artifact.approve:ok"]
    # `triage` stays approved: tests/integration/test_serving.py serves it, then revokes it and its key.
