"""What looks like a name but is business content: products, vendors, services, error and knowledge-base
codes. A PERSON finding that contains one of these words, a digit, a dot-separated host name or a code is not
scrubbed, whatever found it, nor is a name that opens an organisation's name ("John Hancock Investors Trust",
"Barnes & Noble, Inc."). An organisation's own catalogue goes on the policy's allow-list."""

from __future__ import annotations

import re

from appliance.data.recognizers._shared import POSSESSIVE, WORD, is_name_word
from appliance.data.recognizers.lexicon import is_english

# Vendors, products and the words product names are made of, lower case, matched word by word; words that are
# common names too (Dell, Alexa, Link, Box) are left out.
TERMS = frozenset("""
    microsoft windows office outlook teams excel powerpoint onenote onedrive sharepoint exchange azure intune
    entra defender dynamics bing skype yammer visio viva copilot xbox
    google gmail chrome drive docs sheets slides meet workspace android youtube gemini cloud bigquery
    apple iphone ipad macos macbook imac ios icloud safari facetime keynote xcode
    adobe acrobat reader photoshop illustrator indesign premiere lightroom creative
    zoom rooms webex cisco anyconnect meraki citrix receiver vmware vsphere esxi workstation
    slack jira confluence bitbucket atlassian trello github gitlab jenkins docker kubernetes terraform ansible
    salesforce servicenow workday sap concur successfactors oracle peoplesoft netsuite tableau snowflake
    okta duo lastpass 1password bitwarden crowdstrike sentinelone sophos mcafee norton symantec
    hp lenovo thinkpad latitude elitebook inspiron optiplex lexmark xerox epson ricoh
    aws amazon ec2 s3 lambda kindle ibm redhat rhel ubuntu debian linux fedora centos suse
    dropbox egnyte zendesk freshdesk hubspot mailchimp docusign asana airtable figma
    epic cerner meditech allscripts athenahealth
    vpn wifi wi-fi ethernet bluetooth usb hdmi printer scanner monitor laptop desktop server router
    firewall portal app apps suite pro plus premium enterprise professional business standard ultimate
    edition cloud online desktop mobile web api sdk cli gateway console dashboard manager studio hub
    connect sync hub center centre services service platform system systems network
    update updates patch release version build driver firmware bios kernel agent client module plugin
    error code http https dns dhcp smtp imap pop3 ldap sso saml oauth mfa 2fa ssl tls ssh ftp sftp rdp
    kb hotfix rollup cumulative preview beta alpha insider
    inc ltd llc plc corp corporation co company ag gmbh sa sarl srl spa bv nv ab oy asa kk pty lp llp limited group
    holdings holding bank capital partners associates industries international technologies solutions media
    weekly times journal news university college institute school hospital clinic foundation trust fund
    ministry department council agency authority
    research labs laboratories movers pharmaceuticals pharma therapeutics biosciences biolabs bancorp bankshares
    bancshares acquisition properties realty minerals mining steels energy insurance municipals investment
    investments securities financial logistics consulting ventures enterprises brands airlines telematics
    semiconductor software motors
    msci ishares xtrackers spdr invesco proshares velocityshares etn
""".split())

# A digit, a host name or a code's separator: never in a person's name.
CODE = re.compile(r"\d|\w\.\w+\.\w|[/\\@_]")
_WORDS = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
_CAMEL = re.compile(r"[A-Z]?[^\W\d_A-Z]+|[A-Z]+(?![^\W\d_A-Z])")


def _parts(word: str) -> list[str]:
    """A word and the words it is made of, lower case: its hyphenated parts ("ETF-JPM"), its CamelCase parts
    ("ReitInc", "CompanyLimited") and two business words glued in upper case ("INDUSTRIESINC")."""
    parts = [word, *word.split("-")]
    for piece in word.split("-"):
        parts += _CAMEL.findall(piece)
        if piece.isupper() and len(piece) > 5:
            low = piece.lower()
            parts += [w for cut in range(3, len(low) - 1)
                      for w in (low[:cut], low[cut:])
                      if low[:cut] in _KNOWN and low[cut:] in ORGANISATION]
    return [p.lower() for p in parts]


def is_business(value: str) -> bool:
    """True when a span found as a person holds a digit, a code, a host name or a product word."""
    if CODE.search(value):
        return True
    return any(part in _KNOWN for word in _WORDS.findall(value) for part in _parts(word))


