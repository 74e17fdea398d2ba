"""Whether an adapter may be served, proven from what its makers and its approver signed, never from a column.

An artifact is servable when, in the trail as the gateway follows it (`audit/follow.py`):
- its folder (from its name) is signed by a pinned artifact key that no accepted `key.revoke` event revoked, and its
  files give the manifest digest the statements name;
- an engineer's pinned key signed its `sign` statement for that digest (the makers: `sign` and `package`);
- an officer's pinned key signed an `approve` statement for that digest, and that key's holder is none of the
  makers' (not the same key, appliance account or kernel-known OS account), nor was their account created, reset
  or given its role from the OS account they approve from (`appointed-by-self`);
- no accepted `artifact.revoke` names it (a revocation stops serving, signed or not: only adding one is possible),
  nor one a restore lost (the restore marker names it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from appliance.artifacts import decisions
from appliance.artifacts.registry import folder_of
from appliance.audit.follow import Accepted, TrailFollower
from appliance.errors import ApplianceError
from appliance.keys import people


@dataclass(frozen=True)
class Candidate:
    name: str
    digest: str  # the manifest digest an approval statement names
    approved_in: int  # the approval's event


def candidates(follower: TrailFollower) -> list[Candidate]:
    """Artifacts with an accepted approval event and no accepted revocation: the ones worth proving."""
    revoked = {d.object_id for d in follower.decisions if d.action == "artifact.revoke" and d.outcome == "ok"}
    newest: dict[str, Candidate] = {}
    for d in follower.decisions:
        if d.action == "artifact.approve" and d.outcome == "ok" and d.object_id not in revoked:
            newest[d.object_id] = Candidate(d.object_id, d.object_sha256, d.seq)
    return list(newest.values())


def _statement(event: Accepted) -> dict | None:
    try:
        return json.loads(event.details).get("statement")
    except (ValueError, AttributeError):
        return None


def prove(settings, follower: TrailFollower, name: str, digest: str, model: str) -> tuple[str | None, str]:
    """(None, what was proven) when artifact `name` with manifest `digest` may be served on `model`; else (why not,
    "")."""
    if follower.problem:
        return follower.problem, ""
    if follower.of(name, "artifact.revoke"):
        return f"revoked in the audit trail (event {follower.of(name, 'artifact.revoke')[0].seq})", ""
    if name in follower.lost_revocations:
        return (f"its revocation was lost at the restore at {follower.lost_revocations[name]}: it stays unserved "
                f"(revoke it again, so that the restored trail says so)"), ""
    pinned = people.read(settings)
    makers, problems = [], []
    for event in follower.of(name, "artifact.sign", "artifact.package"):
        found, why = decisions.check(_statement(event) or {}, pinned, decision=("sign", "package"), subject=name,
                                     digest=digest)
        if found:
            makers.append((found, event))
        else:
            problems.append(f"the {event.action.split('.')[1]} statement of event {event.seq}: {why}")
    if not any(found.decision == "sign" for found, _ in makers):
        return "no signing statement by a pinned engineer's key for this manifest" + \
            (f" ({problems[0]})" if problems else ""), ""
    approvals, refused = [], []
    for event in follower.of(name, "artifact.approve"):
        found, why = decisions.check(_statement(event) or {}, pinned, decision="approve", subject=name, digest=digest)
        if found is None:
            refused.append(f"the approval statement of event {event.seq}: {why}")
            continue
        same = next(((maker, how) for maker, _ in makers if (how := found.key.same_person(maker.key))), None)
        if same:
            refused.append(f"the approval statement of event {event.seq} is by {found.signer}, {same[1]} as the "
                           f"{same[0].decision} statement's maker: four eyes")
            continue
        appointed = _appointed_by_self(follower, found.key, event)
        if appointed:
            refused.append(f"the approval statement of event {event.seq}: {appointed}")
            continue
        approvals.append((found, event))
    if not approvals:
        return (refused[-1] if refused else "no approval statement by a pinned officer's key"), ""  # the newest
    problem = _folder_problem(settings, follower, name, digest, model)
    if problem:
        return problem, ""
    found, event = approvals[-1]
    return None, (f"approved by {found.signer} (key {found.key.key_id[:16]}, event {event.seq}), signed by "
                  f"{', '.join(sorted({m.signer for m, _ in makers}))}; every event accepted against its anchor")


def _appointed_by_self(follower: TrailFollower, key: people.PinnedKey, approval: Accepted) -> str | None:
    """The approver's account was created, reset or given its role from the OS account the approval came from."""
    if approval.os_source != "peer":
        return None  # in-process (one account plays every role on a developer's machine): not applicable
    for event in follower.of(key.user, "user.create", "user.set_role", "user.reset_password"):
        if event.seq < approval.seq and event.os_source == "peer" and event.os_uid == approval.os_uid:
            return (f"{key.user}'s account was {_WORDS[event.action]} by {event.actor} from OS uid {event.os_uid}, "
                    f"the OS account it approves from (appointed-by-self)")
    return None


_WORDS = {"user.create": "created", "user.set_role": "given its role", "user.reset_password": "reset"}


def _folder_problem(settings, follower: TrailFollower, name: str, digest: str, model: str) -> str | None:
    from appliance.artifacts.package import SIGNATURE, file_digests
    from appliance.artifacts.signing import _differences, _statement, _verifies
    from appliance.digests import manifest_digest
    from appliance.keys import pins
    from appliance.keys.crypto import pem_of

    try:
        directory = folder_of(settings, name)
        if directory.is_symlink() or not directory.is_dir():
            return f"{directory}: no artifact folder"
        files = file_digests(directory)
    except ApplianceError as exc:
        return str(exc)
    try:  # what its signature lists, read only to name what changed (the signature itself is checked below)
        listed = {r["name"]: r["digest"] for r in _statement(directory / SIGNATURE)["predicate"]["resources"]}
    except (ValueError, OSError, KeyError, TypeError):
        listed = {}
    changed = _differences(listed, files) if listed else []
    if changed:
        return f"{directory} changed since it was signed: {'; '.join(changed)}"
    if manifest_digest(sorted(files.items())) != digest:
        return f"the files of {directory} are not the manifest the statements name (sha256 {digest[:16]})"
    keys, pin_problem = pins.read(settings, "artifact")
    revoked = {d.object_id for d in follower.decisions if d.action == "key.revoke" and d.outcome == "ok"}
    signature = directory / SIGNATURE
    signer = next((k for k, key in keys.items() if signature.is_file() and _verifies(directory, signature,
                                                                                      pem_of(key))), None)
    if signer is None:
        return f"{signature}: verifies with no pinned artifact key" + (f" ({pin_problem})" if pin_problem else "")
    if signer in revoked:
        return f"signed with artifact key {signer[:16]}, revoked in the audit trail"
    base = _base_model(directory)
    if base != model:
        return f"trained on {base!r}, not on the served model {model!r}"
    return None


def _base_model(directory: Path) -> str | None:
    try:
        statement = json.loads((directory / "provenance.json").read_text())
        return statement["predicate"]["buildDefinition"]["externalParameters"]["baseModel"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
