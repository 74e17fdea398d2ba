"""Signed decisions: an in-toto statement in a DSSE envelope, made by the person's own key, for every release
decision (an officer's approve, reject, revoke, gate override) and every maker's step (an engineer's package,
sign). The envelope goes into the decision's audit event (`details.statement`); the gateway serves an adapter only
on the strength of such envelopes, verified against the keys root pinned (`keys/people.py`).

Statement: {"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": ARTIFACT or RUN, "digest": {"sha256": MANIFEST or ADAPTER DIGEST}}],
            "predicateType": "urn:appliance:decision:v1",
            "predicate": {"decision", "reason", "signer", "role", "ts"}}
serialised as sorted-key JSON with no spaces; the envelope is DSSE's ({"payloadType", "payload": base64,
"signatures": [{"keyid", "sig"}]}), the signature ECDSA P-256 SHA-256 over DSSE's PAE of the payload.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from appliance.context import Context
from appliance.errors import PermissionDenied
from appliance.keys import people
from appliance.keys.crypto import verify_signature
from appliance.keys.personal import payload_to_sign

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:appliance:decision:v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
OFFICER = ("approve", "reject", "revoke", "override")
MAKER = ("package", "sign")


@dataclass(frozen=True)
class Decision:
    decision: str
    subject: str
    digest: str
    reason: str
    signer: str  # the appliance account the statement names
    key: people.PinnedKey  # the pinned key that signed it


def statement(decision: str, subject: str, digest: str, reason: str, signer: str, role: str) -> bytes:
    body = {"_type": STATEMENT_TYPE, "subject": [{"name": subject, "digest": {"sha256": digest}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {"decision": decision, "reason": reason, "signer": signer, "role": role,
                          "ts": datetime.now(UTC).isoformat(timespec="seconds")}}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed(ctx: Context, decision: str, subject: str, digest: str, reason: str = "") -> dict:
    """The acting person's signed statement of `decision` on `subject` (its digest): made by their own key in
    their own process, then checked here against the pinned keys. PermissionDenied when they hold no key, their
    key is not pinned for them in this role, or the signature does not verify."""
    if ctx.personal is None:
        raise PermissionDenied(f"{decision} is signed with your own personal key, in your own `appliance` process: "
                               f"run the command from your terminal (the console prepares it)")
    payload = statement(decision, subject, digest, reason, ctx.actor.user, ctx.actor.role)
    reply = ctx.personal.sign(ctx.actor.user, payload)
    envelope = {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
                "signatures": [{"keyid": str(reply.get("key_id", "")), "sig": str(reply.get("sig", ""))}]}
    found, problem = check(envelope, people.read(ctx.settings), decision=decision, subject=subject, digest=digest)
    if problem:
        raise PermissionDenied(f"your signed {decision}: {problem}", hint="keys.enroll")
    if found.signer != ctx.actor.user or found.key.role != ctx.actor.role:
        raise PermissionDenied(f"your signed {decision}: key {found.key.key_id[:16]} is pinned for {found.key.user} "
                               f"({found.key.role}), not for {ctx.actor.user} ({ctx.actor.role})")
    return envelope


def check(envelope, pinned: people.PeopleKeys, *, decision: str | tuple[str, ...], subject: str,
          digest: str) -> tuple[Decision | None, str | None]:
    """(the decision, None) when `envelope` is a statement of `decision` on exactly this subject and digest, signed
    by a pinned, unrevoked key of the account it names in the role that decision needs; (None, why not) otherwise."""
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        body = json.loads(payload)
        (signature,) = envelope["signatures"]
        key_id, sig = str(signature["keyid"]), base64.b64decode(signature["sig"], validate=True)
        predicate = body["predicate"]
        (about,) = body["subject"]
        if envelope["payloadType"] != PAYLOAD_TYPE or body["_type"] != STATEMENT_TYPE \
                or body["predicateType"] != PREDICATE_TYPE:
            return None, "not a decision statement"
        named, named_digest = str(about["name"]), str(about["digest"]["sha256"])
        said, signer = str(predicate["decision"]), str(predicate["signer"])
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None, "the statement is malformed"
    wanted = (decision,) if isinstance(decision, str) else decision
    if said not in wanted:
        return None, f"it states {said!r}, not {' or '.join(wanted)}"
    if named != subject or named_digest != digest:
        return None, (f"it is about {named} (sha256 {named_digest[:16]}), not {subject} (sha256 {digest[:16]}): "
                      f"a decision on something else")
    key = pinned.get(key_id)
    if key is None:
        return None, (pinned.problem or f"signed by key {key_id[:16]}, which root has not pinned "
                      f"(`appliance keys pin {key_id[:16]}` as root)")
    if key.revoked:
        return None, f"signed by key {key_id[:16]} of {key.user}, revoked by root ({key.revoked})"
    if not verify_signature(key.public_key(), sig, payload_to_sign(payload, PAYLOAD_TYPE)):
        return None, f"the signature of key {key_id[:16]} does not verify"
    if key.user != signer:
        return None, f"it names {signer} as its signer, but key {key_id[:16]} is pinned for {key.user}"
    role = "officer" if said in OFFICER else "engineer"
    if key.role != role:
        return None, f"{said} is an {role}'s decision; key {key_id[:16]} is pinned for {key.user} as {key.role}"
    return Decision(said, named, named_digest, str(predicate.get("reason", "")), signer, key), None
