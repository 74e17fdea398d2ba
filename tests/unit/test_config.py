import pytest

from appliance.config import load_settings, read_config_file
from appliance.errors import ConfigError

pytestmark = pytest.mark.unit


def test_home_defaults_to_var_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.home == tmp_path / "var"
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'appliance.db'}"
    assert settings.tmp_dir.parent == settings.home


def test_environment_sets_home_and_database(tmp_path):
    settings = load_settings({"APPLIANCE_HOME": str(tmp_path / "h"),
                              "APPLIANCE_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1/db"})
    assert settings.home == tmp_path / "h"
    assert settings.database_url == "postgresql+psycopg://u@127.0.0.1/db"
    assert not settings.uses_sqlite


def test_config_file_values_are_read(tmp_path):
    (tmp_path / "appliance.toml").write_text('log_level = "debug"\n[llama]\nn_ctx = 4096\nn_threads = 2\n')
    settings = load_settings({"APPLIANCE_HOME": str(tmp_path)})
    assert settings.file.log_level == "debug"
    assert settings.file.llama.n_ctx == 4096
    assert settings.file.llama.n_threads == 2


def test_every_error_in_the_file_is_reported_at_once(tmp_path):
    (tmp_path / "appliance.toml").write_text(
        'log_level = "loud"\ncolour = "blue"\n[llama]\nn_ctx = 10\n[database]\nuri = "x"\n')
    with pytest.raises(ConfigError) as exc:
        read_config_file(tmp_path / "appliance.toml")
    msg = str(exc.value)
    assert msg.startswith(f"{tmp_path / 'appliance.toml'}: 4 errors:")
    assert "colour: unknown key" in msg
    assert "database.uri: unknown key" in msg
    assert "llama.n_ctx" in msg and "log_level" in msg
    assert "\n" not in msg


def test_malformed_toml_names_the_file_and_line(tmp_path):
    (tmp_path / "appliance.toml").write_text("[llama\nn_ctx = 1\n")
    with pytest.raises(ConfigError, match=r"appliance.toml: malformed TOML: .*line 1"):
        load_settings({"APPLIANCE_HOME": str(tmp_path)})


def test_broken_file_never_falls_back_to_defaults(tmp_path):
    (tmp_path / "appliance.toml").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_settings({"APPLIANCE_HOME": str(tmp_path)})


def test_unknown_database_scheme_is_refused_without_echoing_credentials(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_settings({"APPLIANCE_HOME": str(tmp_path), "APPLIANCE_DATABASE_URL": "mysql://root:hunter2@db/x"})
    assert "hunter2" not in str(exc.value)
    assert "'mysql'" in str(exc.value)
