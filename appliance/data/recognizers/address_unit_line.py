"""A unit on a line of its own ("Suite 907", "Apt. 615", "Postbox 248") is a line of a written address, whatever
the country: found here, it grows to the street line above and the town and country below (address_blocks)."""

from __future__ import annotations

import re

from appliance.data.recognizers._shared import CodeRecognizer, result

_LINE = re.compile(r"(?:^|(?<=\n))[ \t>}?]*((?:Apt|Apartment|Suite|Ste|Flat|Unit|Postbox|Post Box|Caixa Postal|"
                   r"Apartado|Apto)\.?\s?#?\d{1,5}[A-Z]?)[ \t]*(?=\n|$)")


class AddressUnitLineRecognizer(CodeRecognizer):
    ENTITY = "STREET_ADDRESS"

    def analyze(self, text, entities, nlp_artifacts=None):
        return [result(self, "STREET_ADDRESS", m.start(1), m.end(1), 0.6) for m in _LINE.finditer(text)]
