"""A person's own signing key: made in their process, kept encrypted in their home, and used only for the decision
their own command line asked for, whatever the appliance service asks."""

from __future__ import annotations

import json

import pytest

from appliance.artifacts import decisions
from appliance.errors import IntegrityError, PermissionDenied
from appliance.keys.personal import LocalPersonalKeys
from tests.conftest import personal_env

pytestmark = pytest.mark.unit


@pytest.fixture
def keys(tmp_path):
    env = personal_env(tmp_path)
    LocalPersonalKeys(env, ["keys", "enroll"]).enroll("oscar")
    return env


def _statement(decision="approve", subject="triage", reason="reviewed the card", signer="oscar") -> bytes:
    return decisions.statement(decision, subject, "ab" * 32, reason, signer, "officer")


def test_the_key_is_kept_encrypted_and_private_in_its_holders_folder(keys, tmp_path):
    from pathlib import Path

    private = Path(keys["APPLIANCE_PERSONAL_KEYS"]) / "oscar.key.pem"
    assert private.stat().st_mode & 0o777 == 0o600 and private.parent.stat().st_mode & 0o777 == 0o700
    record = json.loads(private.read_text())  # PKCS#8 under a password scrypt stretched from the passphrase
    assert record["kdf"] == "scrypt" and record["n"] >= 1 << 15
    assert record["pkcs8"].startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    again = LocalPersonalKeys(keys, ["keys", "enroll"]).enroll("oscar")  # an enrolment made again: the same key
    assert again["public_pem"] == (Path(keys["APPLIANCE_PERSONAL_KEYS"]) / "oscar.pub.pem").read_text()
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase at all\n")
    with pytest.raises(IntegrityError, match="wrong passphrase"):
        LocalPersonalKeys({**keys, "APPLIANCE_PERSONAL_PASSPHRASE_FILE": str(wrong)},
                          ["approve", "triage", "--reason", "reviewed the card"]).sign("oscar", _statement())


@pytest.mark.parametrize("argv, payload, said", [
    (["approve", "triage", "--reason", "reviewed the card"], _statement("revoke"), "it states 'revoke'"),
    (["approve", "triage", "--reason", "reviewed the card"], _statement(subject="other"),
     "it is about 'other', which your command does not name"),
    (["approve", "triage", "--reason", "reviewed the card"], _statement(reason="something else"),
     "its reason is not the one you gave"),
    (["approve", "triage", "--reason", "reviewed the card"], _statement(signer="olga"), "another signer"),
    (["artifacts", "list"], _statement(), "your command is `artifacts list`"),
    (["approve", "triage", "--reason", "reviewed the card"], b"not a statement", "not a decision statement"),
])
def test_the_client_signs_only_the_decision_its_own_command_line_asked_for(keys, argv, payload, said):
    with pytest.raises(PermissionDenied, match="refused to sign") as refused:
        LocalPersonalKeys(keys, argv).sign("oscar", payload)
    assert said in str(refused.value)


def test_what_it_signs_is_a_dsse_envelope_any_in_toto_tool_reads(keys):
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from appliance.keys.personal import keys_dir, payload_to_sign

    payload = _statement()
    reply = LocalPersonalKeys(keys, ["approve", "triage", "--reason", "reviewed the card"]).sign("oscar", payload)
    public = serialization.load_pem_public_key((keys_dir(keys) / "oscar.pub.pem").read_bytes())
    pae = b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(payload), payload)
    assert payload_to_sign(payload) == pae
    public.verify(base64.b64decode(reply["sig"]), pae, ec.ECDSA(hashes.SHA256()))  # raises if it does not verify
    body = json.loads(payload)
    assert body["_type"] == "https://in-toto.io/Statement/v1" and body["subject"][0]["digest"] == {"sha256": "ab" * 32}


SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "20261207"


@pytest.fixture(scope="session")
def token_env(tmp_path_factory) -> dict[str, str]:
    """A SoftHSM token labelled `officer` (one for the session: a PKCS#11 module is initialised once a process) and
    the environment of a person who keeps their key on it, its user PIN in a file their process reads."""
    import os
    import subprocess

    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    made = subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "officer", "--pin", PIN,
                           "--so-pin", "87654321"], capture_output=True, text=True)  # a throwaway test token
    assert made.returncode == 0, made.stderr
    (root / "pin").write_text(PIN + "\n")
    return {"APPLIANCE_PERSONAL_PKCS11": SOFTHSM, "APPLIANCE_PERSONAL_TOKEN": "officer",
            "APPLIANCE_PERSONAL_PIN_FILE": str(root / "pin"), "APPLIANCE_PERSONAL_KEYS": str(root / "no-key-files")}


