"""Street lines known by their numbers, whatever the street's name: a house number, a street name and its number,
then a unit ("7113 Nedre Tverrstredet 238 Apt. 675", "2836 96 Belfast Crescent Suite 408"), or a comma or a line
break and a town ("82742 Zona Estação 75, Rio de Moinhos", "774 Erbenova 1334\nBemmel, GE 65692") when a word of the
street is no English word; a street before "street" ("Pärna 33 street in Rünga"); a French street line
("8 Rue Hedi Labidi", "82 rue Ernest Renan"); and a street named by its type word after "on", "at" or "of" ("shows
on Smit Mills Street"). Found here, a street line grows to the town and country written with it (address_blocks)."""

from __future__ import annotations

import re

from appliance.data.recognizers._shared import CodeRecognizer, result
from appliance.data.recognizers.business_terms import is_business
from appliance.data.recognizers.lexicon import is_english

_WORDS = r"(?:[^\W\d_][\w'’.-]*[ \t]+){1,5}"
_UNIT = r"(?:Apt|Apartment|Suite|Unit)\.?[ \t]*#?\d{1,5}"
_WITH_UNIT = re.compile(rf"(?<![\w.,-])\d{{1,6}}[ \t]+(?:\d{{1,5}}[ \t]+)?{_WORDS}(?:\d{{1,5}}[A-Za-z]?\.?,?[ \t]+)?"
                        rf"{_UNIT}")
# A street line that a town follows, after a comma or on the next line.
_STREET_THEN_TOWN = re.compile(rf"(?<![\w.,-])\d{{1,6}}[ \t]+({_WORDS})\d{{1,5}}[A-Za-z]?\.?"
                               rf"(?=[ \t]*(?:,[ \t]*|\n[ \t]*)[^\W\d_a-z])")
_BEFORE_STREET_WORD = re.compile(r"(?<![\w-])((?:[^\W\d_a-z][\w'’.-]*[ \t]+){1,3}\d{1,5}[A-Za-z]?)(?=[ \t]+street\b)")
_FRENCH = re.compile(r"(?<![\w.,-])\d{1,5}[ \t]+(?:[Rr]ue|[Aa]venue|[Bb]oulevard|[Cc]hemin|[Aa]llée|[Ii]mpasse|[Qq]uai|"
                     r"[Rr]oute)[ \t]+(?:(?:de|du|des|la|le|l['’])[ \t]*)*[A-Z][\w'’-]*(?:[ \t]+[A-Z][\w'’-]*){0,3}")
_TYPE = r"(?:Street|St\.|Road|Rd\.|Avenue|Ave\.|Boulevard|Blvd\.|Lane|Drive|Way|Court|Place|Plaza|Terrace|Crescent)"
_NAMED = re.compile(rf"\b(?:on|at|of)[ \t]+((?:[A-Z][\w'’-]*[ \t]+){{1,3}}{_TYPE})(?![\w])")


def _foreign(words: str) -> bool:
    """A word of them is no English word: a street's name, not a sentence about version 3 of something."""
    return any(not is_english(w) for w in re.findall(r"[^\W\d_]+", words))


class NumberedStreetRecognizer(CodeRecognizer):
    ENTITY = "STREET_ADDRESS"

    def analyze(self, text, entities, nlp_artifacts=None):
        found = [m.span() for regex in (_WITH_UNIT, _FRENCH) for m in regex.finditer(text)]
        found += [m.span() for m in _STREET_THEN_TOWN.finditer(text) if _foreign(m.group(1))]
        found += [m.span(1) for m in _BEFORE_STREET_WORD.finditer(text) if _foreign(m.group(1))]
        found += [m.span(1) for m in _NAMED.finditer(text) if not is_business(m.group(1).rsplit(None, 1)[0])]
        return [result(self, "STREET_ADDRESS", start, end, 0.6) for start, end in sorted(set(found))]
