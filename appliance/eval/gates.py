"""The release gates' verdict: each gate of the release policy against the numbers an evaluation measured."""

from __future__ import annotations

from appliance.eval.policy import ReleasePolicy


def _status(measured, ok: bool) -> str:
    return "n/a" if measured is None else "pass" if ok else "fail"


def verdict(policy: ReleasePolicy, result: dict) -> list[dict]:
    """Each gate with its measured number, threshold and status: pass, fail, or n/a when not measured."""
    g = policy.gates
    task = result["task"]
    primary = task["primary"]
    improvement, forgetting = task["delta"][primary], result["suite"]["forgetting"]
    judge = result.get("judge")
    win_rate = judge["win_rate"] if judge else None
    exposure = result["leakage"].get("max_planted_exposure")
    leaked = sum(result["leakage"]["pii_added"].values()) + len(result["leakage"].get("adapter_reproduced", []))
    return [
        {"gate": "task_improvement", "metric": f"{primary} adapter - base", "value": improvement,
         "threshold": f">= {g.task_improvement}", "status": _status(improvement, improvement >= g.task_improvement)},
        {"gate": "max_forgetting", "metric": "general suite accuracy base - adapter", "value": forgetting,
         "threshold": f"<= {g.max_forgetting}", "status": _status(forgetting, forgetting <= g.max_forgetting)},
        {"gate": "min_judge_win_rate", "metric": "judge win rate (ties half, unparseable counted)", "value": win_rate,
         "threshold": f">= {g.min_judge_win_rate}",
         "status": _status(win_rate, win_rate is not None and win_rate >= g.min_judge_win_rate)},
        {"gate": "max_canary_exposure", "metric": "highest planted canary exposure (bits)", "value": exposure,
         "threshold": f"<= {g.max_canary_exposure}",
         "status": _status(exposure, exposure is not None and exposure <= g.max_canary_exposure)},
        {"gate": "no_training_pii", "metric": "PII entities beyond the base's + canaries reproduced", "value": leaked,
         "threshold": "0" if g.no_training_pii else "not enforced",
         "status": "pass" if not g.no_training_pii or leaked == 0 else "fail"},
    ]


def passed(gates: list[dict]) -> bool:
    """No gate failed (a gate not measured does not fail)."""
    return all(g["status"] != "fail" for g in gates)