def test_a_key_made_on_a_pkcs11_token_signs_there_and_never_leaves_it(token_env, tmp_path):
    import base64
    from pathlib import Path

    import pkcs11
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from pkcs11 import Attribute, ObjectClass

    from appliance.errors import InputError
    from appliance.keys.crypto import key_id_of
    from appliance.keys.personal import enrolment_text, payload_to_sign

    made = LocalPersonalKeys(token_env, ["keys", "enroll"]).enroll("olga")
    public = serialization.load_pem_public_key(made["public_pem"].encode())
    public.verify(base64.b64decode(made["proof"]), enrolment_text("olga", key_id_of(public)),
                  ec.ECDSA(hashes.SHA256()))  # the token proved it holds the key
    assert not Path(token_env["APPLIANCE_PERSONAL_KEYS"]).exists()  # no key file anywhere
    assert LocalPersonalKeys(token_env, ["keys", "enroll"]).enroll("olga")["public_pem"] == made["public_pem"]
    with pkcs11.lib(SOFTHSM).get_token(token_label="officer").open(user_pin=PIN) as session:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="appliance olga")
        assert private[Attribute.SENSITIVE] and not private[Attribute.EXTRACTABLE]

    payload = _statement(signer="olga")
    reply = LocalPersonalKeys(token_env, ["approve", "triage", "--reason", "reviewed the card"]).sign("olga", payload)
    assert reply["key_id"] == key_id_of(public)
    public.verify(base64.b64decode(reply["sig"]), payload_to_sign(payload), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(PermissionDenied, match="it states 'revoke'"):  # the token signs only what was asked
        LocalPersonalKeys(token_env, ["approve", "triage"]).sign("olga", _statement("revoke", signer="olga"))
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("00000000\n")
    with pytest.raises(IntegrityError, match="wrong PIN"):
        LocalPersonalKeys({**token_env, "APPLIANCE_PERSONAL_PIN_FILE": str(wrong)},
                          ["approve", "triage", "--reason", "reviewed the card"]).sign("olga", payload)
    with pytest.raises(InputError, match="no token labelled 'elsewhere'.*'officer'"):
        LocalPersonalKeys({**token_env, "APPLIANCE_PERSONAL_TOKEN": "elsewhere"}, ["keys", "enroll"]).enroll("olga")
    with pytest.raises(InputError, match="not a PKCS#11 module"):
        LocalPersonalKeys({**token_env, "APPLIANCE_PERSONAL_PKCS11": str(tmp_path / "none.so")},
                          ["keys", "enroll"]).enroll("olga")


def test_a_decision_signed_on_a_token_counts_once_root_pins_its_key(database_url, token_env):
    import dataclasses

    from appliance.config import load_settings
    from appliance.context import Actor, Context
    from appliance.db import connect, migrate
    from appliance.keys import enrolment, people, store

    settings = load_settings()
    engine = connect(settings, create=True)
    migrate(engine)
    system = Context(settings, engine)
    store.init_keys(system)
    oscar = system.acting_as(Actor("oscar", "officer", "session"))
    entry = enrolment.enroll(dataclasses.replace(oscar, personal=LocalPersonalKeys(token_env, ["keys", "enroll"])))
    asked = dataclasses.replace(oscar, personal=LocalPersonalKeys(
        token_env, ["approve", "triage", "--reason", "reviewed the card"]))
    with pytest.raises(PermissionDenied, match="your signed approve"):  # enrolled, not pinned yet: it counts not
        decisions.signed(asked, "approve", "triage", "ab" * 32, "reviewed the card")
    enrolment.pin(settings, engine, entry.key_id)
    envelope = decisions.signed(asked, "approve", "triage", "ab" * 32, "reviewed the card")
    found, problem = decisions.check(envelope, people.read(settings), decision="approve", subject="triage",
                                     digest="ab" * 32)
    assert problem is None and found.key.key_id == entry.key_id and found.signer == "oscar"
    engine.dispose()
