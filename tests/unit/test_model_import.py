"""Importing a Hugging Face folder: llama.cpp's converter and quantizer make its GGUF, recorded with its source;
what llama.cpp or the appliance cannot take is refused before anything is copied, naming the cause."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from appliance.config import load_settings
from appliance.context import Context
from appliance.db import connect, migrate
from appliance.db.tables import audit_event
from appliance.errors import InputError, StorageError
from appliance.models import registry
from tests.helpers import write_gguf, write_hf_folder
from tests.unit.test_cli import one_line_error

pytestmark = pytest.mark.unit


@pytest.fixture
def ctx(home):
    home.mkdir()
    settings = load_settings()
    engine = connect(settings, create=True)
    migrate(engine)
    return Context(settings, engine)


def _left_behind(settings):
    return [p for root in (settings.tmp_dir, settings.models_dir) if root.exists() for p in root.iterdir()]


def test_a_folder_gets_llama_cpps_gguf_quantized_as_the_serving_policy_says(ctx, tmp_path):
    import gguf

    model = registry.import_path(ctx, write_hf_folder(tmp_path / "src"), "tiny").model
    assert model.gguf_file == "gguf/model-Q8_0.gguf"  # 0.04M parameters: below the policy's 1B, so `small`
    path = ctx.settings.models_dir / "tiny" / model.gguf_file
    reader = gguf.GGUFReader(path)
    assert reader.fields["general.architecture"].contents() == "llama"
    assert {t.tensor_type.name for t in reader.tensors} >= {"Q8_0"}
    assert reader.fields["tokenizer.chat_template"].contents().startswith("{% for m in messages %}")
    assert path.stat().st_mode & 0o777 == 0o600
    with ctx.engine.connect() as conn:
        details = json.loads(conn.execute(select(audit_event.c.details).where(audit_event.c.action == "model.import"))
                             .scalar())
    made = details["gguf"]
    assert made["type"] == "Q8_0" and made["converted_as"] == "f16" and len(made["converted_sha256"]) == 64
    assert made["policy_sha256"] and made["parameters"] == 43_104  # counted from the safetensors header
    assert details["chat_template"] is True
    _, files = registry.get_model(ctx.engine, "tiny")
    assert registry.verify_model(ctx.settings, model, files) == []


def test_an_architecture_outside_the_list_is_refused_naming_it_and_the_list(ctx, tmp_path):
    with pytest.raises(InputError, match="architecture GPT2LMHeadModel is not supported; supported: "
                                         "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM") as refused:
        registry.import_path(ctx, write_hf_folder(tmp_path / "src", architecture="GPT2LMHeadModel"), "tiny")
    assert "Phi3ForCausalLM" in str(refused.value)
    assert _left_behind(ctx.settings) == []


def test_a_gguf_of_an_architecture_outside_the_list_is_refused(ctx, tmp_path):
    with pytest.raises(InputError, match="GGUF architecture gpt2 is not supported; supported: gemma2, gemma3, "
                                         "llama, phi3, qwen2, qwen3"):
        registry.import_path(ctx, write_gguf(tmp_path / "m.gguf", arch="gpt2"), "tiny")


def test_a_chat_template_that_reaches_for_python_attributes_is_refused_at_import(ctx, tmp_path):
    hostile = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(InputError, match="chat template refused: it reaches outside the template sandbox"):
        registry.import_path(ctx, write_hf_folder(tmp_path / "src", chat_template=hostile), "tiny")
    assert _left_behind(ctx.settings) == []


def test_a_model_too_big_for_the_disk_is_refused_with_the_numbers_before_anything_is_copied(ctx, tmp_path):
    """A 2 TB shard, written sparse: the header is real, the disk holds almost nothing of it."""
    import struct

    src = write_hf_folder(tmp_path / "src")
    header = json.dumps({"huge": {"dtype": "F16", "shape": [1_000_000, 1_000_000],
                                  "data_offsets": [0, 2_000_000_000_000]}}).encode()
    with open(src / "model-extra.safetensors", "wb") as fh:
        fh.write(struct.pack("<Q", len(header)) + header)
        fh.truncate(8 + len(header) + 2_000_000_000_000)
    with pytest.raises(StorageError, match=r"importing needs [0-9.]+ GB free under .*; [0-9.]+ GB is free") as refused:
        registry.import_path(ctx, src, "tiny")
    assert "its f16 GGUF 2000.0 GB" in str(refused.value)
    assert _left_behind(ctx.settings) == []


def test_a_tokenizer_llama_cpp_cannot_read_fails_the_import_and_leaves_nothing(ctx, tmp_path):
    src = write_hf_folder(tmp_path / "src")
    (src / "tokenizer.model").write_bytes(b"not a sentencepiece model")
    with pytest.raises(StorageError, match="llama.cpp's converter on .* failed"):
        registry.import_path(ctx, src, "tiny")
    assert _left_behind(ctx.settings) == []
    assert registry.list_models(ctx.engine) == []


def test_chat_answers_from_the_converted_gguf_and_a_base_model_is_told_apart(cli, staff, tmp_path):
    staff.login("alice")
    assert cli("models", "import", write_hf_folder(tmp_path / "chatty"), "--name", "chatty").code == 0
    plain = cli("models", "import", write_hf_folder(tmp_path / "base", seed=3, chat_template=None), "--name", "base")
    assert plain.code == 0, plain.err
    assert "chat template: none (a base model): chat datasets are refused for it" in plain.out
    answered = cli("chat", "chatty", "hello", "--max-tokens", "4", "--json")
    assert answered.code == 0, answered.err
    assert json.loads(answered.out)["completion_tokens"] >= 1
    one_line_error(cli("chat", "base", "hello"), "model 'base' carries no chat template (a base model)",
                   "serve it for /v1/completions")
