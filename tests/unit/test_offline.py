import os
import subprocess
import sys

import pytest

from appliance import offline

pytestmark = pytest.mark.unit


def test_importing_the_package_forces_hub_libraries_offline():
    env = {k: v for k, v in os.environ.items() if k not in offline.OFFLINE_ENV}
    env["HF_HUB_OFFLINE"] = "0"  # an operator's stray setting must not win
    code = ("import appliance, os, json; from appliance.offline import OFFLINE_ENV; "
            "import huggingface_hub.constants as c; "
            "print(json.dumps({k: os.environ.get(k) for k in OFFLINE_ENV} | {'hub': c.HF_HUB_OFFLINE}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    import json

    values = json.loads(out)
    assert values.pop("hub") is True
    assert values == offline.OFFLINE_ENV


def test_violations_name_the_variable(monkeypatch):
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    assert offline.offline_violations() == ["TRANSFORMERS_OFFLINE"]


def test_tldextract_is_pinned_to_its_bundled_snapshot():
    code = ("import appliance.offline as o; o.pin_tldextract(); import tldextract; "
            "print(o.tldextract_is_offline(), tldextract.extract('mail.agency.gov.uk').suffix)")
    out = subprocess.run(["unshare", "-n", sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["True", "gov.uk"]
    assert "Traceback" not in out.stderr
