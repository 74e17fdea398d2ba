"""UK National Insurance numbers, with HMRC's prefix rules (no D, F, I, Q, U or V; no O second; never BG, GB,
KN, NK, NT, TN or ZZ)."""

from __future__ import annotations

import re

from presidio_analyzer import Pattern, PatternRecognizer

_INVALID_PREFIXES = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


class UkNinoRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entity="NATIONAL_ID", name="UkNinoRecognizer",
                         context=["insurance", "nino", "ni", "nin"],
                         patterns=[Pattern("nino", r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\s?\d{2}\s?\d{2}\s?\d{2}"
                                                   r"\s?[A-D]\b", 0.6)])

    def validate_result(self, pattern_text: str) -> bool:
        return re.sub(r"\s", "", pattern_text)[:2].upper() not in _INVALID_PREFIXES