# The words an organisation's name ends in.
ORGANISATION = frozenset("""
    inc inc. incorporated ltd ltd. llc plc corp corp. corporation co co. company ag gmbh sa s.a. sarl srl spa bv
    nv n.v. ab oy asa kk pty lp llp limited group holdings bank bancorp bankshares trust fund etf reit partners
    associates industries technologies solutions investors properties financial acquisition insurance tech
    lines energy motors airlines logistics pharmaceuticals therapeutics biotech resources realty bancorporation
    k.k. aktiengesellschaft gesellschaft aktiebolag sociedad anónima limitada ltda s.p.a. spa sas nextshares
""".split())
_KNOWN = TERMS | ORGANISATION
_TOKEN = re.compile(r"[ \t]+([&\w.'’-]+)")
_GLUED = re.compile(r"\.[\w.]*")
_BEFORE = re.compile(r"([&\w'’-]+)[ \t]+\Z")


def _org_word(word: str) -> bool:
    return word.lower() in ORGANISATION or word.lower().rstrip(".,") in ORGANISATION


_CONNECTORS = ("&", "and", "et", "und", "y", "e")  # "Etablissements Maurel et Prom SA"


def _name_like(word: str) -> bool:
    """A word that can go on an organisation's name: capitalised or holding a capital ("ex-US"), or "&", "and"
    in one of the policy's languages
    ("of" cannot: "Astrid Holst of Merchants Trust plc" is a person at an organisation)."""
    return word[0].isupper() or any(c.isupper() for c in word) or word in _CONNECTORS


# After a possessive: a replaced name, a title, or two name words.
_PERSON_NEXT = re.compile(rf"[ \t]+(?:<PERSON_|(?:Mr|Mrs|Ms|Dr|Prof|Herr|Frau|Mme)\b|({WORD})[ \t]+({WORD}))")


def owns_a_person(text: str, stop: int) -> bool:
    """The words before `stop` are a possessive before a person's name: what owns a person by name is an
    organisation ("Xcential's Tricia Geisler", "Owens Corning's Samantha Vaux", "Orlin Research's Mr. Čeh"), not a
    person ("Ana's Outlook Calendar" and "Ana's Acme Account" are Ana's: a product or an English word follows)."""
    if text.startswith(POSSESSIVE, stop):
        stop += 2
    elif text[stop - 2:stop] not in POSSESSIVE:
        return False
    m = _PERSON_NEXT.match(text, stop)
    if not m or m.group(1) is None:
        return bool(m)
    first, last = m.group(1), m.group(2)
    return (is_name_word(first) and is_name_word(last) and not is_english(first)
            and not is_business(f"{first} {last}"))


def opens_organisation(text: str, end: int) -> bool:
    """True when the words after a name found at `end` make it part of an organisation's name: capitalised
    words (or "&", "and", "ex-US") up to a word organisations' names end in ("Fred. Olsen Energy ASA",
    "Barnes & Noble, Inc.", "Ollie's Bargain Outlet Holdings Inc."); a comma only before such a word ("Aisha
    Okafor, Acme Ltd" keeps the name)."""
    pos = end + 2 if text.startswith(POSSESSIVE, end) else end
    glued = _GLUED.match(text, end)  # "AEGON N" + ".V."; a full stop alone ends the sentence
    if glued:
        return _org_word(re.search(r"[\w.]+$", text[:glued.end()]).group())
    for _ in range(6):
        comma = text.startswith(",", pos)
        m = _TOKEN.match(text, pos + comma)
        if not m:
            return False
        word = m.group(1)
        if _org_word(word) or any(part in ORGANISATION for part in _parts(word.rstrip(".,"))[1:]):
            return True
        if comma or not _name_like(word):
            return False
        pos = m.end()
    return False


def closes_organisation(text: str, start: int) -> bool:
    """True when the capitalised words just before a name found at `start`, on its line, hold a word an
    organisation's name is made of ("... UCITS ETF MSCI Indonesia"); not past a possessive ("Arrow Financial
    Corporation's Eric Durr" is a person)."""
    before = text[max(0, start - 120):start]
    for _ in range(3):
        m = _BEFORE.search(before)
        if not m or not _name_like(m.group(1)) or m.group(1).lower().endswith(POSSESSIVE):
            return False
        if _org_word(m.group(1)):
            return True
        before = before[:m.start()]
    return False


def in_organisation(text: str, start: int, end: int) -> bool:
    """A name found at text[start:end] that is part of an organisation's name, or glued to a code
    ("THALES/EQ", "UCIT/SHS")."""
    before, after = text[start - 1:start], text[end:end + 1]
    if before and before in "/\\@_" or after and after in "/\\@_":
        return True
    return opens_organisation(text, end) or closes_organisation(text, start)
