"""Training the embedded model for real: plan, policy, progress, checkpoints, resume after kill -9, and proof
that the adapter learns the taught format where the base model does not."""

import json
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE, PASSWORDS, run_appliance

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SFT = ROOT / "policies" / "recipes" / "smollm2-135m-lora-sft.yaml"
FORMAT = re.compile(r"^CATEGORY: [A-Z]+\nPRIORITY: P[1-4]\nACTION: .+$")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A home with the embedded model imported and the help-desk example ingested; erin (engineer) logged in."""
    root = tmp_path_factory.mktemp("training")
    for name, value in (("passphrase", PASSPHRASE), ("alice.pw", PASSWORDS["alice"]), ("erin.pw", PASSWORDS["erin"]),
                        ("oscar.pw", PASSWORDS["oscar"])):
        (root / name).write_text(value + "\n")
    env = {"APPLIANCE_HOME": str(root / "home"), "APPLIANCE_DATABASE_URL": "", "APPLIANCE_TOKEN": "",
           "APPLIANCE_KEY_PASSPHRASE_FILE": str(root / "passphrase"), "APPLIANCE_SESSION_FILE": str(root / "session")}
    for args in (("init", "--admin", "alice", "--password-file", root / "alice.pw"),
                 ("login", "alice", "--password-file", root / "alice.pw"),
                 ("users", "add", "erin", "--role", "engineer", "--password-file", root / "erin.pw"),
                 ("users", "add", "oscar", "--role", "officer", "--password-file", root / "oscar.pw"),
                 ("login", "erin", "--password-file", root / "erin.pw"),
                 ("models", "import", "--embedded", "smollm2"),
                 ("data", "ingest", ROOT / "examples" / "helpdesk.jsonl", "--name", "helpdesk")):
        result = run_appliance(*args, env=env)
        assert result.returncode == 0, f"{args}: {result.stderr}"
    return root, env


def events(root: Path, prefix: str, run: str = "%") -> list[tuple[str, str, str]]:
    db = sqlite3.connect(root / "home" / "appliance.db")
    return [tuple(r) for r in db.execute("SELECT action, object_id, outcome FROM audit_event WHERE action LIKE ? "
                                         "AND object_id LIKE ? ORDER BY seq", (prefix + "%", run))]


def test_plan_measures_without_training(lab):
    root, env = lab
    result = run_appliance("train", SFT, "--dataset", "helpdesk", "--plan", "--json", env=env)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["parameters"] > 130_000_000
    assert plan["trainable_parameters"] == 30 * 16 * (2 * (576 + 576) + 2 * (576 + 192) + 3 * (576 + 1536))
    assert plan["fits"] is True and plan["seconds_per_step"] > 0 and plan["estimated_seconds"] > 0
    assert "plan: time:" in result.stderr and "engine: " in result.stderr
    assert json.loads(run_appliance("runs", "list", "--json", env=env).stdout) == []


def test_policy_refusals_are_clear_and_audited(lab, tmp_path):
    root, env = lab
    strict = tmp_path / "training.yaml"
    strict.write_text("allowed_models: [{name: other, digest: embedded}]\nmin_scrub_strictness: 3\nmax_steps: 10\n")
    result = run_appliance("train", SFT, "--dataset", "helpdesk", "--policy", strict, "--name", "refused", env=env)
    assert result.returncode == 5
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: training refused by policy: base model 'smollm2' is not on the allowed list")
    assert "scrubbed at strictness 2, below the required 3" in line and "60 steps is over the budget of 10" in line
    assert events(root, "train.start")[-1] == ("train.start", "refused", "denied")
    officer = {**env, "APPLIANCE_SESSION_FILE": str(tmp_path / "officer-session")}
    assert run_appliance("login", "oscar", "--password-file", root / "oscar.pw", env=officer).returncode == 0
    refused = run_appliance("train", SFT, "--dataset", "helpdesk", env=officer)
    assert refused.returncode == 6 and "oscar (officer) may not train" in refused.stderr


def test_the_adapter_learns_the_format_the_base_model_lacks(lab):
    root, env = lab
    result = run_appliance("train", SFT, "--dataset", "helpdesk", "--name", "triage", "--json", env=env, timeout=1200)
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
    base, tuned = _format_match(root, run_dir / "adapter")
    assert base < 0.2 and tuned > 0.8, (base, tuned)


def _format_match(root: Path, adapter: Path) -> tuple[float, float]:
    """Share of held-out prompts answered in the taught format, base model vs base + adapter (greedy)."""
    code = f"""
