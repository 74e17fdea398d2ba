#!/usr/bin/env python3
"""Verify an appliance audit evidence pack on any machine, without the appliance.

Usage:  python3 verify_audit.py PACK_DIR_OR_ZIP [--checkpoint CHECKPOINT.json]
Needs Python 3.9+ and the `cryptography` package (for the ECDSA P-256 checkpoint signatures).

What it checks, from the raw exported events alone:
  1. every file's sha256 against manifest.sha256;
  2. sequence numbers run 1..N with no gap;
  3. each event's leaf hash, SHA-256(0x00 || canonical bytes), equals the one recorded;
  4. the RFC 6962 Merkle tree head rebuilt from those leaves matches every checkpoint in the pack (and the
     one given with --checkpoint, e.g. kept on write-once media), each signed by an audit key in the pack
     that is not revoked.
Canonical bytes of an event: UTF-8 JSON, no spaces, of the array
  [2, seq, event_id, ts, actor, actor_role, auth_method, action, object_type, object_id, object_sha256,
   outcome, reason, correlation_id, details, os_user, os_uid, os_source]
(details: the details object as sorted-key JSON text; os_user, os_uid: the operating-system account behind
the event, os_source: "peer" when the kernel reported it for a caller on the control socket, "process" for
the appliance's own process). An event with no os_user was written before OS accounts were recorded: its
array starts with 1 and ends at details.
Exit status 0 only when everything holds.
"""
import base64
import hashlib
import json
import sys
import tempfile
import zipfile
from pathlib import Path

COLUMNS = ["seq", "event_id", "ts", "actor", "actor_role", "auth_method", "action", "object_type", "object_id",
           "object_sha256", "outcome", "reason", "correlation_id", "details"]
OS_COLUMNS = ["os_user", "os_uid", "os_source"]
HEADER = "appliance audit checkpoint v1"


def fold(stack):
    if not stack:
        return hashlib.sha256(b"").digest()
    acc = stack[-1]
    for left in reversed(stack[:-1]):
        acc = hashlib.sha256(b"\x01" + left + acc).digest()
    return acc


def check_signature(cp, keys):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = keys.get(cp["key_id"])
    if key is None:
        return "signed by a key that is not a trusted audit key of this pack"
    if key["status"] == "revoked":
        return "signed by a revoked key"
    public = serialization.load_pem_public_key(key["public_pem"].encode())
    body = f"{HEADER}\n{cp['tree_size']}\n{cp['root']}\n{cp['ts']}\n".encode()
    try:
        public.verify(base64.b64decode(cp["signature"]), body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return "signature does not verify"
    return None


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    pack = Path(argv[0])
    extra = None
    if "--checkpoint" in argv:
        extra = json.loads(Path(argv[argv.index("--checkpoint") + 1]).read_text("utf-8"))
    if pack.is_file():
        tmp = tempfile.mkdtemp()
        with zipfile.ZipFile(pack) as zf:
            zf.extractall(tmp)
        pack = Path(tmp)
    problems = []
    for line in (pack / "manifest.sha256").read_text("utf-8").splitlines():
        digest, name = line.split("  ", 1)
        if hashlib.sha256((pack / name).read_bytes()).hexdigest() != digest:
            problems.append(f"{name}: sha256 differs from manifest.sha256")
    keys = {k["key_id"]: k for k in json.loads((pack / "audit-keys.json").read_text("utf-8"))}
    checkpoints = json.loads((pack / "checkpoints.json").read_text("utf-8"))
    if extra is not None:
        checkpoints.append(extra)
    targets = {}
    for cp in checkpoints:
        bad = check_signature(cp, keys)
        if bad:
            problems.append(f"checkpoint at size {cp['tree_size']}: {bad}")
        elif cp["tree_size"] > 0:
            targets.setdefault(cp["tree_size"], []).append(cp)
    stack, size, first_bad = [], 0, None
    enc = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    with open(pack / "events.jsonl", encoding="utf-8") as fh:
        for line in fh:
            event = json.loads(line)
            if event["seq"] != size + 1:
                problems.append(f"event {size + 1} is missing")
                first_bad = first_bad or size + 1
                break
            if event.get("os_user") is not None:
                data = enc.encode([2] + [event[c] for c in COLUMNS + OS_COLUMNS]).encode("utf-8")
            else:
                data = enc.encode([1] + [event[c] for c in COLUMNS]).encode("utf-8")
            leaf = hashlib.sha256(b"\x00" + data).digest()
            if leaf.hex() != event["leaf_hash"]:
                problems.append(f"event {event['seq']} was modified")
                first_bad = first_bad or event["seq"]
            index, node = size, leaf
            while index & 1:
                node = hashlib.sha256(b"\x01" + stack.pop() + node).digest()
                index >>= 1
            stack.append(node)
            size += 1
            for cp in targets.pop(size, []):
                if cp["root"] != fold(stack).hex():
                    problems.append(f"checkpoint at size {size} does not match the events: history was rewritten")
    for tree_size in sorted(targets):
        problems.append(f"truncated: a checkpoint covers {tree_size} events, the pack has {size}")
    for p in problems:
        print("FAIL:", p)
    if problems:
        if first_bad:
            print(f"first bad sequence number: {first_bad}")
        return 1
    print(f"OK: {size} events, {len(checkpoints)} signed checkpoints verified, tree head {fold(stack).hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
