"""Any grouping of 6 to 15 digits, with an extension, that the text says is a phone: the shapes of the
countries no other recognizer knows ("You can call 61 60 34", "Mobile: 97 799724", "0380 7558505 office")."""

from __future__ import annotations

import re

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CONTEXT_ONLY
from appliance.data.recognizers.credit_card import luhn

# Words that say a phone, and only a phone (not "number", which case and order numbers take too).
CONTEXT = ["phone", "call", "tel", "mobile", "cell", "fax", "telefone", "telefon", "teléfono", "téléphone", "tél",
           "celular", "handy", "móvil", "movil", "portable", "whatsapp", "ring", "office", "desk", "registered",
           "reach", "sms", "landline", "phoned", "dial", "messages", "texts", "voicemail", "extension"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{1,2})?|\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})")


class PhoneInContextRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entity="PHONE_NUMBER", name="PhoneInContextRecognizer", context=CONTEXT, patterns=[
            Pattern("digits said to be a phone",  # on one line: a number on the next line is not its group
                    r"(?<![\w-])(?:\+\d{1,3}[ \t.-]?)?\(?\d{2,5}\)?(?:[ \t.-]?\d{2,5}){1,4}"
                    r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?\b", CONTEXT_ONLY)])

    def validate_result(self, pattern_text: str) -> bool | None:
        """Six to fifteen digits (not a year or a postcode), not a date, and not an unbroken card number."""
        digits = "".join(c for c in pattern_text if c.isdigit())
        card = digits == pattern_text and len(digits) >= 13 and luhn(digits)
        if _DATE.fullmatch(pattern_text) or not 6 <= len(digits) <= 15 or card:
            return False
        return None
