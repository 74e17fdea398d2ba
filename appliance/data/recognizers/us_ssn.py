"""US Social Security numbers said to be one, even those Presidio's plausibility check refuses."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CONTEXT_ONLY


class SsnInContextRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entity="US_SSN", name="SsnInContextRecognizer",
                         patterns=[Pattern("ssn any digits", r"\b\d{3}[- .]?\d{2}[- .]?\d{4}\b", CONTEXT_ONLY)],
                         context=["ssn", "social", "security", "ss#", "ssn#"])
