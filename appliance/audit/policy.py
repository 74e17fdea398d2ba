"""The audit policy (`policies/audit.yaml`): the checkpoint cadence the signer keeps and verification holds it to."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cadence(_Strict):
    every_events: int = Field(default=1000, ge=1, le=10_000_000)
    every_seconds: int = Field(default=300, ge=1, le=31_536_000)
    grace_seconds: int = Field(default=60, ge=0, le=86_400)


class AuditPolicy(_Strict):
    version: Literal[1] = 1
    checkpoint: Cadence = Cadence()


def cadence() -> Cadence:
    """The installed cadence, read without recording (the signer reads it while appending)."""
    from appliance import policies

    return policies.read("audit")[0].checkpoint