import json, re, sys, torch
import pyarrow.parquet as pq
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
home = {str(root / 'home')!r}
rows = pq.read_table(home + "/datasets/helpdesk/v1/eval.parquet").to_pylist()
tok = AutoTokenizer.from_pretrained(home + "/models/smollm2/hf")
base = AutoModelForCausalLM.from_pretrained(home + "/models/smollm2/hf", dtype=torch.float32).eval()
fmt = re.compile({FORMAT.pattern!r})
def rate(model):
    hits = 0
    for r in rows:
        prompt = tok.apply_chat_template(r["messages"][:-1], tokenize=False, add_generation_prompt=True)
        ids = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=48, do_sample=False)
        hits += bool(fmt.match(tok.decode(out[0, ids.input_ids.shape[1]:], skip_special_tokens=True).strip()))
    return hits / len(rows)
b = rate(base)
tuned = PeftModel.from_pretrained(base, {str(adapter)!r}).eval()
print(json.dumps([b, rate(tuned)]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return tuple(json.loads(result.stdout.strip().splitlines()[-1]))


def test_resume_after_kill_ends_where_an_uninterrupted_run_ends(lab, tmp_path):
    root, env = lab
    recipe = tmp_path / "short.yaml"
    recipe.write_text(SFT.read_text().replace("max_steps: 60", "max_steps: 12").replace("checkpoint_every: 20",
                                                                                         "checkpoint_every: 4"))
    whole = run_appliance("train", recipe, "--dataset", "helpdesk", "--name", "whole", "--json", env=env)
    assert whole.returncode == 0, whole.stderr[-2000:]
    exe = Path(sys.executable).with_name("appliance")
    proc = subprocess.Popen([str(exe), "train", str(recipe), "--dataset", "helpdesk", "--name", "killed"],
                            env={**__import__("os").environ, **env}, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if line.startswith("step 6/12"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert json.loads(run_appliance("runs", "show", "killed", "--json", env=env).stdout)["status"] == "running"
    resumed = run_appliance("train", "--resume", "killed", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "step 5/12" in resumed.stderr and "step 4/12" not in resumed.stderr  # continued after step 4
    a, b = json.loads(whole.stdout), json.loads(resumed.stdout)
    assert b["steps_done"] == a["steps_done"] == 12
    assert abs(a["final_loss"] - b["final_loss"]) < 0.02 * a["final_loss"] + 0.02, (a["final_loss"], b["final_loss"])


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_preference_training_moves_the_margin_the_right_way(lab, method):
    root, env = lab
    if run_appliance("data", "show", "prefs", env=env).returncode != 0:
        ingested = run_appliance("data", "ingest", ROOT / "examples" / "preferences.jsonl", "--name", "prefs", env=env)
        assert ingested.returncode == 0, ingested.stderr
    recipe = ROOT / "policies" / "recipes" / f"smollm2-135m-lora-{method}.yaml"
    result = run_appliance("train", recipe, "--dataset", "prefs", "--name", method, "--max-steps", "12", "--json",
                           env=env, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(result.stdout)
    assert run["status"] == "succeeded" and run["engine"] == "trl" and "sft only" in run["engine_reason"]
    before, after = _margins(root, root / "home" / "runs" / method / "adapter")
    assert after > before, (before, after)


def _margins(root: Path, adapter: Path) -> tuple[float, float]:
    """Mean log p(chosen) - log p(rejected) over held-out and training pairs, base vs base + adapter."""
    code = f"""
import json, torch
import pyarrow.parquet as pq
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
home = {str(root / 'home')!r}
rows = pq.read_table(home + "/datasets/prefs/v1/train.parquet").to_pylist()[:16]
tok = AutoTokenizer.from_pretrained(home + "/models/smollm2/hf")
base = AutoModelForCausalLM.from_pretrained(home + "/models/smollm2/hf", dtype=torch.float32).eval()
def logp(model, prompt, answer):
    p = tok(prompt, return_tensors="pt").input_ids
    full = tok(prompt + answer, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(full).logits[0, :-1].log_softmax(-1)
    targets = full[0, 1:]
    return logits[torch.arange(len(targets)), targets][p.shape[1] - 1:].sum().item()
def margin(model):
    pairs = [logp(model, r["prompt"], r["chosen"]) - logp(model, r["prompt"], r["rejected"]) for r in rows]
    return sum(pairs) / len(pairs)
b = margin(base)
tuned = PeftModel.from_pretrained(base, {str(adapter)!r}).eval()
print(json.dumps([b, margin(tuned)]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return tuple(json.loads(result.stdout.strip().splitlines()[-1]))
