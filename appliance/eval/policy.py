"""The release policy (`policies/release.yaml`): thresholds that an evaluation's verdict checks, each gate
reported with its number and pass or fail. Validated strictly; every error is reported at once."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Gates(_Strict):
    task_improvement: float = Field(default=0.10, ge=-1, le=1)
    max_forgetting: float = Field(default=0.05, ge=0, le=1)
    min_judge_win_rate: float = Field(default=0.5, ge=0, le=1)
    max_canary_exposure: float = Field(default=6.0, ge=0)
    no_training_pii: bool = True


class Advice(_Strict):
    """`appliance advise`: when prompting is enough, and when the data is mostly facts (retrieval)."""
    target: float = Field(default=0.8, ge=0, le=1, description="task metric that counts as good enough")
    rouge_target: float = Field(default=0.6, ge=0, le=1, description="ROUGE-L that counts as the right content")
    facts_share: float = Field(default=0.4, ge=0, le=1, description="share of answer words that are new facts")


class Drift(_Strict):
    """`appliance eval --scheduled`: how far a served adapter's scores may fall below its release evaluation."""
    max_drop: float = Field(default=0.05, ge=0, le=1, description="largest tolerated fall of the task metric "
                                                                   "or the general suite accuracy")


class ReleasePolicy(_Strict):
    version: Literal[1] = 1
    gates: Gates = Gates()
    advise: Advice = Advice()
    drift: Drift = Drift()

