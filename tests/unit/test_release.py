"""What the gateway serves rests on its makers' and an officer's own signed statements, read from the trail as the
gateway follows it against its anchors: never on a status column, an event in someone's name or a key that only the
database holds. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import delete

from appliance.artifacts import decisions, release
from appliance.audit.events import Event
from appliance.audit.follow import TrailFollower
from appliance.audit.log import checkpoint_now, record, record_alone
from appliance.config import load_settings
from appliance.context import Actor, Context
from appliance.db import connect, migrate, session_scope
from appliance.db.tables import audit_event
from appliance.digests import manifest_digest
from appliance.keys import people, store
from tests.conftest import enrolled, personal_keys
from tests.unit.test_audit import tamper

pytestmark = pytest.mark.unit

ERIN = Actor("erin", "engineer", "session")
OSCAR = Actor("oscar", "officer", "session")
NAME, MODEL = "triage", "smollm2"


@pytest.fixture
def lab(database_url, tmp_path):
    """A home with its keys, erin's and oscar's personal keys pinned, and an artifact folder signed with the
    appliance's artifact key whose package and sign statements erin made."""
    settings = load_settings()
    engine = connect(settings, create=True)
    migrate(engine)
    system = Context(settings, engine)
    store.init_keys(system)
    keys = {name: tmp_path / f"{name}-keys" for name in ("erin", "oscar")}
    erin, oscar = system.acting_as(ERIN), system.acting_as(OSCAR)
    enrolled(erin, keys["erin"])
    enrolled(oscar, keys["oscar"])
    folder = settings.artifacts_dir / NAME
    folder.mkdir(parents=True)
    (folder / "adapter.gguf").write_bytes(b"weights" * 100)
    (folder / "provenance.json").write_text(json.dumps(
        {"predicate": {"buildDefinition": {"externalParameters": {"baseModel": MODEL}}}}))
    digest = _digest(folder)
    _sign_folder(system, folder)
    for action, argv in (("package", ("package", "run1", "--name", NAME)), ("sign", ("sign", NAME))):
        statement = decisions.signed(personal_keys(erin, keys["erin"], *argv), action, NAME, digest)
        with session_scope(engine) as s:
            record(erin, s, Event(f"artifact.{action}", "artifact", NAME, object_sha256=digest,
                                  details={"statement": statement}))
    return system, keys, digest


def _digest(folder) -> str:
    from appliance.artifacts.package import file_digests

    return manifest_digest(sorted(file_digests(folder).items()))


def _sign_folder(ctx, folder) -> None:
    from model_signing import signing

    from appliance.artifacts.package import SIGNATURE
    from appliance.artifacts.signing import _hashing
    from appliance.keys import crypto

    key = store.active_key(ctx.engine, "artifact")
    signing.Config().use_elliptic_key_signer(private_key=ctx.settings.keys_dir / key.private_file,
                                             password=crypto.passphrase(ctx.settings)).set_hashing_config(
        _hashing()).sign(folder, folder / SIGNATURE)


def decide(ctx, keys, action: str, digest: str, reason: str = "reviewed the model card") -> int:
    """The officer's decision as `approve`/`revoke` make it: a statement signed by their own key, in its event."""
    statement = decisions.signed(personal_keys(ctx.acting_as(OSCAR), keys["oscar"], action, NAME, "--reason",
                                               reason), action, NAME, digest, reason)
    with session_scope(ctx.engine) as s:
        return record(ctx.acting_as(OSCAR), s, Event(f"artifact.{action}", "artifact", NAME, object_sha256=digest,
                                                    reason=reason, details={"statement": statement}))


def proven(ctx, digest, follower=None) -> str | None:
    if follower is None:
        follower = TrailFollower(ctx.settings, ctx.engine)
        follower.start()
    else:
        follower.follow()
    return release.prove(ctx.settings, follower, NAME, digest, MODEL)[0]


def test_an_approved_adapter_is_proven_from_the_statements_its_makers_and_its_officer_signed(lab):
    ctx, keys, digest = lab
    assert proven(ctx, digest) == "no approval statement by a pinned officer's key"
    decide(ctx, keys, "approve", digest)
    assert proven(ctx, digest) is None
    follower = TrailFollower(ctx.settings, ctx.engine)
    follower.start()
    assert [c.name for c in release.candidates(follower)] == [NAME]
    decide(ctx, keys, "revoke", digest, "withdrawn after the drift check")
    assert proven(ctx, digest, follower).startswith("revoked in the audit trail")
    assert release.candidates(follower) == []


