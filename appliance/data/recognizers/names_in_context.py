"""Names that spaCy's small model misses, found by the words around them: any case after "my name is",
"named" or the question "what's your name?"; Capitalised or UPPER-CASE after words that introduce a person
("Dear", "Mr.", "I am", "for", "regards", "Sra.", "Herr"); a pair before a verb only a person takes ("renee
lewis lives at"), or before "here" ("AHMED MENDES here."); one or two owning what only a person has
("Hermelando's address", "Yulan's kid"). Letters of every script count (Núñez, Øyelaran, Nguyễn)."""

from __future__ import annotations

import re

from appliance.data.recognizers._shared import WORD, CodeRecognizer, is_name_word, result
from appliance.data.recognizers.stopwords import NOT_NAMES

_STRONG = (r"(?i:my name is|name is|named|name:|i am called|call me|me llamo|mi nombre es|je m'appelle|"
           r"what(?:'s|’s| is) your (?:(?:first|last|full|family|given|middle|maiden) )?name\?|"
           r"je suis|meu nome é|mein name ist|ich bin|ich heiße|je m’appelle)")
# Words that introduce a person: one name word after them is enough.
_INTRO = (r"(?i:i am|i'm|this is|contact|customer|client|caller|patient|colleague|manager|mr|mrs|ms|miss|dr|prof|"
          r"dear|hi|hello|hey|thanks|thank you|regards|signed|cc|assigned to|spoke to|spoke with|attn|attention|"
          r"approved by|requested by|reported by|sr|sra|srta|señor|señora|doña|dona|senhor|senhora|herr|frau|"
          r"mme|mlle|monsieur|madame|hola|olá|bonjour|hallo|liebe|lieber|estimado|estimada|prezado|prezada|"
          r"cher|chère|atenciosamente|saludos|cordialement|grüße|gracias|obrigado|obrigada|merci|danke|"
          r"cliente|paciente|kunde|kundin|patiente|said|told|asked|calls me|named him|named her|speak to|talk to|"
          r"married|son|daughter|husband|wife|mother|father|brother|sister|kid|child|"
          r"was called|is called)")
# Words that precede many things: two name words after them are needed ("for Aisha Okafor", not "for Windows").
_LINK = (r"(?i:by|for|per|user|employee|member|staff|para|von|pour|par|für|por|usuário|usuario|utilisateur|"
         r"benutzer|colaborador|colaboradora|mitarbeiter|mitarbeiterin|"
         r"employé|employée|empleado|empleada)")
_LOWER = r"[^\W\d_A-Z]{3,}"
_LOWER_CUES = (r"(?i:(?:hi|hello|hey),? this is|dear|hi|hello|regards|thanks|signed|cc|attn|user|employee|member|"
               r"customer|caller|patient|contact|colleague|mr|mrs|ms|dr|assigned to|spoke to|spoke with|reported by|"
               r"requested by|approved by|olá|hola|bonjour|hallo|atenciosamente|saludos|cordialement)")
_OWNED = (r"(?:address|phone|number|e-?mail|birthday|date of birth|account|card|password|mother|father|wife|"
          r"husband|son|daughter|brother|sister|manager|laptop|salary|passport|ssn|social security|kid|kids|child|"
          r"children|boss|partner|friend|girlfriend|boyfriend|parents|family|cousin|uncle|aunt|grandmother|"
          r"grandfather)")
_SINGLE_VERB = r"(?:had given|has given|is from|was born|lives|said|told)"
# Verbs only a person takes, after a pair of words of any case opening a sentence ("renee lewis lives at").
_VERB = (r"(?i:lives|lived|called|phoned|emailed|asked|reported|said|wrote|works|worked|requested|complained|"
         r"can be reached|is reachable|was born|signed|here)")


class ContextNameRecognizer(CodeRecognizer):
    ENTITY = "PERSON"

    def __init__(self) -> None:
        super().__init__()
        w = WORD
        self._strong = re.compile(rf"\b{_STRONG}\s+({w})(?:[ \t]+({w}))?(?:[ \t]+({w}))?")
        self._intro = re.compile(rf"\b{_INTRO}\.?,?\s+({w})(?:[ \t]+({w}))?(?:[ \t]+({w}))?")
        # Not after "work": one works for an employer ("I work for Mango Transit").
        self._link = re.compile(rf"\b(?<![Ww]ork )(?<![Ww]orks )(?<![Ww]orked )(?<![Ww]orking )"
                                rf"{_LINK}:?\s+({w})[ \t]+({w})(?:[ \t]+({w}))?")
        # A lower-case pair after a greeting, closing, title or role that takes a person ("regards, renee lewis",
        # "failed for user trevor delacruz"); not after "I'm", "for" or "by", which take anything ("I'm moving out").
        self._lower_pair = re.compile(rf"\b{_LOWER_CUES}\.?,?\s+({_LOWER})[ \t]+({_LOWER})\b")
        self._subject = re.compile(rf"(?:^|[.!?;:\n]\s*)({w})[ \t]+({w})(?:[ \t]+({w}))?(?=,?\s+{_VERB}\b)")
        # One or two capitalised words owning what only a person has ("Hermelando's address", "Ana Dias's phone").
        self._owner = re.compile(rf"(?<![\w'’-])({w})(?:[ \t]+({w}))?(?=['’]s\s+{_OWNED}\b)")
        # One capitalised word opening a sentence before what only a person does ("Otávio had given his address").
        self._single = re.compile(rf"(?:^|[.!?;\n]\s*)({w})(?=\s+(?:{_VERB}|{_SINGLE_VERB})\b)")


    @staticmethod
    def _name_end(m: re.Match, any_case: bool) -> int | None:
        """Where the name in the match ends: its words up to the first that cannot be part of a name."""
        end = None
        for group in range(1, m.re.groups + 1):
            word = m.group(group)
            initial = group > 1 and len(word or "") == 1 and word.isupper()  # "Egor A Bogdanov"
            if not word or word.lower() in NOT_NAMES and not initial or not (any_case or is_name_word(word) or initial):
                break
            end = m.end(group)
        return end

    def analyze(self, text, entities, nlp_artifacts=None):
        if "PERSON" not in entities:
            return []
        results = []
        owned = "'s" in text or "’s" in text  # what only a person owns follows a possessive
        for regex, any_case, min_words in ((self._strong, True, 1), (self._intro, False, 1), (self._link, False, 2),
                                           (self._lower_pair, True, 2),
                                           (self._subject, True, 2), (self._single, False, 1),
                                           (self._owner, False, 1)):
            if regex is self._owner and not owned:
                continue
            pos = 0
            while (m := regex.search(text, pos)) is not None:
                end = self._name_end(m, any_case)
                if end is None or (min_words == 2 and (not m.group(2) or m.end(2) > end)):
                    pos = m.start(1) if m.start(1) > pos else m.end(1)  # "Olá, Sra. Conceição": look again at "Sra"
                    continue
                results.append(result(self, "PERSON", m.start(1), end, 0.6))
                pos = end
        return results
