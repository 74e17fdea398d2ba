"""A unit on a line of its own ("Suite 907", "Apt. 615", "Postbox 248") is a line of a written address, whatever
the country, and so is a unit followed on its line by the house number of the street after it ("Dr. Verena
Schuur Apt. 961 01836 Democracia 9967"): found here, it grows to the street line around it and the town and
country below (address_blocks)."""

from __future__ import annotations

import re

from appliance.data.recognizers._shared import CodeRecognizer, result

_LINE = re.compile(r"(?:^|(?<=\n))[ \t>}?]*((?:Apt|Apartment|Suite|Ste|Flat|Unit|Postbox|Post Box|Caixa Postal|"
                   r"Apartado|Apto)\.?\s?#?\d{1,5}[A-Z]?)[ \t]*(?=\n|$)")
_BEFORE_STREET = re.compile(
    r"(?<![\w-])((?:Apt|Apartment|Suite|Apto)\.?\s?#?\d{1,5}[A-Z]?)(?=[ \t]+\d{1,6}[ \t]+[^\W\d_])")


class AddressUnitLineRecognizer(CodeRecognizer):
    ENTITY = "STREET_ADDRESS"

    def analyze(self, text, entities, nlp_artifacts=None):
        return [result(self, "STREET_ADDRESS", m.start(1), m.end(1), 0.6)
                for regex in (_LINE, _BEFORE_STREET) for m in regex.finditer(text)]
