"""A stored evaluation, typed: its gates (each with its number, threshold and status) and the officer's
override. The measured numbers stay in `result`, the JSON that the report, the artifact and the console read."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Gate:
    gate: str
    metric: str
    value: float | int | None
    threshold: str
    status: str  # pass, fail, or n/a (not measured)

    @classmethod
    def of(cls, entry: dict) -> Gate:
        return cls(entry["gate"], entry["metric"], entry["value"], entry["threshold"], entry["status"])


def failed(gates: list[dict]) -> list[str]:
    """The names of the gates that failed, in the verdict's order."""
    return [g["gate"] for g in gates if g["status"] == "fail"]


@dataclass(frozen=True)
class EvalResult:
    id: str
    run_id: str
    run_name: str
    created_at: str
    created_by: str
    adapter_digest: str
    policy_digest: str
    suite_digest: str
    judge_model: str | None
    passed: bool
    result: dict
    report_path: str
    override_by: str | None
    override_reason: str | None
    override_at: str | None

    @property
    def gates(self) -> list[Gate]:
        return [Gate.of(g) for g in self.result["gates"]]

    @property
    def failed_gates(self) -> list[str]:
        return failed(self.result["gates"])

    @property
    def releasable(self) -> bool:
        """The gates passed, or an officer overrode them."""
        return self.passed or self.override_by is not None

    @property
    def verdict(self) -> str:
        """passed, overridden (failed gates an officer accepted) or failed."""
        return "passed" if self.passed else "overridden" if self.override_by else "failed"

    def as_dict(self) -> dict:
        return {**asdict(self), "releasable": self.releasable}
