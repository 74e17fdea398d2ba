"""What looks like a name but is business content: products, vendors, services, error and knowledge-base
codes. A PERSON finding that contains one of these words, a digit, a dot-separated host name or a code is not
scrubbed, whatever found it, nor is a name that opens an organisation's name ("John Hancock Investors Trust",
"Barnes & Noble, Inc."). An organisation's own catalogue goes on the policy's allow-list."""

from __future__ import annotations

import re

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
""".split())

_CODE = re.compile(r"\d|\w\.\w+\.\w|[/\\@_]")
_WORDS = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")


def is_business(value: str) -> bool:
    """True when a span found as a person holds a digit, a code, a host name or a product word."""
    if _CODE.search(value):
        return True
    return any(word.lower() in TERMS or word.lower() in ORGANISATION for word in _WORDS.findall(value))


# The words an organisation's name ends in.
ORGANISATION = frozenset("""
    inc inc. incorporated ltd ltd. llc plc corp corp. corporation co co. company ag gmbh sa s.a. sarl srl spa bv
    nv n.v. ab oy asa kk pty lp llp limited group holdings bank bancorp bankshares trust fund etf reit partners
    associates industries technologies solutions investors properties financial acquisition insurance tech
    lines energy motors airlines logistics pharmaceuticals therapeutics biotech resources realty
""".split())
_FOLLOWING = re.compile(r"[ \t]*,?[ \t]+([&\w.'’-]+)")


def opens_organisation(text: str, end: int) -> bool:
    """True when the words after a name found at `end` make it part of an organisation's name: capitalised
    words (or "&", "and", "of") up to a word organisations' names end in."""
    pos = end
    for _ in range(5):
        m = _FOLLOWING.match(text, pos)
        if not m:
            return False
        word = m.group(1)
        if word.lower() in ORGANISATION or word.lower().rstrip(".,") in ORGANISATION:
            return True
        if not (word[0].isupper() or word in ("&", "and", "of")):
            return False
        pos = m.end()
    return False
