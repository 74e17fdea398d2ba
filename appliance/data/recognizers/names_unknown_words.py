"""Names no list holds, by what English does not: capitalised words that are no English word (`lexicon`) standing
where a name stands. Two or three of them in a row ("Dmitar Ruedl listed", "Voleta Mailly"), unless a house
number, a unit or a street word is next to them, or they open or close an organisation's name; and one alone in a
place only a name takes: after a reporting verb ("says Cardoso."), as a speaker ("Burhan: What a wife."), called
by name ("Wisław, can I ..."), or doing what only a person does ("Akaho spent a year", "Lebedeva began").

Place names of other languages are no English words either ("São Paulo", "Zafferana Etnea"): one after "in"
is a place, and one on an address's lines is the address's (the address recognizers and `person_spans` decide).
"""

from __future__ import annotations

import functools
import re

from appliance.data.recognizers._shared import WORD, CodeRecognizer, result
from appliance.data.recognizers.business_terms import in_organisation, is_business
from appliance.data.recognizers.lexicon import is_english
from appliance.data.recognizers.stopwords import NOT_NAMES

_WORD = re.compile(rf"(?<![\w'’.-]){WORD}(?![\w'’-])")
# What stands before a street or a place: a house number, a unit, a street word, "in".
_PLACE_BEFORE = re.compile(r"(?i:(?:\d[\w/-]*|apt\.?|suite|unit|box|rue|via|calle|rua|avenida|av\.|r\.|c/|in)"
                           r"[ \t,]*)\Z")
_NUMBER_AFTER = re.compile(r"[ \t,]*\d")
_REPORTED = re.compile(rf"\b(?:says|said|asks|asked|replies|replied|adds|added|writes|wrote)[ \t]+({WORD})(?=[.,;!?])")
_SPEAKER = re.compile(rf"(?:^|(?<=[.!?:\n]))[ \t]*({WORD}):[ \t]+(?=\S)", re.MULTILINE)
# After the word: a comma and a request ("Wisław, can I"), or what only a person does ("Akaho spent a year").
_CALLED = re.compile(r",[ \t]+(?:can|could|would|will|please|thanks|thank|I|we)\b")
_DOES = re.compile(r"[ \t]+(?:began|spent|shouted|listed|joined|retired|resigned|married|replied|smiled|laughed|cried|"
                   r"died|moved|studied|graduated|founded|wrote)\b")
_LAST_WORD = re.compile(rf"(?<![\w'’-])({WORD})\Z")


def _owns(word: str) -> bool:
    return "'" in word or "’" in word


@functools.lru_cache(maxsize=65536)
def _unknown(word: str) -> bool:
    """Capitalised, lower case after its first letter, two letters or more, and no English or function word."""
    if not word[:1].isupper():
        return False  # most words: nothing more to look up
    base = re.split(r"['’]", word)[0]
    return (len(base) >= 2 and base[1:].islower()  # base[0] is word[0], upper case
            and base.lower() not in NOT_NAMES and not is_english(base) and not is_business(base))


class UnknownWordNameRecognizer(CodeRecognizer):
    ENTITY = "PERSON"

    def analyze(self, text, entities, nlp_artifacts=None):
        if "PERSON" not in entities:
            return []
        found = self._runs(text)
        singles = [m.span(1) for regex in (_REPORTED, _SPEAKER) for m in regex.finditer(text) if _unknown(m.group(1))]
        for regex in (_CALLED, _DOES):  # the cue first (a literal), then the word before it
            for m in regex.finditer(text):
                word = _LAST_WORD.search(text, max(0, m.start() - 40), m.start())
                if word and _unknown(word.group(1)):
                    singles.append(word.span(1))
        found += [(a, b) for a, b in singles if not any(x <= a < y for x, y in found)]
        return [result(self, "PERSON", start, end, 0.6) for start, end in sorted(set(found))]

    @staticmethod
    def _runs(text: str) -> list[tuple[int, int]]:
        """Two or three unknown words in a row, apart only by spaces, away from streets and organisations."""
        words = list(_WORD.finditer(text))
        found, i = [], 0
        while i + 1 < len(words):
            first, second = words[i], words[i + 1]
            if (_unknown(first.group()) and not _owns(first.group()) and _spaced(text, first, second)
                    and _unknown(second.group())):
                last = second
                if (i + 2 < len(words) and not _owns(second.group()) and _spaced(text, second, words[i + 2])
                        and _unknown(words[i + 2].group())):
                    last = words[i + 2]
                start, end = first.start(), last.end()
                if (not _PLACE_BEFORE.search(text[max(0, start - 12):start]) and not _NUMBER_AFTER.match(text, end)
                        and not is_business(text[start:end]) and not in_organisation(text, start, end)):
                    found.append((start, end))
                    i += 3 if last is not second else 2
                    continue
            i += 1
        return found


def _spaced(text: str, a: re.Match, b: re.Match) -> bool:
    gap = text[a.end():b.start()]
    return bool(gap) and not gap.strip(" \t")
