"""The recognizers the appliance adds to Presidio's, one a module (Presidio's own layout).

Context-dependent ones start below the policy threshold and pass it only when Presidio's context enhancer
finds one of their context words nearby (an SSN is scrubbed when the text says it is an SSN, even if the
number fails Presidio's plausibility check). Context words are given in every language a policy can name;
locale-specific shapes load only when the policy's `languages` include that locale's language.
"""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer

from appliance.data.recognizers.address_br import BrazilianAddressRecognizer
from appliance.data.recognizers.address_de import GermanAddressRecognizer
from appliance.data.recognizers.address_fr_es import FrenchSpanishAddressRecognizer
from appliance.data.recognizers.address_in_context import AddressInContextRecognizer
from appliance.data.recognizers.address_intl import EuropeanStreetRecognizer
from appliance.data.recognizers.address_numbered_street import NumberedStreetRecognizer
from appliance.data.recognizers.address_uk import UkAddressRecognizer
from appliance.data.recognizers.address_unit_line import AddressUnitLineRecognizer
from appliance.data.recognizers.address_us import UsStreetAddressRecognizer
from appliance.data.recognizers.br_cpf_cnpj import BrCpfCnpjRecognizer
from appliance.data.recognizers.credit_card import LuhnCreditCardRecognizer
from appliance.data.recognizers.date_of_birth import DateOfBirthInContextRecognizer
from appliance.data.recognizers.eu_national_ids import EuNationalIdRecognizer
from appliance.data.recognizers.identifier_after_label import IdentifierAfterLabelRecognizer
from appliance.data.recognizers.identifiers import (
    CaseNumberRecognizer,
    DriverLicenseInContextRecognizer,
    EmployeeIdRecognizer,
    NationalIdInContextRecognizer,
)
from appliance.data.recognizers.ipv6 import Ipv6Recognizer
from appliance.data.recognizers.medical_record import MedicalRecordNumberRecognizer
from appliance.data.recognizers.names_gazetteer import GazetteerNameRecognizer
from appliance.data.recognizers.names_in_context import ContextNameRecognizer
from appliance.data.recognizers.names_in_layout import LayoutNameRecognizer
from appliance.data.recognizers.names_unknown_words import UnknownWordNameRecognizer
from appliance.data.recognizers.names_with_initial import InitialNameRecognizer
from appliance.data.recognizers.passport import PassportInContextRecognizer
from appliance.data.recognizers.phone_in_context import PhoneInContextRecognizer
from appliance.data.recognizers.phone_national import NationalPhoneRecognizer
from appliance.data.recognizers.phone_patterns import PhonePatternRecognizer
from appliance.data.recognizers.uk_nino import UkNinoRecognizer
from appliance.data.recognizers.us_ssn import SsnInContextRecognizer

LANGUAGES = ("en", "de", "es", "fr", "pt")

# (recognizer class, the policy languages that load it; None: every policy)
SHIPPED: tuple[tuple[type[EntityRecognizer], frozenset[str] | None], ...] = (
    (NationalPhoneRecognizer, None),
    (PhonePatternRecognizer, None),
    (PhoneInContextRecognizer, None),
    (LuhnCreditCardRecognizer, None),
    (SsnInContextRecognizer, None),
    (UsStreetAddressRecognizer, frozenset({"en"})),
    (UkAddressRecognizer, frozenset({"en"})),
    (GermanAddressRecognizer, frozenset({"de"})),
    (BrazilianAddressRecognizer, frozenset({"pt"})),
    (FrenchSpanishAddressRecognizer, frozenset({"fr", "es"})),
    (EuropeanStreetRecognizer, None),
    (AddressInContextRecognizer, None),
    (AddressUnitLineRecognizer, None),
    (NumberedStreetRecognizer, None),
    (DateOfBirthInContextRecognizer, None),
    (UkNinoRecognizer, None),
    (BrCpfCnpjRecognizer, frozenset({"pt"})),
    (EuNationalIdRecognizer, frozenset({"es", "fr"})),
    (NationalIdInContextRecognizer, None),
    (IdentifierAfterLabelRecognizer, None),
    (PassportInContextRecognizer, None),
    (MedicalRecordNumberRecognizer, None),
    (Ipv6Recognizer, None),
    (EmployeeIdRecognizer, None),
    (CaseNumberRecognizer, None),
    (DriverLicenseInContextRecognizer, frozenset({"en"})),
    (ContextNameRecognizer, None),
    (LayoutNameRecognizer, None),
    (InitialNameRecognizer, None),
    (GazetteerNameRecognizer, None),
    (UnknownWordNameRecognizer, frozenset({"en"})),
)


# The data files the shipped recognizers read, by package and path: given names (the US Census lists, the given
# names of Faker's locales) and the English words that tell a name from a word.
DATA_FILES = (("names", "dist.male.first"), ("names", "dist.female.first"),
              ("appliance", "resources/given_names.txt"), ("appliance", "resources/english_words.txt.gz"))


def data_digests() -> dict[str, str]:
    """The sha256 of each data file the shipped recognizers read, by "package/path": recorded in a dataset's
    lineage, so that a weakened list in an installed package shows in what an auditor compares."""
    import hashlib
    import importlib.resources

    return {f"{package}/{path}": hashlib.sha256(importlib.resources.files(package).joinpath(path).read_bytes())
            .hexdigest() for package, path in DATA_FILES}


def shipped(languages: tuple[str, ...] | list[str] = LANGUAGES) -> list[EntityRecognizer]:
    """One instance of each shipped recognizer the given policy languages load."""
    wanted = set(languages)
    return [cls() for cls, langs in SHIPPED if langs is None or langs & wanted]
