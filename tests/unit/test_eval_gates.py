"""The release gates' verdict, gate by gate: a table of measured numbers and the status each must give."""

from dataclasses import replace

import pytest

from appliance.eval.gates import passed, verdict
from appliance.eval.policy import Gates, ReleasePolicy
from appliance.eval.result import EvalResult, Gate

pytestmark = pytest.mark.unit

POLICY = ReleasePolicy(gates=Gates(task_improvement=0.10, max_forgetting=0.05, min_judge_win_rate=0.5,
                                   max_canary_exposure=6.0, no_training_pii=True))


def measured(improvement=0.2, forgetting=0.0, win_rate=None, exposure=None, pii_added=0, reproduced=0) -> dict:
    result = {"task": {"primary": "format_match", "delta": {"format_match": improvement}},
              "suite": {"forgetting": forgetting},
              "leakage": {"max_planted_exposure": exposure, "pii_added": {"PERSON": pii_added} if pii_added else {},
                          "adapter_reproduced": ["111-222-333"] * reproduced}}
    if win_rate is not None:
        result["judge"] = {"win_rate": win_rate}
    return result


@pytest.mark.parametrize("gate, numbers, status", [
    ("task_improvement", {"improvement": 0.10}, "pass"),           # the threshold itself passes
    ("task_improvement", {"improvement": 0.0999}, "fail"),
    ("task_improvement", {"improvement": -0.3}, "fail"),
    ("max_forgetting", {"forgetting": 0.05}, "pass"),
    ("max_forgetting", {"forgetting": 0.0501}, "fail"),
    ("max_forgetting", {"forgetting": -0.02}, "pass"),             # the adapter answered more of the suite
    ("min_judge_win_rate", {}, "n/a"),                             # no judge: not measured, not failed
    ("min_judge_win_rate", {"win_rate": 0.5}, "pass"),
    ("min_judge_win_rate", {"win_rate": 0.49}, "fail"),
    ("max_canary_exposure", {}, "n/a"),                            # no canaries planted
    ("max_canary_exposure", {"exposure": 6.0}, "pass"),
    ("max_canary_exposure", {"exposure": 6.01}, "fail"),
    ("no_training_pii", {}, "pass"),
    ("no_training_pii", {"pii_added": 1}, "fail"),
    ("no_training_pii", {"reproduced": 1}, "fail"),
])
def test_each_gate_gives_its_status_for_its_number(gate, numbers, status):
    gates = {g["gate"]: g for g in verdict(POLICY, measured(**numbers))}
    assert list(gates) == ["task_improvement", "max_forgetting", "min_judge_win_rate", "max_canary_exposure",
                           "no_training_pii"]
    assert gates[gate]["status"] == status
    assert passed(list(gates.values())) is (all(g["status"] != "fail" for g in gates.values()))


def test_a_policy_that_does_not_enforce_training_pii_passes_it_and_says_so():
    lenient = ReleasePolicy(gates=Gates(no_training_pii=False))
    gate = {g["gate"]: g for g in verdict(lenient, measured(pii_added=3))}["no_training_pii"]
    assert gate["status"] == "pass" and gate["value"] == 3 and gate["threshold"] == "not enforced"


def test_a_stored_result_names_its_failed_gates_and_is_releasable_only_when_passed_or_overridden():
    gates = verdict(POLICY, measured(improvement=0.0, forgetting=0.2, win_rate=0.9))
    failed = EvalResult("e", "r", "run", "t", "erin", "a", "p", "s", None, passed(gates), {"gates": gates}, "x", None,
                        None, None)
    assert failed.failed_gates == ["task_improvement", "max_forgetting"] and not failed.releasable
    assert failed.gates[0] == Gate("task_improvement", "format_match adapter - base", 0.0, ">= 0.1", "fail")
    overridden = replace(failed, override_by="oscar", override_reason="accepted for the pilot")
    assert overridden.releasable and overridden.failed_gates == failed.failed_gates
    assert (failed.verdict, overridden.verdict, replace(failed, passed=True).verdict) == (
        "failed", "overridden", "passed")
