"""Brazilian addresses: Rua / Avenida / Travessa ..., number, optional complement and district, CEP."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CASE_SENSITIVE, CONTEXT_ONLY

_TYPE = r"(?:Rua|R\.|Avenida|Av\.|Travessa|Tv\.|Alameda|Al\.|Praça|Estrada|Rodovia|Largo)"
_NAME = r"(?:(?:d[aoe]s?|[A-ZÁÉÍÓÚÂÊÔÃÕÇ][\wáéíóúâêôãõç.'-]*)\s?){1,6}"


class BrazilianAddressRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(
            global_regex_flags=CASE_SENSITIVE, supported_entity="STREET_ADDRESS", name="BrazilianAddressRecognizer",
                         context=["endereço", "endereco", "mora", "reside", "cep", "address", "entrega"], patterns=[
            Pattern("street number",
                    rf"\b{_TYPE}\s{_NAME},?\s(?:n[º°o.]\s?)?\d{{1,5}}\b(?:,?\s(?:apto?\.?|ap\.|bloco|casa|sala)\s?\d+\w?)?"
                    r"(?:\s?[-–,]\s?[A-ZÁÉÍÓÚ][\wáéíóúâêôãõç]+(?:\s[\wáéíóúâêôãõç]+){0,3})?"
                    r"(?:,?\s(?:CEP:?\s)?\d{5}-?\d{3})?", 0.7),
            Pattern("cep", r"\b\d{5}-\d{3}\b", CONTEXT_ONLY)])
