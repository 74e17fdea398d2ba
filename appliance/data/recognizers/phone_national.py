"""Phone numbers in national formats, validated by libphonenumber (through Presidio's PhoneRecognizer)."""

from __future__ import annotations

import re

import phonenumbers
from presidio_analyzer import RecognizerResult
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

REGIONS = ("US", "GB", "CA", "IN", "DE", "FR", "ES", "BR", "PT", "IE", "AU")


class NationalPhoneRecognizer(PhoneRecognizer):
    """Run only where a run of seven or more digits stands, on that run and the few characters around it on
    its line: libphonenumber is the costliest recognizer, and over a whole text it parses every house number,
    year and card number in every region. A run of more than fifteen digits and nothing else (a card or account
    number: no phone number is that long) is not looked at, nor is a run inside business content the policy keeps
    (`keep`: its ticket and change numbers), since whatever was found there would be dropped; and a piece of text
    seen before is answered from memory, so a text analysed again with a name replaced costs nothing here."""

    _CANDIDATE = re.compile(r"\d(?:[\s().-]*\d){6,}")
    _BEFORE, _AFTER = 3, 12  # a "+" or "(" before; an extension ("x123", "ext. 45") after
    _REMEMBERED = 20_000

    def __init__(self, keep: tuple[re.Pattern, ...] = ()) -> None:
        super().__init__(supported_regions=REGIONS, name="NationalPhoneRecognizer",
                         context=["phone", "call", "tel", "mobile", "cell", "fax", "telefone", "telefon", "teléfono",
                                  "téléphone", "celular", "handy", "móvil", "portable", "ligar", "llamar"])
        self.keep = keep
        self._seen: dict[str, list[tuple[int, int, float, str]]] = {}

    def _segments(self, text: str) -> list[tuple[int, int]]:
        kept = [m.span() for k in self.keep for m in k.finditer(text)]
        segments: list[tuple[int, int]] = []
        for m in self._CANDIDATE.finditer(text):
            if any(a <= m.start() and m.end() <= b for a, b in kept):
                continue
            if len(m.group()) > 15 and m.group().isdigit():
                continue  # longer than any phone number (E.164: 15 digits) and nowhere to split: a card, an account
            line_start = text.rfind("\n", 0, m.start()) + 1
            line_end = text.find("\n", m.end())
            start = max(line_start, m.start() - self._BEFORE)
            end = min(len(text) if line_end < 0 else line_end, m.end() + self._AFTER)
            if segments and start <= segments[-1][1]:
                segments[-1] = (segments[-1][0], end)
            else:
                segments.append((start, end))
        return segments

    def _read(self, piece: str) -> list[tuple[int, int, float, str]]:
        """libphonenumber's matches in each region in turn, until every run of digits is inside one: a run read
        as a valid number of one region is not read again as another's."""
        runs = [m.span() for m in self._CANDIDATE.finditer(piece)]
        found: list[tuple[int, int, float, str]] = []
        for region in self.supported_regions:
            for match in phonenumbers.PhoneNumberMatcher(piece, region, leniency=self.leniency):
                if not any(s == match.start and e == match.end for s, e, _, _ in found):
                    found.append((match.start, match.end, self.SCORE,
                                  f"Recognized as {region} region phone number, using PhoneRecognizer"))
            if all(any(s <= a and b <= e for s, e, _, _ in found) for a, b in runs):
                break
        return found

    def _found_in(self, piece: str) -> list[tuple[int, int, float, str]]:
        found = self._seen.get(piece)
        if found is None:
            found = self._read(piece)
            if len(self._seen) >= self._REMEMBERED:
                self._seen.clear()
            self._seen[piece] = found
        return found

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        results = []
        for start, end in self._segments(text):
            for first, last, score, why in self._found_in(text[start:end]):
                explanation = self._get_analysis_explanation("")
                explanation.textual_explanation = why
                results.append(RecognizerResult(
                    self.supported_entities[0], first + start, last + start, score, analysis_explanation=explanation,
                    recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                          RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
        return results
