"""The training policy (`policies/training.yaml`): which base models may be trained (by digest), how strict
the dataset's scrub must have been, and the compute budget. Checked before anything heavy; every refusal is
a clear message and an audit event."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.audit.events import Event
from appliance.audit.log import record_alone
from appliance.context import Context
from appliance.errors import PolicyViolation


class AllowedModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    digest: str = Field(description="sha256 of the registered model, or 'embedded' for a shipped model")


class TrainingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Literal[1] = 1
    allowed_models: list[AllowedModel] = Field(min_length=1)
    min_scrub_strictness: int = Field(default=2, ge=0, le=3)
    max_steps: int = Field(default=5000, ge=1)
    max_hours: float = Field(default=24, gt=0)


def check(ctx: Context, policy: TrainingPolicy, *, run_name: str, model, dataset, steps: int,
          estimated_hours: float | None = None) -> None:
    """Raise PolicyViolation (after auditing it) unless this run is allowed."""
    problems = []
    allowed = [a for a in policy.allowed_models if a.name == model.name]
    if not allowed:
        problems.append(f"base model {model.name!r} is not on the allowed list")
    elif not any(a.digest == model.digest or (a.digest == "embedded" and model.source == "embedded")
                 for a in allowed):
        problems.append(f"base model {model.name!r} has digest {model.digest[:16]}..., not the allowed one")
    if dataset.policy_strictness < policy.min_scrub_strictness:
        problems.append(f"dataset {dataset.ref} was scrubbed at strictness {dataset.policy_strictness}, "
                        f"below the required {policy.min_scrub_strictness}")
    from appliance import policies

    problems += [f"dataset {dataset.ref}: {p}" for p in policies.unadmitted(ctx.engine, {"pii": dataset.policy_digest})]
    if steps > policy.max_steps:
        problems.append(f"{steps} steps is over the budget of {policy.max_steps}")
    if estimated_hours is not None and estimated_hours > policy.max_hours:
        problems.append(f"an estimated {estimated_hours:.1f} h is over the budget of {policy.max_hours} h")
    if problems:
        reason = "; ".join(problems)
        record_alone(ctx, Event("train.start", "run", run_name, outcome="denied", reason=reason))
        raise PolicyViolation(f"training refused by policy: {reason}")
