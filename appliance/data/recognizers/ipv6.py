"""IPv6 addresses in every written form (compressed "::", embedded IPv4, zone), validated by `ipaddress`."""

from __future__ import annotations

import ipaddress
import re

from appliance.data.recognizers._shared import CodeRecognizer, result


class Ipv6Recognizer(CodeRecognizer):
    ENTITY = "IP_ADDRESS"
    _CANDIDATE = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:)[0-9A-Fa-f:.]{2,45}(?:%\w+)?(?![\w:])")

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
