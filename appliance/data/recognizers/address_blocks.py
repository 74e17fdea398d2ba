"""A found street line grows to the written address around it: the house number before it ("76619 Syrengården
68"), and after it the unit, post code, town and country, on the same line or on the lines below ("Suite 917",
"LE CREUSOT", "Uruguay 11147", "Springfield, IL 62704").

The scrubber applies this to every STREET_ADDRESS result, whichever recognizer found it: the pieces of an
address beside a street line identify a person together with it, even where no recognizer knows their shape.
A following line joins only when all of it reads as a piece of an address, so a phone number or a greeting on
the next line stays what it is; the line above joins a block that starts a line when it is a street line (a
name and a number, nothing else: "Markt 85" above "Apt. 615").
"""

from __future__ import annotations

import re

from presidio_analyzer import RecognizerResult

from appliance.data.recognizers.business_terms import ORGANISATION
from appliance.data.recognizers.stopwords import COUNTRIES, NOT_PLACES

_UP = r"A-ZÀ-ÞĀ-ŽΑ-ΩА-Я"
_UNIT = (r"(?:Apt|Apartment|Suite|Ste|Unit|Box|Postbox|Flat|Floor|Fl|Room|Rm|Bldg|Building|Apto|Andar|Piso|Bloco|Etage|"
         r"PSC|CMR|DPO|APO|FPO)\b\.?\s?#?\s*(?:\d[\w-]{0,7}|[A-Z]\d*)\b")
_POSTCODE = (r"(?:[A-Z]{1,2}-?)?\d{4,6}(?:-\d{3,4})?|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}")
# A place's name: capitalised words, with the small words places' names hold ("Ždár nad Sázavou", "Klobouky u
# Brna", "Šmartno ob Paki", "Villanueva del Pardillo").
_PLACE = (rf"[{_UP}][\w'’.-]*(?:[ -](?:[{_UP}(][\w'’.()-]*|de|do|da|del|di|la|le|les|sur|sous|am|an|im|bei|u|nad|pod|"
          rf"ob|pri|van|der|den|op|aan|en)){{0,3}}")
_STATE = r"[A-Z]{2}"
_PIECE = re.compile(
    rf"(?:{_UNIT}(?:[ \t]+(?:{_POSTCODE}))?|(?:{_STATE}[ \t]+)?(?:{_POSTCODE})(?:[ \t]+{_PLACE})?|"
    rf"{_PLACE}(?:,?[ \t]+(?:{_STATE}[ \t]+)?(?:{_POSTCODE}))?|{_STATE})")
# What may sit between a street line and the next piece: a comma, spaces, a line break (with the quote marks of
# a forwarded message).
_QUOTE = r"[ \t>}?]*"
_JOIN = re.compile(rf"[ \t]*,[ \t]*\n?{_QUOTE}|[ \t]*\n{_QUOTE}(?:\n{_QUOTE})?|[ \t]+")
_NUMBER_BEFORE = re.compile(r"(?:^|(?<=\s))\d{1,6}[A-Za-z]?[ \t]+$")
# A street line above a block that starts a line: a name and a number in either order, nothing else on it.
_STREET_LINE_ABOVE = re.compile(
    rf"(?:^|\n){_QUOTE}((?:\d{{1,6}}[A-Za-z]?[ \t]+)?(?:[{_UP}][\w'’.-]*[ \t]+)(?:[^\W\d_][\w'’.-]*[ \t]+){{0,3}}"
    rf"\d{{1,5}}[A-Za-z]?\.?|\d{{1,6}}[A-Za-z]?[ \t]+(?:[{_UP}][\w'’.-]*[ \t]*){{1,4}})[ \t]*\n{_QUOTE}$")
_MAX_PIECES = 6


def _place_words_ok(piece: str) -> bool:
    """A piece made of words reads as a place: no word that opens a sentence or a field ("Please", "Name")."""
    for word in re.findall(r"[^\W\d_]+", piece):
        lower = word.lower()
        if lower in NOT_PLACES or lower in ORGANISATION:
            return False
    return True


def _next_piece(text: str, end: int) -> int | None:
    """Where the address ends if the piece after `end` joins it; None when nothing joins."""
    join = _JOIN.match(text, end)
    if not join:
        return None
    piece = _PIECE.match(text, join.end())
    if not piece or piece.end() == piece.start():
        return None
    value = piece.group()
    after = text[piece.end():piece.end() + 2]
    newline = "\n" in join.group()
    if join.group().count("\n") > 1 and value.split()[0].lower() not in COUNTRIES:
        return None  # past a blank line only the country goes on
    if newline or "," in join.group():
        # A piece on a line (or after a comma) of its own: it must end there (a line, a comma, a full stop), or
        # end in a post code or a country where the next sentence follows without a stop.
        ended = re.match(r"[ \t]*(?:[\n,.;?!)]|$)", after)
        last = value.split()[-1].lower()
        glued = re.match(r"[ \t]+[A-Z\"'“]", after) and (last[-1].isdigit() or last in COUNTRIES)
        if not (ended or glued):
            return None
    else:
        # Beside the street line on the same line only a unit, a post code, a country or an upper-case town joins.
        first = value.split()[0].rstrip(",.")
        if not (re.fullmatch(_UNIT, value) or re.match(_POSTCODE, first) or first.lower() in COUNTRIES
                or (first.isupper() and len(first) >= 3)):
            return None
    if not _place_words_ok(value):
        return None
    return piece.end()


def extend(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """The results, each STREET_ADDRESS grown to the address block around it and overlapping ones merged."""
    addresses = sorted((r for r in results if r.entity_type == "STREET_ADDRESS"), key=lambda r: r.start)
    if not addresses:
        return results
    for found in addresses:
        before = _NUMBER_BEFORE.search(text, max(0, found.start - 12), found.start)
        if before:
            found.start = before.start()
        above = _STREET_LINE_ABOVE.search(text, max(0, found.start - 80), found.start)
        if above and _place_words_ok(above.group(1)):
            found.start = above.start(1)
        for _ in range(_MAX_PIECES):
            grown = _next_piece(text, found.end)
            if grown is None:
                break
            found.end = grown
    merged: list[RecognizerResult] = []
    for found in addresses:
        if merged and found.start <= merged[-1].end:
            merged[-1].end = max(merged[-1].end, found.end)
            merged[-1].score = max(merged[-1].score, found.score)
        else:
            merged.append(found)
    return [r for r in results if r.entity_type != "STREET_ADDRESS"] + merged
