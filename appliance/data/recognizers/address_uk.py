"""UK addresses: house number, street and its type, optional town, and the postcode; a postcode alone in
context."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CASE_SENSITIVE, CONTEXT_ONLY

POSTCODE = r"(?:GIR ?0AA|[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]? ?\d[ABD-HJLNP-UW-Z]{2})"
STREET = (r"(?:Road|Rd|Street|St|Lane|Close|Crescent|Gardens|Grove|Avenue|Ave|Drive|Way|Place|Terrace|Mews|Row|"
          r"Square|Court|Hill|Walk|Park|Rise|View|Green|Parade|Vale)")


class UkAddressRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(
            global_regex_flags=CASE_SENSITIVE, supported_entity="STREET_ADDRESS", name="UkAddressRecognizer",
                         context=["address", "postcode", "post code", "live", "lives", "deliver", "send", "moved"],
                         patterns=[
            Pattern("number street postcode",
                    rf"\b(?:Flat \d+[A-Z]?,?\s+)?\d{{1,4}}[A-Z]?\s+(?:[A-Z][a-z'-]+\s+){{1,3}}{STREET}\b"
                    rf"(?:,\s*(?:[A-Z][a-z'-]+\s?){{1,3}})?,?\s+{POSTCODE}\b", 0.75),
            Pattern("postcode", rf"\b{POSTCODE}\b", CONTEXT_ONLY)])
