"""Names that sit where a layout puts them rather than after a word that introduces them: e-mail headers
("From: Aisha Okafor <a.okafor@...>", "To: Tomasz Nowak; Lena Berg"), a signature under a closing ("Best
regards,\\nJoão Silva"), form fields ("NAME: AHMED MENDES", "Nachname: Müller"), and "Surname, Given" lists
("Okafor, Aisha; Mendes, Ahmed"), and the speakers of a dialogue whose labels are given names ("Felicity: Who
are you?\nJildau: I'm her daughter."; the unknown words' recognizer takes speakers no list holds)."""

from __future__ import annotations

import re

from appliance.data.recognizers._shared import WORD, CodeRecognizer, is_name_word, result
from appliance.data.recognizers.business_terms import is_business
from appliance.data.recognizers.names_gazetteer import given_names, world_names
from appliance.data.recognizers.stopwords import NOT_NAMES

_HEADER = r"(?im:^[ \t>]*(?:from|to|cc|bcc|reply-to|sender|von|an|de|para|à|a|envoyé par|enviado por)[ \t]*:[ \t]*)"
_CLOSING = (r"(?i:(?:(?:best|kind|warm|many|with)\s+)?(?:regards|wishes|thanks)|best|thank you|cheers|sincerely|"
            r"yours|atenciosamente|abraços|obrigado|obrigada|saludos|un saludo|atentamente|gracias|cordialement|"
            r"bien à vous|merci|mit freundlichen grüßen|viele grüße|beste grüße|grüße|danke|--)")
_FIELD = (r"(?i:name|full name|first name|last name|surname|given name|family name|employee name|patient name|"
          r"customer name|contact|requester|requested by|reported by|assignee|owner|nome|nome completo|sobrenome|"
          r"nombre|apellidos?|nom|prénom|nom de famille|vorname|nachname|familienname)")
_PERSON = rf"((?:{WORD})(?: (?:{WORD})){{0,3}})"
# A line opening with one word and a colon: a turn of a dialogue when two or more lines do.
_TURN = re.compile(rf"(?m)^[ \t]*({WORD})[ \t]*:(?=[ \t]*\S)")


class LayoutNameRecognizer(CodeRecognizer):
    ENTITY = "PERSON"

    def __init__(self) -> None:
        super().__init__()
        # Header lines: every comma- or semicolon-separated display name on the line.
        self._header = re.compile(rf"{_HEADER}([^\n]+)")
        self._signature = re.compile(
            rf"(?:^|\n)[ \t]*{_CLOSING}[ \t]*[,!.]?[ \t]*\n[ \t]*{_PERSON}[ \t]*(?=\n|$|[,|(])")
        self._field = re.compile(rf"(?m:^|[;|]|\s{{2,}})[ \t]*{_FIELD}[ \t]*[:=][ \t]*{_PERSON}")
        # A line holding only two or three name words (a signature or card without its closing).
        self._name_line = re.compile(rf"(?m:^)[ \t]*({WORD}(?: {WORD}){{1,2}})[ \t]*(?=\n|$)")
        self._inverted = re.compile(
            rf"(?<![\w,])({WORD}),[ \t]+({WORD})(?:[ \t]+({WORD}))?(?=[ \t]*(?:;|\n|$|\(|\)|/))")


    @staticmethod
    def _words(text: str, start: int, end: int, need_two: bool) -> tuple[int, int] | None:
        """The span of the leading name words in text[start:end], or None when they do not look like a name."""
        words = [m for m in re.finditer(WORD, text[start:end])]
        taken = []
        for w in words:
            if w.group(0).lower() in NOT_NAMES or not is_name_word(w.group(0)):
                break
            taken.append(w)
        if not taken or (need_two and len(taken) < 2):
            return None
        return start + taken[0].start(), start + taken[-1].end()

    def analyze(self, text, entities, nlp_artifacts=None):
        if "PERSON" not in entities:
            return []
        spans = []
        for m in self._header.finditer(text):
            offset = m.start(1)
            for part in re.finditer(r"[^,;]+", m.group(1)):
                piece = part.group(0)
                display = piece.split("<")[0] if "<" in piece else ("" if "@" in piece else piece)
                found = self._words(text, offset + part.start(), offset + part.start() + len(display), False)
                if found:
                    spans.append(found)
        for m in self._signature.finditer(text):
            found = self._words(text, m.start(1), m.end(1), False)
            if found:
                spans.append(found)
        for m in self._field.finditer(text):
            value = m.group(1)
            found = self._words(text, m.start(1), m.end(1), False) if not value.islower() else (m.start(1), m.end(1))
            if found:
                spans.append(found)
        if "\n" in text:
            for m in self._name_line.finditer(text):
                found = self._words(text, m.start(1), m.end(1), True)
                if found and found[1] == m.end(1):
                    spans.append(found)
        # "Surname, Given" only as a list: two or more of them, or one after a label ("Affected: Okafor, Aisha").
        inverted = [m for m in self._inverted.finditer(text)
                    if all(is_name_word(w) and w.lower() not in NOT_NAMES for w in m.groups() if w)]
        for m in inverted:
            line_start = text.rfind("\n", 0, m.start()) + 1
            if len(inverted) >= 2 or ":" in text[line_start:m.start()]:
                spans.append((m.start(1), m.end(3) if m.group(3) else m.end(2)))
        spans += self._speakers(text)
        return [result(self, "PERSON", s, e, 0.6) for s, e in spans]

    @staticmethod
    def _speakers(text: str) -> list[tuple[int, int]]:
        """The turns' labels that are given names, when the text is a dialogue (two turns or more): "Bot:",
        "Subject:" or "Status:" are no given names."""
        turns = list(_TURN.finditer(text)) if text.count(":") >= 2 and "\n" in text else []
        if len(turns) < 2:
            return []
        given, world = given_names(), world_names()
        return [m.span(1) for m in turns
                if is_name_word(m.group(1)) and m.group(1)[1:].islower() and m.group(1).lower() not in NOT_NAMES
                and (m.group(1).lower() in given or m.group(1).lower() in world) and not is_business(m.group(1))]
