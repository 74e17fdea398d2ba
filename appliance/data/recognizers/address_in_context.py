"""An address whatever its country's shape, where the sentence says it is one: the words after "my address is",
"lives at", "located at", "send it to", "moved to" (and the same in the policy's other languages), when they
read as an address: a house or postal number and capitalised place words, up to the first lower-case word,
sentence end, organisation's name ("... 66 Anchor Bancorp") or, after the number, the end of the line (the lines
below join in address_blocks: "Suite 917", "LE CREUSOT", "Uruguay").

"Send it to the printer queue" and "lives in London" are not addresses here: the stretch must hold a number and a
word, and start at a number or a capitalised word.
"""

from __future__ import annotations

import re

from appliance.data.recognizers._shared import LETTERS, CodeRecognizer, result
from appliance.data.recognizers.business_terms import ORGANISATION, TERMS
from appliance.data.recognizers.stopwords import NOT_PLACES

_CUE = re.compile(
    r"\b(?:address\s+of\s+[^?!\n]{1,40}?\s+is|address(?:es)?(?:\s+(?:is|was|are|were|to|with|for\s+\w+))?\s*(?:[:=-]|\bis\b)?|"
    r"(?:lives?|lived|living|resides?|resided|residing|stays?|stayed|staying)\s+(?:at|on|in)"
    r"(?:\s+the\s+\w+\s+(?:side|end)\s+of)?|arrived\s+at|enter\s+on|"
    r"(?:located|situated|based|found)\s+at|offices?\s+(?:is|are)\s+at|"
    r"meet\s+(?:me|you|us|him|her|them)\s+at|(?:is|are|was|were)\s+(?:at|on)|(?:the\s+)?corner\s+of|"
    r"(?:send|sent|ship|shipped|deliver|delivered|mail|mailed|post|posted|forward|forwarded|return|returned|taxi|drive|take)"
    r"(?:\s+(?:it|them|this|that|everything|me|us|him|her|the\s+\w+|a\s+new\s+one))?\s+to|"
    r"moved?\s+(?:in\s+)?to|drops?\s+(?:me|you|us|him|her|them)\s+off\s+at|"
    r"endere[çc]o(?:\s+é)?:?|moro\s+(?:na|no|em)|mora\s+(?:na|no|em)|dirección(?:\s+es)?:?|vivo\s+en|vive\s+en|"
    r"adresse(?:\s+est)?\s*:?|j'habite\s+(?:au|à)|wohnt?\s+(?:in\s+der|am|im|an\s+der)|anschrift:?)\s*",
    re.IGNORECASE)
# Lower-case words an address holds: unit and street words, and the particles of street names.
_INNER = frozenset("""
    apt apt. apartment suite ste ste. unit box flat floor fl fl. room rm bldg building no no. nr nr. n° nº
    st st. ave ave. rd rd. blvd blvd. dr dr. ln ln. street road avenue boulevard lane drive way place square
    rue via viale calle carrer rua avenida av av. r r. ul ul. al al. str str. strasse straße gasse weg platz
    rakpart utca út vei vej gata gatan tie katu
    de da do das dos del della di du des la le les los van der den von am an im zu y e et
    apto apto. andar piso bloco bloque bajo esc esc. etage stg stock
""".split())
_TOKEN = re.compile(rf"\d[\w/-]*|{LETTERS}[\w'’.-]*|[,#º°]|\n", re.UNICODE)
_MAX_CHARS = 120


def _stretch(text: str, start: int) -> tuple[int, int] | None:
    """(start, end) of the address-shaped words from `start`, or None when what follows is not an address."""
    end, digits, words, first, after_digit, last_digit_end = start, 0, 0, True, 0, start
    place_end = None  # where the address ended before its last place word: one before "&" opens a name
    for token in _TOKEN.finditer(text, start, min(len(text), start + _MAX_CHARS)):
        gap = text[end:token.start()] if not first else text[start:token.start()]
        if re.search(r"[.?!;:()\[\]\"](?:\s|$)|&", gap) or "\n\n" in gap:
            if "&" in gap and place_end is not None:  # "Poland Oil & Natural Gas Corporation"
                end = place_end
            break
        word = token.group()
        if word == "\n":
            if digits:  # the lines below a street line are the address blocks' to join
                break
            continue
        if word in ",#º°":
            continue
        bare = word.rstrip(".")
        if bare.lower() in ORGANISATION:  # an organisation's name follows the address
            end = last_digit_end
            break
        if bare.lower() in TERMS and bare.lower() not in _INNER:  # "is on Windows 11": a product
            return None
        if word == "and":  # joins two streets ("the corner of Voldi 26 St. and Jimínez Cove St."); the address
            continue       # ends before it when no place word follows
        if word[0].isdigit():
            digits += 1
            after_digit = 0
        elif word.lower() in _INNER:
            pass
        elif word[0].isupper() and bare.lower() not in NOT_PLACES and after_digit < 3:
            words += 1
            after_digit += 1
        else:
            break
        if first and word.lower() in _INNER and not word[0].isupper():
            return None
        first = False
        place_end = end if word[0].isupper() and word.lower() not in _INNER and not first else None
        end = token.start() + len(word.rstrip(".")) if word.endswith(".") and len(word) > 4 else token.end()
        if word[0].isdigit():
            last_digit_end = end
    if not (digits and words):
        return None
    return start, end


class AddressInContextRecognizer(CodeRecognizer):
    ENTITY = "STREET_ADDRESS"

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for cue in _CUE.finditer(text):
            found = _stretch(text, cue.end())
            if found and found[1] > found[0]:
                out.append(result(self, "STREET_ADDRESS", found[0], found[1], 0.7))
        return out
