"""Spanish DNI/NIE (check letter, mod 23) and French NIR (social security number, key 97 - n mod 97)."""

from __future__ import annotations

import re

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CASE_SENSITIVE

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_nie_valid(text: str) -> bool:
    value = re.sub(r"[\s.-]", "", text).upper()
    if value[0] in "XYZ":
        value = str("XYZ".index(value[0])) + value[1:]
    return value[:-1].isdigit() and _DNI_LETTERS[int(value[:-1]) % 23] == value[-1]


def nir_valid(text: str) -> bool:
    value = re.sub(r"\s", "", text).upper()
    body, key = value[:13], value[13:]
    body = body.replace("2A", "19").replace("2B", "18")  # Corsica
    return body.isdigit() and key.isdigit() and 97 - int(body) % 97 == int(key)


class EuNationalIdRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(
            global_regex_flags=CASE_SENSITIVE, supported_entity="NATIONAL_ID", name="EuNationalIdRecognizer",
                         context=["dni", "nie", "nif", "documento", "identidad", "nir", "sécurité", "securite",
                                  "sociale", "insee", "numéro"], patterns=[
            Pattern("dni", r"\b\d{8}-?[A-Z]\b", 0.6),
            Pattern("nie", r"\b[XYZ]-?\d{7}-?[A-Z]\b", 0.6),
            Pattern("nir", r"\b[12]\s?\d{2}\s?(?:0[1-9]|1[0-2]|[2-9]\d)\s?(?:\d{2}|2[AB])\s?\d{3}\s?\d{3}\s?\d{2}\b",
                    0.6)])

    def validate_result(self, pattern_text: str) -> bool:
        value = re.sub(r"[\s.-]", "", pattern_text)
        return nir_valid(value) if len(value) == 15 else dni_nie_valid(value)
