"""The evidence pack: everything an auditor needs to verify the trail alone, in one zip."""

from __future__ import annotations

import hashlib
import json
import zipfile
from importlib import resources

from sqlalchemy import select

from appliance.audit.checkpoints import checkpoint_of
from appliance.audit.events import LEAF
from appliance.audit.log import last_checkpoint
from appliance.db.tables import audit_checkpoint, audit_event, signing_key
from appliance.errors import InputError

README = """# Audit evidence pack

Exported by the appliance at {exported_at}; {events} events; newest signed checkpoint covers {covered} events.

| file | what |
| --- | --- |
| events.jsonl | every audit event, one JSON object a line, in sequence order, with its recorded leaf hash |
| checkpoints.json | signed tree heads (RFC 6962 Merkle roots) over the first N events |
| audit-keys.json | the audit keys the database holds, with their status: revocations only; trust your --key |
| verify_audit.py | a standalone verifier (Python 3.9+, `cryptography`) |
| manifest.sha256 | sha256 of every other file |

## How to verify

With the appliance:    appliance audit verify                    (on the appliance itself)
Without the appliance: python3 verify_audit.py THIS.zip --key AUDIT-KEY.pem [--checkpoint KEPT.json]

--key is the audit public key you trust, taken from outside this pack (the appliance's pinned key file,
/etc/appliance/audit-keys.pem): audit-keys.json is listed for reference and revocations only, since whoever
could write the database could have added a key of their own. Pass checkpoints you kept elsewhere (write-once
media, the SIEM's copy of the journal's appliance-audit lines, one per line) with --checkpoint: they prove the
log was not truncated or rewritten since then, even by someone holding the appliance's keys. Exit status 0 means
every event, every checkpoint and every signature holds; otherwise the first bad sequence number is printed.
The canonical form that each leaf hash covers is described at the top of verify_audit.py.
"""


def export_pack(engine, out) -> dict:
    """Write the pack to `out` (a path, or a file a person asked for: `userfiles.OutputFile`)."""
    from appliance.userfiles import as_output

    out = as_output(out)
    if not out.name.endswith(".zip"):
        raise InputError(f"{out.name}: the evidence pack is a .zip file")
    files: dict[str, bytes] = {}
    with engine.connect() as conn:
        rows = conn.execute(select(*LEAF, audit_event.c.leaf_hash).order_by(audit_event.c.seq)).all()
        files["events.jsonl"] = "".join(json.dumps(dict(r._mapping), ensure_ascii=False) + "\n"
                                        for r in rows).encode("utf-8")
        cps = conn.execute(select(audit_checkpoint).order_by(audit_checkpoint.c.tree_size)).all()
        files["checkpoints.json"] = json.dumps([checkpoint_of(c).as_dict() for c in cps], indent=1).encode()
        k = signing_key.c
        keys = conn.execute(select(k.key_id, k.status, k.public_pem, k.created_at, k.revoked_at)
                            .where(k.purpose == "audit").order_by(k.created_at)).all()
        files["audit-keys.json"] = json.dumps([dict(key._mapping) for key in keys], indent=1).encode()
        last = last_checkpoint(conn)
    from datetime import UTC, datetime

    summary = {"events": len(rows), "checkpoints": len(cps), "covered": last.tree_size if last else 0,
               "exported_at": datetime.now(UTC).isoformat(timespec="seconds")}
    files["verify_audit.py"] = resources.files("appliance").joinpath("resources/verify_audit.py").read_bytes()
    files["README.md"] = README.format(**summary).encode()
    files["manifest.sha256"] = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                                       for name, data in sorted(files.items())).encode()
    with out.open() as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return {**summary, "path": out.name}
