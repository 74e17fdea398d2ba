"""French and Spanish addresses: "12 rue de la Paix, 75002 Paris", "Calle Mayor 5, 3º B, 28013 Madrid"."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CASE_SENSITIVE

_FR = (r"\b\d{1,4}(?:\s?(?:bis|ter))?,?\s(?:rue|avenue|av\.|boulevard|bd|place|allée|impasse|chemin|quai|route|"
       r"cours)\s(?:(?:d[eu]s?|de la|l'|la|le|[A-ZÉÈ][\wéèêàçô'-]*)\s?){1,6}(?:,?\s\d{5}\s[A-ZÉ][\wéèêàç-]+)?")
_ES = (r"\b(?:Calle|C/|Avenida|Avda\.|Av\.|Paseo|Plaza|Pza\.|Camino|Carrera|Ronda)\s(?:(?:de(?:l| la| los)?|"
       r"[A-ZÁÉÍÓÚÑ][\wáéíóúñ'-]*)\s?){1,5},?\s(?:n[º°o.]\s?)?\d{1,4}\b(?:,?\s\d+º\s?[A-Z]?)?"
       r"(?:,?\s\d{5}\s[A-ZÁÉÍÓÚ][\wáéíóúñ-]+)?")


class FrenchSpanishAddressRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(
            global_regex_flags=CASE_SENSITIVE, supported_entity="STREET_ADDRESS", name="FrenchSpanishAddressRecognizer",
                         context=["adresse", "dirección", "direccion", "domicilio", "habite", "vive", "address"],
                         patterns=[Pattern("french street", _FR, 0.7), Pattern("spanish street", _ES, 0.7)])
