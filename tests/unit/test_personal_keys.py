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