def test_an_approval_forged_by_someone_with_the_database_is_not_served(lab):
    """The service account (or the PostgreSQL role) appends `artifact.approve` in the officer's name with the
    appliance's own code, and has it checkpointed: the trail holds it, the gateway refuses it."""
    ctx, keys, digest = lab
    forged = record_alone(ctx, Event("artifact.approve", "artifact", NAME, object_sha256=digest, reason="forged"),
                          OSCAR)
    checkpoint_now(ctx)
    assert proven(ctx, digest) == (f"the approval statement of event {forged}: the statement is malformed")
    # ... with a statement signed by a key of their own, which they call oscar's
    from appliance.keys.personal import LocalPersonalKeys

    mine = LocalPersonalKeys({"APPLIANCE_PERSONAL_KEYS": str(keys["oscar"].parent / "mallory"),
                              "APPLIANCE_PERSONAL_PASSPHRASE_FILE": str(keys["oscar"] / "personal-passphrase")},
                              ["approve", NAME, "--reason", "forged"])
    mine.enroll("oscar")
    statement = decisions.statement("approve", NAME, digest, "forged", "oscar", "officer")
    reply = mine.sign("oscar", statement)
    envelope = {"payloadType": decisions.PAYLOAD_TYPE, "payload": base64.b64encode(statement).decode(),
                "signatures": [{"keyid": reply["key_id"], "sig": reply["sig"]}]}
    seq = record_alone(ctx, Event("artifact.approve", "artifact", NAME, object_sha256=digest, reason="forged",
                                  details={"statement": envelope}), OSCAR)
    assert proven(ctx, digest) == (f"the approval statement of event {seq}: signed by key {reply['key_id'][:16]}, "
                                   f"which root has not pinned (`appliance keys pin {reply['key_id'][:16]}` as root)")


def test_a_statement_on_another_digest_a_bad_signature_or_a_revoked_key_is_refused_by_name(lab):
    ctx, keys, digest = lab
    seq = decide(ctx, keys, "approve", "ab" * 32)  # a real approval, of some other manifest
    assert proven(ctx, digest).startswith(f"the approval statement of event {seq}: it is about {NAME} (sha256 "
                                          f"abababababababab), not {NAME} (sha256 {digest[:16]})")
    good = decide(ctx, keys, "approve", digest)
    with ctx.engine.connect() as conn:
        details = json.loads(conn.execute(audit_event.select().where(audit_event.c.seq == good)).one().details)
    envelope = details["statement"]
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["predicate"]["reason"] = "reviewed, and then some"  # the signed words changed afterwards
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    altered = record_alone(ctx, Event("artifact.approve", "artifact", NAME, object_sha256=digest,
                                      details={"statement": envelope}), OSCAR)
    follower = TrailFollower(ctx.settings, ctx.engine)
    follower.start()
    event = next(e for e in follower.of(NAME, "artifact.approve") if e.seq == altered)
    _, why = decisions.check(json.loads(event.details)["statement"], people.read(ctx.settings), decision="approve",
                             subject=NAME, digest=digest)
    assert why.endswith("does not verify")
    assert proven(ctx, digest) is None  # the genuine approval still stands
    oscar_key = next(k for k in people.read(ctx.settings).keys.values() if k.user == "oscar")
    people.revoke(ctx.settings, oscar_key.key_id, "left the organisation")  # root's act, in root's file
    assert "revoked by root (left the organisation)" in proven(ctx, digest)


def test_a_revocation_deleted_from_the_database_is_not_undone(lab):
    ctx, keys, digest = lab
    decide(ctx, keys, "approve", digest)
    follower = TrailFollower(ctx.settings, ctx.engine)
    follower.start()
    revoked = decide(ctx, keys, "revoke", digest, "withdrawn after the drift check")
    assert proven(ctx, digest, follower).startswith("revoked")
    tamper(ctx.engine, delete(audit_event).where(audit_event.c.seq == revoked))  # the insider takes it back
    assert release.candidates(follower) == []  # the running gateway keeps the revocation it accepted ...
    assert proven(ctx, digest, follower) == f"log truncated: the trail now ends before event {revoked}, which the " \
                                            f"gateway had verified"  # ... and from now on serves no adapter
    restarted = proven(ctx, digest)  # ... and a restarted one finds the deletion against the anchors
    assert restarted.startswith(f"the audit trail does not verify: log truncated: events {revoked}..{revoked} were "
                                f"deleted"), restarted


def test_an_approval_by_a_makers_os_account_or_appointed_from_it_is_refused(lab):
    """Keys pinned from the kernel's account of who enrolled them: an officer key of the engineer's own OS account
    approves nothing the engineer made."""
    ctx, keys, digest = lab
    settings = ctx.settings
    pinned = people.read(settings).keys
    erin = next(k for k in pinned.values() if k.user == "erin")
    oscar = next(k for k in pinned.values() if k.user == "oscar")
    settings.people_keys_path.write_text("")  # re-pinned as an install pins them: from the kernel's uids
    people.pin(settings, **{**_fields(erin), "os_source": "peer", "os_uid": 1001, "os_user": "erin"})
    people.pin(settings, **{**_fields(oscar), "os_source": "peer", "os_uid": 1001, "os_user": "erin"})
    decide(ctx, keys, "approve", digest)
    assert proven(ctx, digest).endswith("is by oscar, the same OS account (erin, uid 1001) as the package "
                                        "statement's maker: four eyes")


def _fields(key: people.PinnedKey) -> dict:
    return {k: getattr(key, k) for k in ("key_id", "user", "role", "os_user", "os_uid", "os_source", "public_pem")}


def test_a_changed_folder_or_an_artifact_key_only_the_database_holds_is_refused(lab):
    ctx, keys, digest = lab
    decide(ctx, keys, "approve", digest)
    folder = ctx.settings.artifacts_dir / NAME
    ctx.settings.pinned_artifact_keys_path.unlink()  # the key stays in the database, not in root's pin file
    assert proven(ctx, digest).startswith(f"{folder}/model.sig: verifies with no pinned artifact key")
    (folder / "adapter.gguf").write_bytes(b"other weights")
    assert proven(ctx, digest) == f"{folder} changed since it was signed: adapter.gguf: sha256 differs"
