"""Recognizers for what Presidio's defaults miss in government and enterprise text.

Context-dependent ones start below the policy threshold and only pass it when Presidio's context enhancer
finds one of their context words nearby (an SSN is scrubbed when the text says it is an SSN, even if the
number fails Presidio's plausibility check).
"""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

_MONTHS = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|" \
          r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
_STREET_SUFFIX = r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|" \
                 r"Terrace|Ter|Circle|Cir|Highway|Hwy|Parkway|Pkwy|Square|Sq|Trail|Trl)"


_NUMERIC_DATE = r"\b(?:\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})|\d{4}-\d{2}-\d{2})\b"
_MONTH_DAY_YEAR = rf"\b{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b"
_DAY_MONTH_YEAR = rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS}\.?,?\s+\d{{4}}\b"

# Below a 0.5 threshold alone; Presidio's context enhancer adds 0.35 when a context word is near.
_CONTEXT_ONLY = 0.2


class FastPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer (libphonenumber, validated) for national formats, run only on texts with a
    run of seven or more digits: it is the costliest recognizer and most texts have no phone number."""

    _CANDIDATE = re.compile(r"\d(?:[\s().-]*\d){6,}")

    def __init__(self) -> None:
        super().__init__(supported_regions=("US", "GB", "CA", "IN", "DE", "FR"), name="FastPhoneRecognizer")

    def analyze(self, text, entities, nlp_artifacts=None):
        if not self._CANDIDATE.search(text):
            return []
        return super().analyze(text, entities, nlp_artifacts)


class LuhnCreditCardRecognizer(PatternRecognizer):
    """Card numbers Presidio's recognizer does not cover (Mastercard 2-series), Luhn-checked."""

    def __init__(self) -> None:
        super().__init__(supported_entity="CREDIT_CARD", name="LuhnCreditCardRecognizer",
                         patterns=[Pattern("2-series", r"\b2[2-7]\d{2}(?:[ -]?\d{4}){3}\b", 0.3)],
                         context=["card", "credit", "visa", "mastercard", "amex", "payment"])

    def validate_result(self, pattern_text: str) -> bool:
        digits = [int(c) for c in pattern_text if c.isdigit()]
        total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
        return total % 10 == 0


def shipped() -> list[EntityRecognizer]:
    return [
        FastPhoneRecognizer(),
        LuhnCreditCardRecognizer(),
        PatternRecognizer(
            supported_entity="PHONE_NUMBER", name="InternationalPhoneRecognizer",
            patterns=[Pattern("plus and country code",
                              r"(?<![\w+])\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}\b", 0.6),
                      Pattern("north american", r"(?<![\w-])\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b", 0.5)],
            context=["phone", "call", "tel", "mobile", "cell", "fax", "number"]),
        PatternRecognizer(
            supported_entity="US_SSN", name="SsnInContextRecognizer",
            patterns=[Pattern("ssn any digits", r"\b\d{3}[- .]?\d{2}[- .]?\d{4}\b", _CONTEXT_ONLY)],
            context=["ssn", "social", "security", "ss#", "ssn#"]),
        PatternRecognizer(
            supported_entity="STREET_ADDRESS", name="UsStreetAddressRecognizer",
            patterns=[Pattern("number street suffix",
                              rf"\b\d{{1,6}}\s+(?:[NSEW]\.?\s+)?(?:[A-Za-z0-9][A-Za-z0-9'.-]*\s+){{1,4}}{_STREET_SUFFIX}\b\.?"
                              r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|#)\.?\s*[A-Za-z0-9-]+)?"
                              r"(?:,\s*[A-Z][A-Za-z]+(?:\s[A-Z][A-Za-z]+)*,\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?)?", 0.7),
                      Pattern("po box", r"\bP\.?\s?O\.?\s+Box\s+\d{1,6}\b", 0.7)],
            context=["address", "live", "lives", "street", "mail", "ship", "residence"]),
        PatternRecognizer(
            supported_entity="DATE_OF_BIRTH", name="DateOfBirthInContextRecognizer",
            patterns=[Pattern("numeric date", _NUMERIC_DATE, _CONTEXT_ONLY),
                      Pattern("month name date", _MONTH_DAY_YEAR, _CONTEXT_ONLY),
                      Pattern("day month year", _DAY_MONTH_YEAR, _CONTEXT_ONLY)],
            context=["born", "bear", "birth", "dob", "birthday", "d.o.b", "b."]),  # spaCy lemmatises born -> bear
        PatternRecognizer(
            supported_entity="NATIONAL_ID", name="NationalIdInContextRecognizer",
            patterns=[Pattern("uk nino", r"\b[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b", 0.6),
                      Pattern("id-like token", r"\b[A-Z]{1,2}\d{6,9}\b", _CONTEXT_ONLY)],
            context=["passport", "national", "id", "identity", "insurance", "license", "licence", "nino"]),
        PatternRecognizer(
            supported_entity="EMPLOYEE_ID", name="EmployeeIdRecognizer",
            patterns=[Pattern("emp prefix", r"\bEMP[-#]?\d{4,8}\b", 0.7),
                      Pattern("number in context", r"\b[A-Z]?\d{5,8}\b", _CONTEXT_ONLY)],
            context=["employee", "staff", "badge", "personnel", "payroll"]),
        PatternRecognizer(
            supported_entity="CASE_NUMBER", name="CaseNumberRecognizer",
            patterns=[Pattern("case prefix", r"\bCASE[-#]?\d{2,4}[-/]?\d{2,8}\b", 0.7),
                      Pattern("docket", r"\b\d{1,2}:\d{2}-(?:cv|cr|mj|bk)-\d{3,6}\b", 0.7)],
            context=["case", "docket", "claim", "file"]),
        ContextNameRecognizer(),
    ]


