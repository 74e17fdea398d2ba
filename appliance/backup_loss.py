"""What a restore loses of the trail the anchor file witnessed, and the signed marker that says so.

`restore` reads the live anchor file before anything moves. When the restored trail does not hold everything
anchored there (an older backup, or a backup of another history), the loss must be given a reason (`--reason`);
the restore then appends a marker (`audit/restores.py`) naming the lost range, the signed decisions among the
lost events that the live database still shows, the archive, the OS account that ran it and the reason, signed
with the restored trail's audit key, and checks that the restored trail verifies against the anchors with it.
"""

from __future__ import annotations

import base64
import os
import pwd
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from appliance.audit.restores import RestoreMarker, lost_range
from appliance.digests import sha256_file
from appliance.errors import ApplianceError, InputError, NotFound


def lost_by(live, leaves: bytes, size: int) -> tuple[int, int] | None:
    """The anchored events (live: `anchors.AnchorFile`) a restored trail of `size` events would lose."""
    return lost_range(live.leaves, [a.checkpoint for a in live.checkpoints], leaves, size)


def require_reason(reason: str | None, archive: Path, anchor_file: Path, lost: tuple[int, int]) -> str:
    if not reason or not reason.strip():
        raise InputError(f"{archive}: restoring it loses events {lost[0]}..{lost[1]}, which {anchor_file} "
                         f"anchored: say why with --reason (the restore marker records it, and verify names it)",
                         param="reason")
    return reason.strip()


def live_decisions(settings, first: int) -> list[dict]:
    """The signed decisions among events first.. that the live database still shows (none if it is gone)."""
    from appliance.audit.follow import DECISIONS
    from appliance.db import connect
    from appliance.db.tables import audit_event as e

    try:
        engine = connect(settings)
    except ApplianceError:  # a live database that cannot be opened has nothing to tell
        return []
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(e.c.seq, e.c.action, e.c.object_id).where(
                e.c.seq >= first, e.c.action.in_(DECISIONS), e.c.outcome == "ok").order_by(e.c.seq)).all()
    except SQLAlchemyError:  # nor one without a trail
        return []
    finally:
        engine.dispose()
    return [{"seq": int(r.seq), "action": r.action, "object": r.object_id} for r in rows]


def signed_marker(check_settings, engine, report, lost: tuple[int, int], archive: Path, created_at: str | None,
                  reason: str, decisions: list[dict], anchor_file: Path) -> RestoreMarker:
    """The marker for restoring `archive` (verified as `report`), signed with the restored trail's audit key."""
    from appliance.audit.log import _active_audit_key
    from appliance.keys.crypto import sign

    with engine.connect() as conn:
        key = _active_audit_key(conn)
    if key is None:
        raise NotFound("the restored trail has no active audit key to sign the restore marker with",
                       hint="keys.init")
    unsigned = RestoreMarker(
        tree_size=report.events, root=report.root, ts=datetime.now(UTC).isoformat(timespec="seconds"),
        key_id=key.key_id, signature="", lost_from=lost[0], lost_to=lost[1], archive=archive.name,
        archive_sha256=sha256_file(archive), backup_created_at=created_at,
        os_user=pwd.getpwuid(os.geteuid()).pw_name, sudo_user=os.environ.get("SUDO_USER") or None,
        reason=reason, lost_decisions=decisions, where=f"the end of {anchor_file}")
    signature = base64.b64encode(sign(check_settings, key, unsigned.body())).decode()
    return replace(unsigned, signature=signature)


def verify_with(engine, trust, live, marker: RestoreMarker, anchor_file: Path):
    """The restored trail verified against the live anchors with `marker` applied (nothing written yet)."""
    import copy

    from appliance.audit.policy import cadence
    from appliance.audit.verify import Trust, verify_log

    applied = copy.deepcopy(live)
    applied.restored(marker)
    with_anchors = Trust(trust.keys, pin_source=trust.pin_source, fingerprint=trust.fingerprint,
                         anchor_file=str(anchor_file), anchor_file_exists=True, cadence=cadence())
    with_anchors.take(applied)
    return verify_log(engine, with_anchors)
