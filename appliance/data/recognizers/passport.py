"""Passport numbers of any country, when the text says it is one (in any policy language)."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CASE_SENSITIVE, CONTEXT_ONLY


class PassportInContextRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(
            global_regex_flags=CASE_SENSITIVE, supported_entity="PASSPORT", name="PassportInContextRecognizer",
                         context=["passport", "reisepass", "pass", "passaporte", "pasaporte", "passeport"], patterns=[
            Pattern("passport-like token", r"\b(?=[A-Z0-9]*\d)[A-Z]{0,2}\d{6,9}[A-Z]?\b", CONTEXT_ONLY),
            Pattern("german passport", r"\b[CFGHJK][0-9CFGHJKLMNPRTVWXYZ]{8}\b", CONTEXT_ONLY)])
