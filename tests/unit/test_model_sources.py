import os

import pytest

from appliance.errors import InputError
from appliance.models import sources
from tests.helpers import write_gguf, write_hf_folder

pytestmark = pytest.mark.unit


def test_valid_gguf_is_read(tmp_path):
    info = sources.read_gguf_info(write_gguf(tmp_path / "m.gguf", arch="llama", tensors=3))
    assert info.architecture == "llama"
    assert info.tensor_count == 3


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"GGUX" + b[4:], "not a GGUF file"),
    (lambda b: b[:20], "corrupt or truncated GGUF file"),
    (lambda b: b[:4] + b"\xff" * 60 + b[64:], "corrupt or truncated GGUF file"),
    (lambda b: b[:-100], "truncated GGUF file"),
])
def test_damaged_gguf_is_refused_naming_the_file(tmp_path, damage, message):
    path = write_gguf(tmp_path / "m.gguf")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(InputError, match=message) as exc:
        sources.read_gguf_info(path)
    assert str(path) in str(exc.value)


def test_hf_folder_is_collected_with_architecture(tmp_path):
    files, arch = sources.collect_hf_folder(write_hf_folder(tmp_path / "m"))
    assert arch == "LlamaForCausalLM"
    assert [f.relpath for f in files] == ["config.json", "model.safetensors", "tokenizer.model",
                                          "tokenizer_config.json"]


def test_sharded_hf_folder_is_complete(tmp_path):
    files, _ = sources.collect_hf_folder(write_hf_folder(tmp_path / "m", shards=2))
    assert sum(f.relpath.endswith(".safetensors") for f in files) == 2


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth", ".pkl", ".ckpt"])
def test_pickle_weights_in_a_folder_are_refused(tmp_path, suffix):
    root = write_hf_folder(tmp_path / "m")
    (root / f"pytorch_model{suffix}").write_bytes(b"\x80\x04pickle")
    with pytest.raises(InputError, match="pickle-based weights are refused"):
        sources.collect_hf_folder(root)


def test_pickle_file_given_directly_is_refused(tmp_path):
    path = tmp_path / "model.pth"
    path.write_bytes(b"\x80\x04")
    with pytest.raises(InputError, match="pickle-based weights are refused"):
        sources.classify(path)


def test_symlink_leaving_the_source_is_refused(tmp_path):
    root = write_hf_folder(tmp_path / "m")
    (tmp_path / "outside.json").write_text("{}")
    os.symlink(tmp_path / "outside.json", root / "generation_config.json")
    with pytest.raises(InputError, match="symlink points outside the model folder"):
        sources.collect_hf_folder(root)


def test_symlink_inside_the_source_is_followed(tmp_path):
    root = write_hf_folder(tmp_path / "m")
    os.symlink(root / "tokenizer_config.json", root / "tokenizer_copy.json")
    files, _ = sources.collect_hf_folder(root)
    assert "tokenizer_copy.json" in {f.relpath for f in files}


def test_missing_shard_is_refused(tmp_path):
    root = write_hf_folder(tmp_path / "m", shards=2)
    (root / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(InputError, match="shard model-00002-of-00002.safetensors .* is missing"):
        sources.collect_hf_folder(root)


@pytest.mark.parametrize("remove, message", [
    ("config.json", "not a model folder: no config.json"),
    ("tokenizer.model", "no tokenizer"),
    ("model.safetensors", "no .safetensors weights"),
])
def test_incomplete_folder_is_refused(tmp_path, remove, message):
    root = write_hf_folder(tmp_path / "m")
    (root / remove).unlink()
    with pytest.raises(InputError, match=message):
        sources.collect_hf_folder(root)


def test_folder_holding_only_a_gguf_points_at_the_file(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    write_gguf(root / "x.gguf")
    with pytest.raises(InputError, match="give the file: .*x.gguf"):
        sources.collect_hf_folder(root)


def test_truncated_safetensors_is_refused(tmp_path):
    root = write_hf_folder(tmp_path / "m")
    data = (root / "model.safetensors").read_bytes()
    (root / "model.safetensors").write_bytes(data[:-10])
    with pytest.raises(InputError, match="truncated safetensors"):
        sources.collect_hf_folder(root)


def test_config_that_is_not_a_transformers_config_is_refused(tmp_path):
    root = write_hf_folder(tmp_path / "m")
    (root / "config.json").write_text('{"foo": 1}')
    with pytest.raises(InputError, match="field model_type: missing"):
        sources.collect_hf_folder(root)


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file or directory"),
    (lambda p: p.write_text("hello"), "not a GGUF file or a Hugging Face model folder"),
])
def test_classify_refuses_what_is_not_a_model(tmp_path, make, message):
    path = tmp_path / "thing"
    make(path)
    with pytest.raises(InputError, match=message):
        sources.classify(path)


def test_unknown_embedded_name_lists_the_known_ones():
    with pytest.raises(InputError, match="unknown embedded model 'gpt5'; embedded models: smollm2"):
        sources.embedded_gguf("gpt5")
