"""German addresses: street (…straße, …weg, …platz, or "Berliner Straße"), house number, and an optional
five-digit postcode and town."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CASE_SENSITIVE

# At least three letters before the street word: "During 2011" and "Spring 5" are not a Ring.
_JOINED = r"[A-ZÄÖÜ][a-zäöüß-]{2,}(?:straße|strasse|str\.|weg|platz|allee|gasse|ring|damm|ufer|chaussee)"
_SEPARATE = r"(?:[A-ZÄÖÜ][a-zäöüß-]+\s){1,2}(?:Straße|Strasse|Str\.|Weg|Platz|Allee|Gasse|Ring|Damm|Ufer)"


class GermanAddressRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(
            global_regex_flags=CASE_SENSITIVE, supported_entity="STREET_ADDRESS", name="GermanAddressRecognizer",
                         context=["adresse", "anschrift", "wohnt", "wohnhaft", "address", "straße"], patterns=[
            Pattern("street number postcode",
                    rf"\b(?:{_JOINED}|{_SEPARATE})\s?\d{{1,4}}\s?[a-z]?\b(?:,?\s+\d{{5}}\s+[A-ZÄÖÜ][a-zäöüß-]+"
                    rf"(?:\s(?:am|an der|im)\s[A-ZÄÖÜ][a-zäöüß]+)?)?", 0.7)])
