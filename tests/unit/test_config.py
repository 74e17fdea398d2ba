import os
from pathlib import Path

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


def test_the_database_url_can_live_in_its_own_file(tmp_path):
    """A PostgreSQL password in neither appliance.toml (which backups copy) nor any environment."""
    secret = tmp_path / "database-url"
    secret.write_text("postgresql+psycopg://appliance:s3cret@127.0.0.1/appliance\n")
    (tmp_path / "appliance.toml").write_text(f'[database]\nurl_file = "{secret}"\n')
    settings = load_settings({"APPLIANCE_HOME": str(tmp_path)})
    assert settings.database_url == "postgresql+psycopg://appliance:s3cret@127.0.0.1/appliance"
    assert "s3cret" not in (tmp_path / "appliance.toml").read_text()
    # The environment still wins, as for `url`.
    assert load_settings({"APPLIANCE_HOME": str(tmp_path), "APPLIANCE_DATABASE_URL": "sqlite:///x.db"}
                         ).database_url == "sqlite:///x.db"
    secret.write_text("\n")
    with pytest.raises(ConfigError, match="database-url: the database URL file .* is empty"):
        load_settings({"APPLIANCE_HOME": str(tmp_path)})
    secret.unlink()
    with pytest.raises(ConfigError, match="database-url: cannot read the database URL"):
        load_settings({"APPLIANCE_HOME": str(tmp_path)})
    (tmp_path / "appliance.toml").write_text(f'[database]\nurl = "sqlite:///x.db"\nurl_file = "{secret}"\n')
    with pytest.raises(ConfigError, match="set url or url_file, not both"):
        load_settings({"APPLIANCE_HOME": str(tmp_path)})


def test_config_check_validates_a_file_before_it_is_used(tmp_path, cli):
    """What Ansible's `validate:` runs on a rendered appliance.toml: no home or database needed."""
    good = tmp_path / "good.toml"
    good.write_text('log_level = "warning"\n[llama]\nn_ctx = 4096\n')
    result = cli("config", "check", good)
    assert result.code == 0 and result.out.strip() == f"{good}: valid"
    bad = tmp_path / "bad.toml"
    bad.write_text('log_level = "loud"\n[llama]\nn_thread = 3\n')
    result = cli("config", "check", bad)
    assert result.code == 2 and "2 errors" in result.err and "llama.n_thread: unknown key" in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    url = tmp_path / "url.toml"
    url.write_text('[database]\nurl = "mysql://root:hunter2@db/x"\n')
    result = cli("config", "check", url)
    assert result.code == 2 and "'mysql'" in result.err and "hunter2" not in result.err
    missing = cli("config", "check", tmp_path / "absent.toml")
    assert missing.code == 2 and "absent.toml: no such file" in missing.err
    assert not (tmp_path / "var").exists()


def test_policies_come_from_the_environment_a_checkout_or_the_installed_copy(tmp_path, monkeypatch):
    import sys
    from pathlib import Path

    from appliance import paths

    monkeypatch.setenv("APPLIANCE_POLICIES", str(tmp_path))
    assert paths.policies_dir() == tmp_path
    monkeypatch.delenv("APPLIANCE_POLICIES")
    checkout = Path(paths.__file__).resolve().parents[1] / "policies"
    assert paths.policies_dir() == checkout and (checkout / "release.yaml").is_file()
    # Outside a checkout (a wheel install), the data files under the environment's prefix.
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "site-packages" / "appliance" / "paths.py"))
    assert paths.policies_dir() == Path(sys.prefix) / "share" / "appliance" / "policies"


@pytest.mark.parametrize("debug", ["", "1"])
def test_library_chatter_is_silenced_in_one_place_unless_debugging(debug):
    """A library's deprecation warning and its notices are hidden, and bars are off, unless APPLIANCE_DEBUG=1."""
    import subprocess
    import sys

    probe = ("import logging, os, warnings, sys\n"
             "from appliance.chatter import silence\n"
             "silence()\n"
             "warnings.warn_explicit('old API', FutureWarning, 'transformers/x.py', 1, module='transformers.x')\n"
             "warnings.warn_explicit('yours', FutureWarning, 'appliance/x.py', 1, module='appliance.x')\n"
             "logging.basicConfig()\n"
             "logging.getLogger('transformers.trainer').warning('a notice')\n"
             "print(os.environ.get('TQDM_DISABLE'))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "APPLIANCE_DEBUG")}
    done = subprocess.run([sys.executable, "-c", probe], env={**env, "APPLIANCE_DEBUG": debug}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "yours" in done.stderr  # a warning about the appliance's own code always shows
    if debug:
        assert "old API" in done.stderr and "a notice" in done.stderr and done.stdout.strip() == "None"
    else:
        assert "old API" not in done.stderr and "a notice" not in done.stderr and done.stdout.strip() == "1"


def test_a_library_banner_is_held_back_unless_the_block_fails_or_debugging(capsys, monkeypatch):
    from appliance.chatter import captured

    monkeypatch.delenv("APPLIANCE_DEBUG", raising=False)
    with captured():
        print("Unsloth: a banner")
    assert capsys.readouterr().out == ""
    with pytest.raises(RuntimeError), captured():
        print("the line that explains it")
        raise RuntimeError("failed")
    assert "the line that explains it" in capsys.readouterr().err  # nothing that explains a failure is lost
    monkeypatch.setenv("APPLIANCE_DEBUG", "1")
    with captured():
        print("Unsloth: a banner")
    assert capsys.readouterr().out == "Unsloth: a banner\n"


def test_what_the_appliance_trusts_comes_from_roots_trust_dir_never_from_the_home(tmp_path):
    """appliance.toml lies in the home, which the service account can rewrite: on an install (APPLIANCE_TRUST_DIR
    set, by root's appliance.env) it cannot point the pinned keys at a file of its own."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "appliance.toml").write_text(f'[audit]\npinned_keys = "{home}/keys/mine.pem"\n')
    dev = load_settings({"APPLIANCE_HOME": str(home)})
    assert dev.pinned_keys_path == home / "keys" / "mine.pem"  # development: the home's owner is everyone
    installed = load_settings({"APPLIANCE_HOME": str(home), "APPLIANCE_TRUST_DIR": "/etc/appliance"})
    assert (installed.pinned_keys_path, installed.pinned_artifact_keys_path, installed.people_keys_path) == (
        Path("/etc/appliance/audit-keys.pem"), Path("/etc/appliance/artifact-keys.pem"),
        Path("/etc/appliance/people-keys.jsonl"))
