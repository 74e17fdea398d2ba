"""Street lines of the rest of Europe by their street words: a type before the name ("Via Pasquale Scura 127",
"ul. Długa 5", "Piazza Navona 2") or a name ending in one ("Furuveien 141", "Þorsteinsgata 63",
"Kankaanpääntie 40", "Kronwiesenweg 95"), then the house number."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CASE_SENSITIVE

_BEFORE = (r"(?:Via|Viale|Piazza|Piazzale|Corso|Vicolo|Largo|Carrer|Passeig|Rúa|Ulica|ul\.|Aleja|al\.|Plac|"
           r"Straat|Rue|Strada|Bulevardul|Str\.|Utca|Odos|Odós)")
_ENDING = (r"[A-ZÀ-ÞĀ-Ž][\wà-ÿā-ž]*(?:gata|gatan|gade|vägen|veien|vegen|vej|stræde|straat|laan|gracht|weg|"
           r"straße|strasse|gasse|tie|katu|kuja|polku|utca|út|ulica|cesta|ceļš|iela|gatve|tänav)")
_NAME = r"(?:[A-ZÀ-ÞĀ-Ž][\wà-ÿā-ž'.-]*\s){0,3}[A-ZÀ-ÞĀ-Ž][\wà-ÿā-ž'.-]*"


class EuropeanStreetRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(
            global_regex_flags=CASE_SENSITIVE, supported_entity="STREET_ADDRESS", name="EuropeanStreetRecognizer",
            context=["address", "lives", "live", "street", "adresse", "indirizzo", "adres", "osoite", "heimilisfang"],
            patterns=[Pattern("type then name", rf"\b{_BEFORE}\s{_NAME},?\s\d{{1,4}}[a-zA-Z]?\b", 0.65),
                      Pattern("name ending in a street word", rf"\b{_ENDING},?\s\d{{1,4}}[a-zA-Z]?\b", 0.65)])
