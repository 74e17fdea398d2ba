"""A unit on a line of its own ("Suite 907", "Apt. 615", "Postbox 248") is a line of a written address, whatever
the country, and so is a unit followed on its line by the house number of the street after it ("Dr. Verena
Schuur Apt. 961 01836 Democracia 9967"): found here, it grows to the street line around it and the town and
country below (address_blocks)."""

from __future__ import annotations

import re

from appliance.data.recognizers._shared import CodeRecognizer, result

_LINE = re.compile(r"(?:^|(?<=\n))[ \t>}?]*((?:Apt|Apartment|Suite|Ste|Flat|Unit|Postbox|Post Box|Caixa Postal|"
                   r"Apartado|Apto)\.?\s?#?\d{1,5}[A-Z]?)[ \t]*(?=\n|$)")
_UNIT = r"(?:Apt|Apartment|Suite|Apto)\.?\s?#?\d{1,5}[A-Z]?"
_BEFORE_STREET = re.compile(rf"(?<![\w-])({_UNIT})(?=[ \t]+\d{{1,6}}[ \t]+[^\W\d_])")
# The unit with the street line after it: the house number, the street's words and its number ("Suite 020 994
# Csabai kapu 60", "Apt. 082 737 Orrspelsv 7").
_WITH_STREET = re.compile(rf"(?<![\w-])({_UNIT}[ \t]+\d{{1,6}}[ \t]+(?:[^\W\d_][\w'’.-]*[ \t]+){{1,4}}"
                          rf"\d{{1,5}}[A-Za-z]?)(?![\w-])")


class AddressUnitLineRecognizer(CodeRecognizer):
    ENTITY = "STREET_ADDRESS"

    def analyze(self, text, entities, nlp_artifacts=None):
        whole = [m.span(1) for m in _WITH_STREET.finditer(text)]
        units = [m.span(1) for regex in (_LINE, _BEFORE_STREET) for m in regex.finditer(text)]
        return [result(self, "STREET_ADDRESS", start, end, 0.6)
                for start, end in whole + [u for u in units if not any(a <= u[0] < b for a, b in whole)]]
