"""Dates of birth: any date shape, scrubbed when the text says it is a birth date (in any policy language)."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CONTEXT_ONLY, MONTHS

NUMERIC = r"\b(?:\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})|\d{4}-\d{2}-\d{2})\b"
MONTH_DAY_YEAR = rf"\b{MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b"
DAY_MONTH_YEAR = rf"(?i:\b\d{{1,2}}(?:st|nd|rd|th|er|º)?\.?\s+(?:de\s+)?{MONTHS}\.?,?\s+(?:de\s+)?\d{{4}}\b)"
# spaCy's lemmas are switched off (context words meet lower-cased tokens), so "born" and "bear" both appear.
CONTEXT = ["born", "bear", "birth", "dob", "birthday", "d.o.b", "b.", "geboren", "geburtsdatum", "geb.", "né", "née",
           "naissance", "nascido", "nascida", "nascimento", "nacido", "nacida", "nacimiento", "f.nac"]


class DateOfBirthInContextRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entity="DATE_OF_BIRTH", name="DateOfBirthInContextRecognizer", context=CONTEXT,
                         patterns=[Pattern("numeric date", NUMERIC, CONTEXT_ONLY),
                                   Pattern("month name date", MONTH_DAY_YEAR, CONTEXT_ONLY),
                                   Pattern("day month year", DAY_MONTH_YEAR, CONTEXT_ONLY)])
