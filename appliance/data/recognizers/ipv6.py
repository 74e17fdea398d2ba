"""IPv6 addresses in every written form (compressed "::", embedded IPv4, zone), validated by `ipaddress`."""

from __future__ import annotations

import ipaddress
import re

from presidio_analyzer import EntityRecognizer

from appliance.data.recognizers._shared import result


class Ipv6Recognizer(EntityRecognizer):
    _CANDIDATE = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:)[0-9A-Fa-f:.]{2,45}(?:%\w+)?(?![\w:])")

    def __init__(self) -> None:
        super().__init__(supported_entities=["IP_ADDRESS"], name="Ipv6Recognizer", supported_language="en")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        if "IP_ADDRESS" not in entities or "::" not in text and text.count(":") < 7:
            return []
        out = []
        for m in self._CANDIDATE.finditer(text):
            value = m.group(0).rstrip(".").split("%")[0]
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                continue
            out.append(result(self, "IP_ADDRESS", m.start(), m.start() + len(m.group(0).rstrip(".")), 0.8))
        return out
