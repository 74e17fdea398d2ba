"""Proofs from the trail itself, for decisions that must not trust a column: the approval that lets an adapter
be served is an `artifact.approve` event, recomputed from its columns and proven included (RFC 9162 inclusion
proof) in the newest checkpoint signed by a pinned audit key, with no `artifact.revoke` after it.
"""

from __future__ import annotations

from sqlalchemy import select

from appliance.audit import merkle
from appliance.audit.checkpoints import Checkpoint, checkpoint_of
from appliance.audit.events import LEAF, canonical
from appliance.audit.log import perfect_lookup
from appliance.db.tables import audit_checkpoint, audit_event


def _newest_trusted_checkpoint(conn, trust) -> Checkpoint | None:
    from appliance.audit.verify import check_signature, trusted_audit_keys

    trusted, revoked, in_database = trusted_audit_keys(conn, trust)
    for row in conn.execute(select(audit_checkpoint).order_by(audit_checkpoint.c.tree_size.desc()).limit(20)).all():
        cp = checkpoint_of(row)
        if check_signature(cp, trusted, revoked, in_database) is None:
            return cp
    return None


def included(conn, trust, seq: int) -> str | None:
    """None when event `seq`, rehashed from its columns, is proven in the newest trusted checkpoint."""
    cp = _newest_trusted_checkpoint(conn, trust)
    if cp is None:
        return "no checkpoint signed by a pinned audit key"
    if cp.tree_size < seq:
        return f"event {seq} is not yet covered by a signed checkpoint (the newest covers {cp.tree_size})"
    row = conn.execute(select(*LEAF).where(audit_event.c.seq == seq)).first()
    leaf = merkle.leaf_hash(canonical(tuple(row)))
    try:
        path = merkle.inclusion_path(seq - 1, cp.tree_size, perfect_lookup(conn))
    except Exception as exc:  # noqa: BLE001 - a missing node is a failed proof
        return f"no inclusion proof for event {seq}: {exc}"
    if not merkle.verify_inclusion(leaf, seq - 1, cp.tree_size, path, bytes.fromhex(cp.root)):
        return f"event {seq} is not in the signed tree of {cp.tree_size} events (the trail was altered)"
    return None


def approval_problem(engine, trust, name: str, manifest_digest: str) -> str | None:
    """None when the trail proves this artifact (this manifest) approved and not revoked since; else why not."""
    with engine.connect() as conn:
        e = audit_event.c
        about = (e.object_type == "artifact", e.object_id == name, e.outcome == "ok")
        approved = conn.execute(select(e.seq).where(e.action == "artifact.approve", *about,
                                                    e.object_sha256 == manifest_digest)
                                .order_by(e.seq.desc()).limit(1)).scalar()
        if approved is None:
            return (f"no approval event for manifest {manifest_digest[:16]} in the audit trail: its status was set "
                    "outside the approval workflow")
        revoked = conn.execute(select(e.seq).where(e.action == "artifact.revoke", *about, e.seq > approved)
                               .order_by(e.seq).limit(1)).scalar()
        if revoked is not None:
            return f"revoked in the audit trail (event {revoked}) after its approval (event {approved})"
        problem = included(conn, trust, int(approved))
    return None if problem is None else f"its approval (event {approved}) is not proven: {problem}"
