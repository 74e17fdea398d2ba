"""Names with no cue around them, by the given name: a capitalised word the US Census Bureau lists as a given name
(its 1990 lists: 5,494 names, 5,126 of them not also a function word or particle; public domain, carried by the
`names` package), with the capitalised words after it as the surname ("have you heard Tiana Ellery speak",
"Quinn's"); and the given names of many other countries (appliance/resources/given_names.txt: the Latin-alphabet
given names of Faker's person providers, written by scripts/given_names.py), which count alone unless they are
also English words (`lexicon`): "Why is Sven so impulsive?" and "Ágnes" alone, but "Per" and "Even" only with a
surname ("Per Hansen", not "Per the policy", "Even after a restart").

Given names that are also common words ("Grant", "Rose", "Mark") count only when a surname follows, and never at
a sentence's start ("Will" and "May", function words, never count); a product, team or code name (business_terms)
is not a person.
"""

from __future__ import annotations

import functools
import importlib.resources
import re

from appliance.data.recognizers._shared import POSSESSIVE, WORD, CodeRecognizer, result
from appliance.data.recognizers.business_terms import is_business, owns_a_person
from appliance.data.recognizers.lexicon import english_words
from appliance.data.recognizers.stopwords import NOT_NAMES

# Given names that are English words or start many sentences as one (function words, days and months are never
# given names here: NOT_NAMES takes them out of the lists).
_WORDS = frozenset("""
    bill grant art guy rose hope faith joy ivy page major king chance summer autumn dawn eve mark frank pat sue
    rich don ray max jack carol lane long young white brown black green gray grey love star sky rock sunny early
    moss wood miles price cash penny crystal amber ruby pearl jade destiny precious harmony heaven liberty
    justice honor royal prince princess duke earl baron sterling lyric melody cherry holly iris daisy lily
    violet olive ginger sandy rusty buck chase gay lee ali ai else ever says said christmas easter noel angel
    angels belle bell glen dale hall hill wan tan ha ma mi so go see sea son sun sol win won tom ted sam ben rob
    bob lou dot ed pepper sparkle tiny sweet shy fancy lucky merry ivory ebony onyx
""".split())
# The particles of surnames ("Van", "De", "Le") are given names in the lists too, and open product names.
_PARTICLES = frozenset("van von de del della du di le la mac al el da do dos das queen".split())
_CAPITALISED = re.compile(r"(?<![\w'’-])([A-ZÀ-ÞĀ-Ž][^\W\d_]+)(?![\w-]|['’](?!s\b))")
_NEXT = re.compile(rf"[ \t]+({WORD})")


@functools.cache
def given_names() -> frozenset[str]:
    found = set()
    for name in ("dist.male.first", "dist.female.first"):
        with importlib.resources.files("names").joinpath(name).open() as f:
            found.update(line.split()[0].lower() for line in f if line.strip())
    return frozenset(found - NOT_NAMES - _PARTICLES)


@functools.cache
def world_names() -> frozenset[str]:
    """Given names of other countries, less the US lists, function words, particles and English words."""
    text = importlib.resources.files("appliance").joinpath("resources/given_names.txt").read_text("utf-8")
    found = {line.strip().lower() for line in text.splitlines() if line.strip()}
    return frozenset(found - given_names() - NOT_NAMES - _PARTICLES - _WORDS)


def _sentence_start(text: str, start: int) -> bool:
    before = text[max(0, start - 3):start].rstrip(" \t\"'“(")
    return not before or before[-1] in ".!?:\n"


class GazetteerNameRecognizer(CodeRecognizer):
    ENTITY = "PERSON"

    def __init__(self) -> None:
        super().__init__()
        self._given = given_names()
        self._world = world_names()
        self._english = english_words()

    def analyze(self, text, entities, nlp_artifacts=None):
        out, end = [], 0
        for m in _CAPITALISED.finditer(text):
            if m.start() < end:
                continue
            word = m.group(1)
            lower = word.lower()
            world = lower not in self._given
            if world and lower not in self._world or not word[1:].islower():
                continue
            stop = m.end()
            for _ in range(2):
                nxt = None if text.startswith(POSSESSIVE, stop) else _NEXT.match(text, stop)
                surname = nxt.group(1) if nxt else ""
                if not surname or not surname[0].isupper() or surname.lower() in NOT_NAMES:
                    break
                stop = nxt.end()
                if surname.endswith(POSSESSIVE):
                    break
            has_surname = stop > m.end()
            if owns_a_person(text, stop):
                continue  # an organisation's person ("Owens Corning's Samantha Vaux", "Orlin Research's Mr. Čeh")
            if world and lower in self._english and all(w.lower() in self._english for w in
                                                        text[m.end():stop].split()):
                continue  # English words, all of them ("Press Edit", "Storm Warning")
            if lower in _WORDS and (not has_surname or _sentence_start(text, m.start())):
                continue
            if world and not has_surname and lower in self._english:
                continue
            if is_business(text[m.start():stop]):
                continue
            out.append(result(self, "PERSON", m.start(), stop, 0.6))
            end = stop
        return out
