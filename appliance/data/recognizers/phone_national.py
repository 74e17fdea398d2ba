"""Phone numbers in national formats, validated by libphonenumber (through Presidio's PhoneRecognizer)."""

from __future__ import annotations

import re

from presidio_analyzer.predefined_recognizers import PhoneRecognizer

REGIONS = ("US", "GB", "CA", "IN", "DE", "FR", "ES", "BR", "PT", "IE", "AU")


class NationalPhoneRecognizer(PhoneRecognizer):
    """Run only on texts with a run of seven or more digits: libphonenumber is the costliest recognizer and
    most texts have no phone number."""

    _CANDIDATE = re.compile(r"\d(?:[\s().-]*\d){6,}")

    def __init__(self) -> None:
        super().__init__(supported_regions=REGIONS, name="NationalPhoneRecognizer",
                         context=["phone", "call", "tel", "mobile", "cell", "fax", "telefone", "telefon", "teléfono",
                                  "téléphone", "celular", "handy", "móvil", "portable", "ligar", "llamar"])

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        if not self._CANDIDATE.search(text):
            return []
        return super().analyze(text, entities, nlp_artifacts)
