"""English words, to tell a capitalised name from a capitalised word: Webster's Second New International Dictionary's
lower-case entries (public domain; appliance/resources/english_words.txt.gz, written by scripts/english_word_list.py),
read with their regular inflections ("Heights", "Estates", "Markets" are words; "Sven", "Ruedl" are not)."""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import re

# Endings of inflected forms and what they replace: the dictionary lists "height", not "heights".
_INFLECTIONS = (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"),
                ("ers", ""), ("er", ""), ("ly", ""))


@functools.cache
def english_words() -> frozenset[str]:
    """Common English words, lower case (proper nouns, capitalised in the dictionary, are left out)."""
    data = importlib.resources.files("appliance").joinpath("resources/english_words.txt.gz").read_bytes()
    return frozenset(gzip.decompress(data).decode("utf-8").split())


@functools.lru_cache(maxsize=65536)
def is_english(word: str) -> bool:
    """True when `word` (any case; a possessive "'s" aside) is an English word or a regular inflection of one."""
    lower = re.split(r"['’]", word)[0].lower()
    words = english_words()
    if lower in words:
        return True
    return any(lower.endswith(end) and len(lower) > len(end) + 2 and lower[:-len(end)] + stem in words
               for end, stem in _INFLECTIONS)
