"""An identifier the text labels as a person's national, social-security, tax or identity number, whatever its
shape: "His social security number is 96125852539" (a Brazilian CPF written bare), "SSN: ZZ 58 88 71 T" (a
National Insurance number with a prefix HMRC never issues), "DNI n.º 12345678". The shape recognizers check
a country's format and checksum; a value a person's text calls their number is theirs even when it fails both,
so it is scrubbed on the label alone. The label must stand right before the value (a connecting word, a colon
or "no." between them at most)."""

from __future__ import annotations

import re

from appliance.data.recognizers._shared import CodeRecognizer, result

# Phrases, in the languages a policy can name, that say the value after them is a personal identifier.
_PHRASES = (
    r"social[ -]security(?:[ -](?:number|no\.?|num|#))?|national[ -]insurance(?:[ -](?:number|no\.?))?|"
    r"ni[ -](?:number|no\.?)|national[ -]id(?:entity)?(?:[ -](?:number|no\.?|card))?|"
    r"identity[ -](?:card[ -])?(?:number|no\.?)|id[ -]card[ -](?:number|no\.?)|"
    r"tax(?:payer)?[ -]id(?:entification)?(?:[ -](?:number|no\.?))?|"
    r"n[úu]mero[ -]de[ -](?:identidade|identidad|identifica[çc][ãa]o|seguridad[ -]social|seguran[çc]a[ -]social)|"
    r"documento[ -]de[ -]identidad|carteira[ -]de[ -]identidade|"
    r"num[ée]ro[ -]de[ -]s[ée]curit[ée][ -]sociale|n°[ -]de[ -]s[ée]curit[ée][ -]sociale|num[ée]ro[ -]d'identit[ée]|"
    r"sozialversicherungsnummer|steuer-?id|steuer-?identifikationsnummer|personalausweisnummer|ausweisnummer"
)
# Acronyms, in capitals (or "ssn"/"cpf"/"dni" as people type them).
_ACRONYMS = r"SSN|SS#|NINO|CPF|CNPJ|RG|DNI|NIE|NIF|NIR|NSS|TIN|ssn|cpf|cnpj|dni"
_JOIN = (r"(?:[ \t]*(?:#|:|=|-|n[.ºo°]*\.?|nr\.?|is|was|é|es|est|ist|lautet|:[ \t]*n[.ºo°]+)){0,2}[ \t]*")
# The value: letters at most at either end, digits with the separators numbers are written with, six digits or
# more in all.
_VALUE = r"(?=(?:[A-Z. /-]{0,4}\d){6})[A-Z]{0,3}[ -]?\d(?:[\d./ -]{0,20}\d)?(?:[ -]?[A-Z]\b)?"
# Over the threshold on the label alone, under a shape recognizer's score with its context (a US SSN so labelled
# stays a US_SSN finding).
_SCORE = 0.51
_LABELLED = re.compile(rf"((?i:\b(?:{_PHRASES}))|\b(?:{_ACRONYMS})\b)(?i:{_JOIN})({_VALUE})")
# A US SSN so labelled is the SSN recognizer's (US_SSN): left to it.
_US_SSN = re.compile(r"\d{3}[- .]?\d{2}[- .]?\d{4}")
_SSN_LABEL = re.compile(r"(?i)ssn|ss#|social")


class IdentifierAfterLabelRecognizer(CodeRecognizer):
    ENTITY = "NATIONAL_ID"

    def analyze(self, text, entities, nlp_artifacts=None):
        if self.ENTITY not in entities:
            return []
        out = []
        for m in _LABELLED.finditer(text):
            start, end = m.span(2)
            value = text[start:end].rstrip(" ./-")
            if _SSN_LABEL.match(m.group(1)) and _US_SSN.fullmatch(value):
                continue
            out.append(result(self, self.ENTITY, start, start + len(value), _SCORE))
        return out
