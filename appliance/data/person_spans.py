"""Which PERSON findings stand, whatever recognizer made them: a name ends at its line's end ("Stepan Anisimov"
above "DB ETC/PHYSICAL ..."), and holds no number, link or address unit word ("https://example.es/ Liisa
Lepistö", "Scura 127 Leigha Mackay", "Tiina Käyhkö Suite" are cut to the name); a name-shaped piece of an
address, e-mail or IP address is that entity, not a person; a product, code, host or organisation name is
business content and stays. A name found once is a name wherever it recurs in the text ("Maite Lemmens's
Cautionary Tales ... early Lemmens?"), and so is a single name-shaped word joined to one by "and" or a list comma
("Caird and Jones", "founders: Møller, Price and Dixon"). The line that opens a postal address block names its
addressee: it is cut from the address and found as a person; an address that runs on into the name after it ends
before the name. What owns a person by name is an organisation ("Xcential's Tricia Geisler")."""

from __future__ import annotations

import re

from presidio_analyzer import RecognizerResult

from appliance.data.recognizers._shared import POSSESSIVE, WORD, is_name_word
from appliance.data.recognizers.business_terms import CODE, in_organisation, is_business, owns_a_person
from appliance.data.recognizers.stopwords import NOT_NAMES, TITLES

_UNIT_WORDS = frozenset("suite apt apt. unit box floor".split())


def _one_line(text: str, result) -> None:
    """Cut a finding that runs over a line break to its first line holding a letter."""
    lines, pos = [], result.start
    for part in text[result.start:result.end].split("\n"):
        lines.append((pos, pos + len(part)))
        pos += len(part) + 1
    for start, end in lines:
        piece = text[start:end]
        if any(c.isalpha() for c in piece):
            result.start, result.end = start + len(piece) - len(piece.lstrip()), start + len(piece.rstrip())
            return


def _without_codes(text: str, result) -> bool:
    """Cut a finding to its longest run of words holding no digit, link or unit word; False when none is left."""
    words = [(m.start() + result.start, m.end() + result.start)
             for m in re.finditer(r"\S+", text[result.start:result.end])]
    runs, run = [], []
    for start, end in words:
        if CODE.search(text[start:end]) or text[start:end].lower() in _UNIT_WORDS:
            runs.append(run)
            run = []
        else:
            run.append((start, end))
    runs.append(run)
    best = max(runs, key=len)
    if not best:
        return False
    result.start, result.end = best[0][0], best[-1][1]
    return True


_INITIAL = re.compile(r"[^\W\d_]\.?")


def _addressee_line(line: str) -> bool:
    """A line that names a person, as the first line of a postal address block does: two to four words, the
    first and last name-shaped, the others name-shaped or initials, and either a known given name first or an
    initial in the middle ("Roksana Sokołowska", "Lom-Ali T Korgay"); never a street, place or business line."""
    from appliance.data.recognizers.names_gazetteer import given_names, world_names

    words = line.split()
    if not 2 <= len(words) <= 4 or any(c.isdigit() for c in line) or is_business(line):
        return False
    shapes = ["name" if is_name_word(w) and w.lower() not in NOT_NAMES else
              "initial" if _INITIAL.fullmatch(w) and w[0].isupper() else "other" for w in words]
    if "other" in shapes or shapes[0] != "name" or shapes[-1] != "name":
        return False
    first = words[0].lower()
    return "initial" in shapes or first in given_names() or first in world_names()


def _addressees(text: str, results: list) -> list:
    """An address finding that opens with its addressee's line ("Billing address: Roksana Sokołowska\n 37563 Via
    Miguel de Cervantes 131 ...") is cut to the lines after it, and the line becomes a PERSON finding."""
    added = []
    for r in results:
        if r.entity_type != "STREET_ADDRESS":
            continue
        first, sep, rest = text[r.start:r.end].partition("\n")
        if not sep or not rest.strip() or not _addressee_line(first.strip()):
            continue
        name_start = r.start + len(first) - len(first.lstrip())
        name_end = name_start + len(first.strip())
        r.start += len(first) + 1 + len(rest) - len(rest.lstrip())
        if not any(o.entity_type == "PERSON" and o.start < name_end and name_start < o.end for o in results):
            added.append(_echo(name_start, name_end, "AddresseeLine"))
    return results + added


# A house number after a one-word finding: a street ("Jiráskova 986."), not a person; not a phone number's first
# digits ("Aisha 555 0199") nor a count ("Sven 2 days").
_HOUSE_NUMBER = re.compile(r"[ \t]+\d{1,5}[a-zA-Z]?(?=[.,;:!?)\n]|\Z)")


def settle(text: str, results: list) -> list:
    """The findings of one text with the PERSON ones that are not people taken out."""
    results = _addressees(text, results)
    people = []
    for r in results:
        if r.entity_type == "PERSON":
            if "\n" in text[r.start:r.end]:
                _one_line(text, r)
            _trim(text, r)
            if (not _without_codes(text, r) or _titles_only(text[r.start:r.end])
                    or is_business(text[r.start:r.end]) or in_organisation(text, r.start, r.end)
                    or owns_a_person(text, r.end)
                    or " " not in text[r.start:r.end] and _HOUSE_NUMBER.match(text, r.end)):
                continue
            people.append(r)
    structured = [r for r in results if r.entity_type != "PERSON"]
    _cut_trailing_people(text, structured, people)
    return structured + [r for r in people if not any(r.start < o.end and o.start < r.end for o in structured)]


