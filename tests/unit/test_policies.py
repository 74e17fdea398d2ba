"""Installed policies: a scrub policy's strictness is computed from what it scrubs, a declared one is refused, every
change of an installed file is a `policy.change` event with the old and new digests, and a digest that history
never admitted is named."""

import json
import shutil
from pathlib import Path

import pytest

from appliance import policies
from appliance.config import load_settings
from appliance.context import Context
from appliance.data.policy import PiiPolicy, covered, strictness
from appliance.db import connect
from appliance.errors import ConfigError, PolicyViolation
from tests.conftest import audit_events

pytestmark = pytest.mark.unit
SHIPPED = Path(__file__).resolve().parents[2] / "policies"


def _pii(**fields) -> PiiPolicy:
    return PiiPolicy.model_validate(fields)


def test_strictness_is_what_the_policy_really_scrubs():
    shipped, _ = policies.read("pii", SHIPPED / "pii.yaml")
    assert strictness(shipped) == 3
    one = _pii(entities={"EMAIL_ADDRESS": {"operator": "replace"}})
    assert strictness(one) == 0 and covered(one) == {"EMAIL_ADDRESS"}
    direct = {e: {"operator": "replace"} for e in ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE",
                                                    "US_SSN")}
    assert strictness(_pii(entities=direct)) == 1
    people = {**direct, **{e: {"operator": "hash"} for e in ("PERSON", "STREET_ADDRESS", "IP_ADDRESS",
                                                              "DATE_OF_BIRTH")}}
    assert strictness(_pii(entities=people)) == 2
    # Named but not scrubbed for real: a threshold findings cannot reach, a mask that shows the value, a
    # keep-pattern that spares every e-mail address.
    assert strictness(_pii(entities=people, score_threshold=0.95)) == 0
    assert strictness(_pii(entities={**people, "CREDIT_CARD": {"operator": "mask", "keep_last": 12}})) == 0
    assert strictness(_pii(entities=people, keep_patterns=[r"\S+@\S+"])) == 0
    assert strictness(_pii(entities={**people, "PERSON": {"operator": "replace", "score_threshold": 0.99}})) == 1


def test_a_declared_strictness_is_refused_and_check_reports_the_computed_one(tmp_path):
    weak = tmp_path / "pii.yaml"
    weak.write_text("strictness: 3\nentities: {EMAIL_ADDRESS: {operator: replace}}\n")
    with pytest.raises(ConfigError, match="strictness is computed from the entities"):
        policies.check_file(weak)
    weak.write_text("entities: {EMAIL_ADDRESS: {operator: replace}}\n")
    report = policies.check_file(weak)
    assert report["strictness"] == 0 and report["covered"] == ["EMAIL_ADDRESS"] and len(report["digest"]) == 64
    with pytest.raises(ConfigError, match="unknown key"):
        (tmp_path / "training.yaml").write_text("allowed_models: [{name: m, digest: embedded}]\nbudget: 3\n")
        policies.check_file(tmp_path / "training.yaml")


def test_the_cli_checks_a_candidate_without_installing_it(cli, tmp_path):
    weak = tmp_path / "candidate.yaml"
    weak.write_text("entities: {EMAIL_ADDRESS: {operator: replace}}\n")
    assert "name the policy with --kind" in cli("policies", "check", weak).err
    result = cli("policies", "check", weak, "--kind", "pii")
    assert result.code == 0 and "strictness 0 (scrubs EMAIL_ADDRESS)" in result.out


@pytest.fixture
def installed(staff, tmp_path, monkeypatch):
    """A policy folder of our own, installed for this test (APPLIANCE_POLICIES), and a context on the staff home."""
    folder = tmp_path / "policies"
    shutil.copytree(SHIPPED, folder)
    monkeypatch.setenv("APPLIANCE_POLICIES", str(folder))
    settings = load_settings()
    return folder, Context(settings, connect(settings))


def _changes(home):
    changes = audit_events(home, "policy.change", "object_id", "details")
    return [(kind, json.loads(details)) for kind, details in changes]


def test_every_change_of_an_installed_policy_is_an_event_with_both_digests(staff, installed):
    folder, ctx = installed
    first = policies.load(ctx, "release")
    policies.load(ctx, "release")  # the same file again: nothing new
    assert [(k, d["old"], d["new"]) for k, d in _changes(staff.home)] == [("release", None, first.digest)]
    text = (folder / "release.yaml").read_text().replace("max_forgetting: 0.05", "max_forgetting: 0.5")
    (folder / "release.yaml").write_text(text)
    second = policies.load(ctx, "release")
    assert second.policy.gates.max_forgetting == 0.5
    assert _changes(staff.home)[-1][1] | {"file": None} == {
        "old": first.digest, "new": second.digest, "file": None, "noticed_for": "system",
        "owner_uid": (folder / "release.yaml").stat().st_uid,
        "mode": oct((folder / "release.yaml").stat().st_mode & 0o7777)}
    assert policies.admitted(ctx.engine, "release") == {first.digest, second.digest}
    assert policies.unadmitted(ctx.engine, {"release": second.digest}) == []
    problems = policies.unadmitted(ctx.engine, {"release": "ab" * 32, "training": None})
    assert problems == [f"release policy: digest {'ab' * 8}... was never an installed release policy",
                        "training policy: no digest recorded"]
    with pytest.raises(PolicyViolation, match="run x: release policy: digest"):
        policies.require_admitted(ctx, {"release": "ab" * 32}, "run x")


def test_a_broken_installed_policy_stops_what_it_gates(staff, installed):
    folder, ctx = installed
    (folder / "training.yaml").write_text("allowed_models: []\n")
    with pytest.raises(ConfigError, match="training.yaml"):
        policies.load(ctx, "training")
    report = {e["policy"]: e for e in policies.installed_report(ctx)}
    assert report["training"]["valid"] is False and report["pii"]["strictness"] == 3
