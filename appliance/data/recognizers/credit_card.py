"""Card numbers Presidio's recognizer does not cover, Luhn-checked: Mastercard's 2-series alone; any other
card length (12-19 digits: Maestro, JCB, 19-digit Visa) when the text says it is a card."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CONTEXT_ONLY


def luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return total % 10 == 0


class LuhnCreditCardRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entity="CREDIT_CARD", name="LuhnCreditCardRecognizer",
                         patterns=[Pattern("2-series", r"\b2[2-7]\d{2}(?:[ -]?\d{4}){3}\b", 0.3),
                                   Pattern("card length", r"\b\d(?:[ -]?\d){11,18}\b", CONTEXT_ONLY)],
                         context=["card", "credit", "visa", "mastercard", "amex", "payment", "cartão", "tarjeta",
                                  "carte", "karte", "kreditkarte", "cc", "debit", "maestro", "jcb", "discover",
                                  "diners"])

    def validate_result(self, pattern_text: str) -> bool | None:
        """A failed Luhn check refuses; a 2-series number that passes is certain, other lengths still need
        their context word (Presidio raises a validated finding to the maximum score)."""
        if not luhn(pattern_text):
            return False
        digits = "".join(c for c in pattern_text if c.isdigit())
        return True if len(digits) == 16 and "22" <= digits[:2] <= "27" else None