def _cut_trailing_people(text: str, structured: list, people: list) -> None:
    """An address finding that runs on into the name after it ("... 97 Kauan Ribeiro listed his top 20", "...,
    Norway Shintarou Hamaguchi of Kudan Inc.") ends before the name: the name is the person's, found as one."""
    for r in structured:
        if r.entity_type != "STREET_ADDRESS":
            continue
        for p in people:
            before = text[r.start:p.start]
            if (r.start < p.start < r.end <= p.end and before[-1:].isspace() and any(c.isdigit() for c in before)
                    and "\n" not in text[p.start:r.end]
                    and not any(o is not r and o.start < p.end and p.start < o.end for o in structured)):
                r.end = r.start + len(before.rstrip(" \t,"))


_LEADING_WORD = re.compile(r"([a-z]+)[ \t]+")


def _trim(text: str, result) -> None:
    """Cut a possessive ("Maite Lemmens's": the name, the same pseudonym as where it stands alone, and what
    it owns can be read) and lower-case function words before the name ("and Xcential'" from spaCy)."""
    if text[result.end - 1:result.end] in "'’" and text[result.end:result.end + 1] == "s":
        result.end -= 1
    if text[result.start:result.end].endswith(POSSESSIVE) and result.end - result.start > 4:
        result.end -= 2
    while (m := _LEADING_WORD.match(text, result.start, result.end)) and m.group(1) in NOT_NAMES:
        result.start = m.end()


def _titles_only(name: str) -> bool:
    """A finding of titles alone ("Mme" where the name beside it is already replaced)."""
    return all(word.strip(".").lower() in TITLES for word in name.split())


_WORD = re.compile(rf"(?<![\w'’-]){WORD}")
_JOIN = r"(?:,[ \t]*and[ \t]+|,[ \t]*|[ \t]+and[ \t]+)"
_JOINED_AFTER = re.compile(rf"({_JOIN})({WORD})\b(?![ \t]*[A-Z\d])")
_JOINED_BEFORE = re.compile(rf"(?<![\w'’-])({WORD}){_JOIN}\Z")
_LIST_GOES_ON = re.compile(_JOIN)


def _single_name(word: str) -> bool:
    """A word that can be a name alone: capitalised, three letters or more, no function word before an
    apostrophe ("I'm", "What's"), no business word."""
    return (is_name_word(word) and len(word) >= 3 and not is_business(word)
            and not any(part.lower() in NOT_NAMES for part in re.split(r"['’]", word)))


def _joined(text: str, people: list) -> list[tuple[int, int]]:
    """Single name-shaped words joined to a one-word name by "and" or a list comma, walking the list both
    ways; a list of one-word items only (two-word items are other things: "Caird and Jones", not "Smith and
    Wesson Holdings"), and a word after a comma only where the list goes on after it ("Hi Keiran, I'm" is no
    list)."""
    spans = []
    for r in people:
        if " " in text[r.start:r.end].strip() or re.match(r"[ \t]+\d", text[r.end:]):
            continue  # two words, or a street before its number ("Jiráskova 986")
        pos = r.end
        while (m := _JOINED_AFTER.match(text, pos)) and _single_name(m.group(2)):
            if ("and" not in m.group(1) and not _LIST_GOES_ON.match(text, m.end(2))
                    or owns_a_person(text, m.end(2))):  # "..., and Xcential's Tricia Geisler"
                break
            spans.append(m.span(2))
            pos = m.end(2)
        pos = r.start
        while (m := _JOINED_BEFORE.search(text[max(0, pos - 60):pos])) and _single_name(m.group(1)):
            base = max(0, pos - 60)
            spans.append((base + m.start(1), base + m.end(1)))
            pos = base + m.start(1)
    return spans


def _echo(start: int, end: int, recognizer: str = "NameEcho") -> RecognizerResult:
    return RecognizerResult("PERSON", start, end, 0.85, recognition_metadata={
        RecognizerResult.RECOGNIZER_NAME_KEY: recognizer, RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer})


def _bare(word: str) -> str:
    return word[:-2] if word.endswith(POSSESSIVE) else word


def echoes(text: str, results: list) -> list:
    """`results` with the other places the words of its names (three letters or more, name-shaped) and the
    words joined to one-word names stand in the text added as PERSON findings (recognizer "NameEcho")."""
    people = [r for r in results if r.entity_type == "PERSON"]
    if not people:
        return results
    words = {_bare(w) for r in people for w in _WORD.findall(text, r.start, r.end) if _single_name(_bare(w))}
    spans = []
    for m in _WORD.finditer(text):
        bare = _bare(m.group())  # "Lemmens's Cautionary Tales"
        if bare in words:
            spans.append((m.start(), m.start() + len(bare)))
    spans += _joined(text, people)
    taken = [(r.start, r.end) for r in results]
    added = []
    for start, end in sorted(set(spans)):
        if not any(start < b and a < end for a, b in taken) and not in_organisation(text, start, end):
            added.append(_echo(start, end))
            taken.append((start, end))
    return results + added
