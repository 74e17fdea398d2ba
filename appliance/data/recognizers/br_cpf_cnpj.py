"""Brazilian CPF (people) and CNPJ (companies, and so sole traders) numbers under the LGPD, checked by their two
mod-11 check digits. Formatted numbers pass alone; bare digits need a context word."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CASE_SENSITIVE, CONTEXT_ONLY


def _check_digit(digits: list[int], weights: list[int]) -> int:
    rest = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
    return 0 if rest < 2 else 11 - rest


def cpf_valid(text: str) -> bool:
    d = [int(c) for c in text if c.isdigit()]
    if len(d) != 11 or len(set(d)) == 1:
        return False
    return (_check_digit(d[:9], list(range(10, 1, -1))) == d[9]
            and _check_digit(d[:10], list(range(11, 1, -1))) == d[10])


def cnpj_valid(text: str) -> bool:
    d = [int(c) for c in text if c.isdigit()]
    if len(d) != 14 or len(set(d)) == 1:
        return False
    first = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
    return _check_digit(d[:12], first) == d[12] and _check_digit(d[:13], [6, *first]) == d[13]


class BrCpfCnpjRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(
            global_regex_flags=CASE_SENSITIVE, supported_entity="NATIONAL_ID", name="BrCpfCnpjRecognizer",
                         context=["cpf", "cnpj", "contribuinte", "cadastro", "documento", "inscrição"], patterns=[
            Pattern("cpf formatted", r"\b\d{3}\.\d{3}\.\d{3}-\d{2}\b", 0.7),
            Pattern("cnpj formatted", r"\b\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}\b", 0.7),
            Pattern("bare digits", r"\b(?:\d{11}|\d{14})\b", CONTEXT_ONLY)])

    def validate_result(self, pattern_text: str) -> bool | None:
        """A wrong check digit refuses; a right one makes a formatted number certain, while bare digits still
        need their context word (Presidio raises a validated finding to the maximum score)."""
        if not (cpf_valid(pattern_text) or cnpj_valid(pattern_text)):
            return False
        return True if not pattern_text.isdigit() else None
