"""The CLI's error boundary: user mistakes are one line on stderr and a non-zero exit."""

import json

import pytest

from tests.helpers import write_gguf, write_hf_folder

pytestmark = pytest.mark.unit


def one_line_error(result, *fragments):
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0]


def test_version(cli):
    result = cli("version")
    assert result.code == 0 and result.out.startswith("appliance 0.")


def test_init_creates_a_private_home_and_is_idempotent(cli, home):
    first = cli("init")
    assert first.code == 0, first.err
    assert "applied migrations 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12\n" in first.out
    assert home.stat().st_mode & 0o777 == 0o700
    assert (home / "appliance.db").stat().st_mode & 0o077 == 0
    for sub in ("models", "datasets", "runs", "artifacts", "keys", "logs", "tmp"):
        assert (home / sub).stat().st_mode & 0o777 == 0o700
    again = cli("init")
    assert again.code == 0 and "schema up to date" in again.out


def test_commands_before_init_say_so(cli, home):
    one_line_error(cli("models", "list"), "not initialised", "appliance init")


def test_unwritable_home_is_one_clear_line(cli, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("APPLIANCE_HOME", str(tmp_path / "file" / "home"))
    result = cli("init")
    one_line_error(result, str(tmp_path / "file"), "cannot create directory")
    assert result.code == 7


def test_malformed_config_is_one_clear_line(cli, home):
    home.mkdir()
    (home / "appliance.toml").write_text("colour = 'blue'\n[llama]\nn_ctx = 'big'\n")
    result = cli("init")
    one_line_error(result, "appliance.toml: 2 errors", "colour: unknown key", "llama.n_ctx")
    assert result.code == 2


@pytest.mark.parametrize("make, fragment", [
    (lambda p: None, "no such file or directory"),
    (lambda p: p.mkdir(), "not a model folder: no config.json"),
    (lambda p: p.write_bytes(b"GGUF" + b"\x00" * 10), "corrupt or truncated GGUF file"),
    (lambda p: p.write_text("plain text"), "not a GGUF file or a Hugging Face model folder"),
])
def test_bad_model_paths_are_one_clear_line(cli, home, staff, tmp_path, make, fragment):
    path = tmp_path / "candidate"
    make(path)
    result = cli("models", "import", path)
    one_line_error(result, str(path), fragment)
    assert list((home / "models").iterdir()) == [] and list((home / "tmp").iterdir()) == []


def test_unknown_embedded_name(cli, home, staff):
    one_line_error(cli("models", "import", "--embedded", "llama-70b"), "unknown embedded model 'llama-70b'")


def test_import_needs_exactly_one_source(cli, home, staff, tmp_path):
    result = cli("models", "import")
    assert result.code == 2 and "give either PATH or --embedded NAME" in result.err
    result = cli("models", "import", tmp_path, "--embedded", "smollm2")
    assert result.code == 2


def test_bad_model_name_is_refused(cli, home, staff, tmp_path):
    one_line_error(cli("models", "import", write_gguf(tmp_path / "m.gguf"), "--name", "Bad Name!"),
                   "model name 'Bad Name!'")


def test_import_list_show_round_trip_as_json(cli, home, staff, tmp_path):
    created = cli("models", "import", write_hf_folder(tmp_path / "src"), "--name", "tiny", "--json")
    assert created.code == 0, created.err
    record = json.loads(created.out)
    assert record["created"] is True and record["name"] == "tiny"
    listed = json.loads(cli("models", "list", "--json").out)
    assert [m["name"] for m in listed] == ["tiny"]
    shown = json.loads(cli("models", "show", "tiny", "--json").out)
    assert shown["digest"] == record["digest"]
    assert {f["path"] for f in shown["files"]} == {"gguf/model-Q8_0.gguf", "hf/config.json", "hf/model.safetensors",
                                                   "hf/tokenizer.model", "hf/tokenizer_config.json"}
    assert all(len(f["sha256"]) == 64 for f in shown["files"])


def test_unknown_model_is_not_found(cli, home, staff):
    result = cli("models", "show", "nothing")
    one_line_error(result, "no model named 'nothing'")
    assert result.code == 3


def test_doctor_fails_on_a_home_that_is_not_private(cli, home):
    cli("init")
    home.chmod(0o755)
    result = cli("doctor", "--json")
    report = json.loads(result.out)
    assert result.code == 1 and report["ok"] is False
    home_check = next(c for c in report["checks"] if c["name"] == "home")
    assert home_check["status"] == "fail" and "0755" in home_check["detail"]


def test_doctor_reports_a_tampered_model_file(cli, home, staff, tmp_path):
    cli("models", "import", write_gguf(tmp_path / "m.gguf"), "--name", "tiny")
    with open(home / "models" / "tiny" / "gguf" / "m.gguf", "ab") as fh:
        fh.write(b"x")
    result = cli("doctor", "--json")
    check = next(c for c in json.loads(result.out)["checks"] if c["name"] == "model tiny")
    assert result.code == 1
    assert check == {"name": "model tiny", "status": "fail", "detail": "gguf/m.gguf modified"}


def test_chat_refuses_a_tampered_gguf(cli, home, staff, tmp_path):
    cli("models", "import", write_gguf(tmp_path / "m.gguf"), "--name", "tiny")
    with open(home / "models" / "tiny" / "gguf" / "m.gguf", "ab") as fh:
        fh.write(b"x")
    result = cli("chat", "tiny", "hello")
    one_line_error(result, "sha256 differs from the registry's record; refusing to load it")
    assert result.code == 4


def test_unexpected_failures_are_one_line_too(cli, home, monkeypatch):
    """Mock: an internal bug cannot be caused from outside, so a command is made to raise one."""
    import appliance.cli as cli_module

    monkeypatch.setattr(cli_module.App, "settings", property(lambda self: 1 / 0))
    result = cli("init")
    one_line_error(result, "internal error: ZeroDivisionError", "APPLIANCE_DEBUG=1")
    assert result.code == 70


@pytest.mark.parametrize("args, framework", [((), "auto"), (("--framework", "trl"), "trl"),
                                             (("--engine", "unsloth"), "unsloth"),
                                             (("--engine", "trl", "--framework", "trl"), "trl")])
def test_train_takes_the_framework_and_still_its_old_name_engine(cli, staff, monkeypatch, tmp_path, args, framework):
    """`--framework` names what trains; `--engine`, its old name, still works for scripts written before, unlisted."""
    from appliance.errors import InputError
    from appliance.train import run

    asked = {}

    def train(ctx, recipe, dataset, **options):
        asked.update(options)
        raise InputError("stopped here")

    monkeypatch.setattr(run, "train", train)
    (tmp_path / "r.yaml").write_text("base_model: smollm2\n")
    result = cli("train", tmp_path / "r.yaml", "--dataset", "d", *args)
    one_line_error(result, "stopped here")
    assert result.code == 2 and asked["framework"] == framework


def test_train_refuses_two_different_frameworks_and_lists_only_the_new_name(cli, staff, tmp_path):
    (tmp_path / "r.yaml").write_text("base_model: smollm2\n")
    result = cli("train", tmp_path / "r.yaml", "--dataset", "d", "--framework", "trl", "--engine", "unsloth")
    assert result.code == 2 and "give --framework only (--engine is its old name)" in result.err
    listed = cli("train", "--help").out
    assert "--framework [auto|unsloth|trl]" in listed and "--engine" not in listed
