"""Which language a text is written in, among those a scrub policy can name (en, de, es, fr, pt): by counting the
words that only a language's grammar puts in running text (articles, pronouns, prepositions, auxiliaries).

It decides one thing: which spaCy pipeline's named-entity pass reads the text. Every recognizer reads every text
whatever its language, so a text read as the wrong language loses only the other pipeline's named-entity pass.
A help-desk text names products, hosts and error codes in English inside sentences of another language; those
names are not function words and do not move the count. A text with too few function words to tell (a bare
list, a log line) is the default language's.
"""

from __future__ import annotations

import re

from appliance.data.scrub import PLACEHOLDERS

# Frequent function words, each listed for one language only where the languages share it (French "de" and
# Portuguese "de" both stand in Spanish too, so "de" counts for none).
FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset("""
        the and is are was were of to in for with on at from by this that these those it its you your we our
        they their he she his her have has had will would can could should not but or if be been being an which
        who what there here please thanks hi hello my me i am do does did""".split()),
    "fr": frozenset("""
        le la les des du au aux est sont une et pour avec dans sur pas vous nous je il elle ils elles qui que
        ce cette ces mais ou votre vos mon ma mes notre leur été être avoir ai avez avons merci bonjour
        cordialement depuis aussi très chez sa son ses ne plus fait peut un l d qu j c n""".split()),
    "es": frozenset("""
        el los las del al es son una y para con en por pero que usted ustedes nosotros yo él ella ellos
        su sus mi mis este esta estos estas fue ser estar está están hay gracias hola saludos atentamente
        muy también desde pero sin como cuando""".split()),
    "pt": frozenset("""
        o os as do da dos das no na nos nas ao é são um uma e para com em por mas que você vocês nós eu ele
        ela eles seu sua seus suas meu minha este esta foi ser estar está estão obrigado obrigada olá
        atenciosamente muito também desde sem não""".split()),
    "de": frozenset("""
        der die das den dem des ein eine einen einem einer und ist sind war für mit auf von zu im bei aus
        nicht ich sie wir ihr er es sich mein meine ihre ihr unser bitte danke hallo grüßen gruß freundlichen
        auch sehr seit ohne oder aber wenn wie""".split()),
}

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
# The share of a text's words a language's function words must make before the text is read as that language:
# prose has a third or more; an address block or a list of names with one "du" in it is not French prose.
MIN_SHARE = 0.1


def detect(text: str, default: str = "en") -> str:
    """The language in FUNCTION_WORDS whose function words the text has most of (more than any other language's,
    and at least MIN_SHARE of its words); `default` when none leads. A scrubbed value's placeholder is no word of
    the text (its digest's letters "c", "d" and "e" are French and Portuguese function words)."""
    counts = dict.fromkeys(FUNCTION_WORDS, 0)
    words = _WORD.findall(PLACEHOLDERS.sub(" ", text).lower())
    for word in words:
        for language, listed in FUNCTION_WORDS.items():
            if word in listed:
                counts[language] += 1
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    (best, count), (_, runner_up) = ranked[0], ranked[1]
    if not count or count == runner_up or count < MIN_SHARE * len(words):
        return default
    return best
