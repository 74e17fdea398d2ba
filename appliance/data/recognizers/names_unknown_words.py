"""Names no list holds, by what English does not: capitalised words that are no English word (`lexicon`) standing
where a name stands. Two or three of them in a row ("Dmitar Ruedl listed", "Voleta Mailly"), unless a house
number, a unit or a street word is next to them, or they open or close an organisation's name; and one alone in a
place only a name takes: after a reporting verb ("says Cardoso."), as a speaker ("Burhan: What a wife."), called
by name ("Wisław, can I ..."), or doing what only a person does ("Akaho spent a year", "Lebedeva began").

Place names of other languages are no English words either ("São Paulo", "Zafferana Etnea"): one after "in"
is a place, and one on an address's lines is the address's (the address recognizers and `person_spans` decide).
"""

from __future__ import annotations

import re

from appliance.data.recognizers._shared import WORD, CodeRecognizer, result
from appliance.data.recognizers.business_terms import in_organisation, is_business
from appliance.data.recognizers.lexicon import is_english
from appliance.data.recognizers.stopwords import NOT_NAMES

_RUN = re.compile(rf"(?<![\w'’.-])({WORD})[ \t]+({WORD})(?:[ \t]+({WORD}))?(?![\w'’-])")
# What stands before a street or a place: a house number, a unit, a street word, "in".
_PLACE_BEFORE = re.compile(r"(?i:(?:\d[\w/-]*|apt\.?|suite|unit|box|rue|via|calle|rua|avenida|av\.|r\.|c/|in)"
                           r"[ \t,]*)\Z")
_NUMBER_AFTER = re.compile(r"[ \t,]*\d")
_REPORTED = re.compile(rf"\b(?:says|said|asks|asked|replies|replied|adds|added|writes|wrote)[ \t]+({WORD})(?=[.,;!?])")
_SPEAKER = re.compile(rf"(?:^|(?<=[.!?:\n])[ \t]*)[ \t]*({WORD}):[ \t]+(?=\S)", re.MULTILINE)
_CALLED = re.compile(rf"(?<![\w'’-])({WORD}),[ \t]+(?=(?:can|could|would|will|please|thanks|thank|I|we)\b)")
_DOES = re.compile(rf"(?<![\w'’-])({WORD})[ \t]+(?=(?:began|spent|shouted|listed|joined|retired|resigned|married|"
                   rf"replied|smiled|laughed|cried|died|moved|studied|graduated|founded|wrote)\b)")


def _owns(word: str) -> bool:
    return "'" in word or "’" in word


def _unknown(word: str) -> bool:
    """Capitalised, lower case after its first letter, two letters or more, and no English or function word."""
    base = re.split(r"['’]", word)[0]
    return (len(base) >= 2 and base[0].isupper() and base[1:].islower()
            and base.lower() not in NOT_NAMES and not is_english(base) and not is_business(base))


class UnknownWordNameRecognizer(CodeRecognizer):
    ENTITY = "PERSON"

    def analyze(self, text, entities, nlp_artifacts=None):
        if "PERSON" not in entities:
            return []
        found: list[tuple[int, int]] = []
        pos = 0
        while (m := _RUN.search(text, pos)) is not None:
            first, second, third = m.groups()
            if _unknown(first) and _unknown(second) and not _owns(first):  # "Trulia's Ty Campbell": an owner
                end = m.end(3) if third and _unknown(third) and not _owns(second) else m.end(2)
                if (not _PLACE_BEFORE.search(text[max(0, m.start() - 12):m.start()])
                        and not _NUMBER_AFTER.match(text, end) and not is_business(text[m.start():end])
                        and not in_organisation(text, m.start(), end)):
                    found.append((m.start(), end))
                    pos = end
                    continue
            pos = m.start(2)
        for regex in (_REPORTED, _SPEAKER, _CALLED, _DOES):
            for m in regex.finditer(text):
                start, end = m.span(1)
                if _unknown(m.group(1)) and not any(a <= start < b for a, b in found):
                    found.append((start, end))
        return [result(self, "PERSON", start, end, 0.6) for start, end in sorted(found)]
