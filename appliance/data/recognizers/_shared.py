"""What several recognizers share: score levels, word shapes, and a result constructor."""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, RecognizerResult

# Below a 0.5 threshold alone; Presidio's context enhancer adds 0.35 when a context word is near.
CONTEXT_ONLY = 0.2

# Presidio compiles patterns case-insensitively by default; shapes whose case carries meaning opt out.
CASE_SENSITIVE = re.DOTALL | re.MULTILINE

# Month names in the languages the policy can name, for dates written out.
MONTHS = (r"(?:Jan(?:uary|vier|eiro|uar)?|Feb(?:ruary|ruar)?|févr(?:ier)?|fevereiro|enero|febrero|"
          r"Mar(?:ch|s|ço|zo)?|März|Apr(?:il)?|avril|abril|May|Mai|maio|mayo|June?|juin|junho|junio|Juni|"
          r"July?|juillet|julho|julio|Juli|Aug(?:ust)?|août|agosto|Sep(?:t(?:ember)?)?|septembre|setembro|"
          r"septiembre|Oct(?:ober)?|octobre|outubro|octubre|Okt(?:ober)?|Nov(?:ember)?|novembre|novembro|"
          r"noviembre|Dec(?:ember)?|décembre|dezembro|diciembre|Dez(?:ember)?)")

# A word of letters in any script (no digits or underscores), and the cased shapes names take.
LETTERS = r"[^\W\d_]"
WORD = rf"{LETTERS}(?:{LETTERS}|['’-](?={LETTERS}))*"
# A possessive's ending, in both apostrophes ("Ana's", "Ana’s"): for str.startswith / str.endswith.
POSSESSIVE = ("'s", "’s")


def is_name_word(word: str) -> bool:
    """Capitalised ("Núñez", "O'Brien", "McDonald") or all upper case ("OKAFOR"), at least two letters."""
    return len(word) >= 2 and word[0].isupper()


def result(recognizer, entity: str, start: int, end: int, score: float) -> RecognizerResult:
    return RecognizerResult(entity, start, end, score, analysis_explanation=None,
                            recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,
                                                  RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id})


class CodeRecognizer(EntityRecognizer):
    """A recognizer written as code rather than a pattern table: one entity (`ENTITY`), named by its class,
    nothing to load."""

    ENTITY: str

    def __init__(self) -> None:
        super().__init__(supported_entities=[self.ENTITY], name=type(self).__name__, supported_language="en")

    def load(self) -> None:
        pass
