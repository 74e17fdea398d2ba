"""Phone numbers in national formats, validated by libphonenumber (through Presidio's PhoneRecognizer)."""

from __future__ import annotations

import re

from presidio_analyzer.predefined_recognizers import PhoneRecognizer

REGIONS = ("US", "GB", "CA", "IN", "DE", "FR", "ES", "BR", "PT", "IE", "AU")


class NationalPhoneRecognizer(PhoneRecognizer):
    """Run only where a run of seven or more digits stands, on that run and the few characters around it on
    its line: libphonenumber is the costliest recognizer, and over a whole text it parses every house number,
    year and card number in every region."""

    _CANDIDATE = re.compile(r"\d(?:[\s().-]*\d){6,}")
    _BEFORE, _AFTER = 3, 12  # a "+" or "(" before; an extension ("x123", "ext. 45") after

    def __init__(self) -> None:
        super().__init__(supported_regions=REGIONS, name="NationalPhoneRecognizer",
                         context=["phone", "call", "tel", "mobile", "cell", "fax", "telefone", "telefon", "teléfono",
                                  "téléphone", "celular", "handy", "móvil", "portable", "ligar", "llamar"])

    def _segments(self, text: str) -> list[tuple[int, int]]:
        segments: list[tuple[int, int]] = []
        for m in self._CANDIDATE.finditer(text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            line_end = text.find("\n", m.end())
            start = max(line_start, m.start() - self._BEFORE)
            end = min(len(text) if line_end < 0 else line_end, m.end() + self._AFTER)
            if segments and start <= segments[-1][1]:
                segments[-1] = (segments[-1][0], end)
            else:
                segments.append((start, end))
        return segments

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        results = []
        for start, end in self._segments(text):
            for found in super().analyze(text[start:end], entities, None):
                found.start += start
                found.end += start
                results.append(found)
        return results
