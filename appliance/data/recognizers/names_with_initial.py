"""Names written with a middle initial: a given name, one capital letter (with or without a full stop) and a
surname ("Ulrich S Bieber", "Władysława J. Kozłowska", "Hysni Š Njivar"), a shape few other things take. Both
words name-shaped, neither a function word nor a business word; not after the words that take a letter
("Class A Shares", "Vitamin D Levels", "Plan B Options"), and not "I" as the letter ("Can I Ask"); in upper
case, words of three letters or more with a vowel ("MAMORU T NISHIOKA", not "SRS A PRF")."""

from __future__ import annotations

import re

from appliance.data.recognizers._shared import WORD, CodeRecognizer, is_name_word, result
from appliance.data.recognizers.business_terms import is_business
from appliance.data.recognizers.stopwords import NOT_NAMES

# Words a single letter follows as a label, not as an initial.
_LABELLED = frozenset("""
    class plan type series vitamin hepatitis grade section part phase level tier group building block wing gate
    room floor unit zone area exhibit appendix schedule annex form item model version option route track category
    size channel side row seat terminal platform lane stage step figure table chapter article clause paragraph
    """.split())


class InitialNameRecognizer(CodeRecognizer):
    ENTITY = "PERSON"

    _SHAPE = re.compile(rf"(?<![\w'’.-])({WORD})[ \t]+([^\W\d_])\.?[ \t]+({WORD})(?![\w'’-])")

    @staticmethod
    def _name(word: str) -> bool:
        """Name-shaped; in upper case, three letters or more with a vowel ("NISHIOKA", not "SRS" or "MI")."""
        if word.isupper() and (len(word) < 3 or not re.search(r"[AEIOUYÀ-ÖØ-Ý]", word)):
            return False
        return is_name_word(word) and word.lower() not in NOT_NAMES and not is_business(word)

    def analyze(self, text, entities, nlp_artifacts=None):
        if "PERSON" not in entities:
            return []
        results, pos = [], 0
        while (m := self._SHAPE.search(text, pos)) is not None:
            given, initial, surname = m.groups()
            if (initial.isupper() and initial != "I" and self._name(given) and self._name(surname)
                    and given.lower() not in _LABELLED):
                results.append(result(self, "PERSON", m.start(1), m.end(3), 0.6))
                pos = m.end(3)
            else:
                pos = m.start(2)  # the surname may be the given name of the next
        return results