class ContextNameRecognizer(EntityRecognizer):
    """Names that spaCy's small model misses: any case after "my name is" / "named"; Capitalised or
    UPPER-CASE after words that introduce a person ("Dear", "Mr.", "I am", "contact", "regards")."""

    _STRONG = r"(?i:my name is|name is|named|name:|i am called|call me)"
    _WEAK = (r"(?i:i am|i'm|this is|contact|customer|client|caller|patient|colleague|manager|mr|mrs|ms|miss|dr|"
             r"dear|hi|hello|thanks|regards|signed|from|by|with|cc|assigned to|spoke to|spoke with|per|attn|"
             r"attention|approved by|requested by|reported by)")
    _VERB = (r"(?i:lives|lived|called|phoned|emailed|asked|reported|said|wrote|works|worked|requested|"
             r"complained|can be reached|is reachable|was born|approved|signed)")
    _ANY_CASE = r"[A-Za-z][a-z'’-]+|[A-Z][A-Z'’-]+"
    _CAPITALISED = r"[A-Z][a-z'’-]+|[A-Z][A-Z'’-]+"
    _STOP = frozenset("""the a an and or to of for on in at is was be been it this that you your we our my me us
        them they he she his her i sir madam team all everyone there support desk service please ticket case
        issue today tomorrow yesterday monday tuesday wednesday thursday friday saturday sunday morning afternoon
        evening not no yes just also still again now here help their its who what when where why how can will
        would could should may might must do does did have has had get got new old other same any some each
        every more most very many much one two three first last next previous admin administrator user users
        customer client employee manager staff hr it finance legal sales account accounts billing security
        number home logs log profile locked unable trying having going working calling writing looking
        sorry glad happy good great fine okay ok""".split())

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="ContextNameRecognizer", supported_language="en")
        self._strong = re.compile(rf"\b{self._STRONG}\s+({self._ANY_CASE})(?:\s+({self._ANY_CASE}))?")
        self._weak = re.compile(rf"\b{self._WEAK}\.?,?\s+({self._CAPITALISED})(?:\s+({self._CAPITALISED}))?")
        # "renee lewis lives at ...": two words opening a sentence, then a verb that only a person takes.
        self._weak_pair = re.compile(rf"\b{self._WEAK}\.?,?\s+([a-z][a-z'’-]{{2,}})\s+([a-z][a-z'’-]{{2,}})\b")
        self._subject = re.compile(rf"(?:^|[.!?;]\s+)({self._ANY_CASE})\s+({self._ANY_CASE})(?=\s+{self._VERB}\b)")

    def load(self) -> None:  # nothing to load
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        if "PERSON" not in entities:
            return []
        results = []
        for regex in (self._strong, self._weak, self._weak_pair, self._subject):
            for m in regex.finditer(text):
                first, last = m.group(1), m.group(2)
                if first.lower() in self._STOP or (regex is self._weak_pair and last.lower() in self._STOP):
                    continue
                end = m.end(2) if last and last.lower() not in self._STOP else m.end(1)
                results.append(RecognizerResult(
                    "PERSON", m.start(1), end, 0.6, analysis_explanation=None,
                    recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                          RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
        return results
