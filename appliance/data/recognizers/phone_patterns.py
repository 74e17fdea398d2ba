"""Phone numbers by shape: international (+CC ...), North American, and the national trunk-prefix forms of
the UK, Germany, France, Spain and Brazil that libphonenumber's validation can refuse (fictional ranges,
a "(0)" inside an international number)."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CONTEXT_ONLY

CONTEXT = ["phone", "call", "tel", "mobile", "cell", "fax", "telefone", "telefon", "teléfono", "téléphone",
           "tél", "celular", "handy", "móvil", "movil", "portable", "whatsapp", "ring", "contact"]


class PhonePatternRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entity="PHONE_NUMBER", name="PhonePatternRecognizer", context=CONTEXT, patterns=[
            Pattern("plus and country code",
                    r"(?<![\w+])\+\d{1,3}[\s.-]?(?:\(0\)\s?)?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}\b", 0.6),
            Pattern("north american", r"(?<![\w-])\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b", 0.5),
            Pattern("uk national", r"(?<![\w-])\(?0(?:\d{2}\)?\s?\d{4}\s?\d{4}|\d{3}\)?\s?\d{3}\s?\d{4}"
                                   r"|\d{4}\)?\s?\d{6}|7\d{3}\s?\d{6})\b", 0.4),
            Pattern("french national", r"(?<![\w-])0[1-9](?:[\s.-]?\d{2}){4}\b", 0.5),
            Pattern("brazilian national", r"(?<![\w-])\(?\d{2}\)?\s?9?\d{4}-\d{4}\b", 0.5),
            Pattern("german national", r"(?<![\w-])\(?0\d{2,5}\)?[\s/-]?\d{3,8}(?:-\d{1,5})?\b", CONTEXT_ONLY),
            Pattern("spanish national", r"(?<![\w-])(?:[6789]\d{2}(?:[\s.]?\d{3}){2}|[89]\d(?:[\s.]?\d{3})"
                                        r"(?:[\s.]?\d{2}){2})\b", CONTEXT_ONLY),
        ])
