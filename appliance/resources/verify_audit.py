#!/usr/bin/env python3
"""Verify an appliance audit evidence pack on any machine, without the appliance.

Usage:  python3 verify_audit.py PACK_DIR_OR_ZIP --key AUDIT-KEY.pem [--key ...] [--checkpoint KEPT.json]
Needs Python 3.9+ and the `cryptography` package (for the ECDSA P-256 checkpoint signatures).

--key names the audit public keys you trust, obtained outside the pack (the appliance's pinned key file,
/etc/appliance/audit-keys.pem, or `appliance keys export-public --purpose audit`): a checkpoint signed by a
key that is only in the pack is refused, since whoever wrote the database could have put it there.
--checkpoint takes a kept checkpoint, or a file of them one per line (a copy of the anchor file, or of the
journal's lines: journalctl -t appliance-audit -o cat); such a copy also holds every event's leaf hash as it was
committed ("appliance audit leaves v1" lines: "from", the first event's number, and "leaves", the hashes as one
hex string), and each must match the pack's event at that number.

What it checks, from the raw exported events alone:
  1. every file's sha256 against manifest.sha256;
  2. sequence numbers run 1..N with no gap;
  3. each event's leaf hash, SHA-256(0x00 || canonical bytes), equals the one recorded;
  4. the RFC 6962 Merkle tree head rebuilt from those leaves matches every checkpoint in the pack (and those
     given with --checkpoint, e.g. kept on write-once media), each signed by a key given with --key that the
     pack does not list as revoked;
  5. every leaf in a copy given with --checkpoint is the leaf of the pack's event at its number (leaves past
     the pack's newest event are noted: a copy kept after the export goes on past it);
  6. a restore marker in such a copy ("appliance audit restore v1": a restore of an older backup lost events
     lost_from..lost_to) is signed by a key given with --key over its body, "appliance audit restore v1", a
     newline and the sorted-key JSON, no spaces, of every field but "format" and "signature"; what the copy
     anchored before it from lost_from on is then set aside (the loss is printed), and its tree head must match.
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
LEAVES = "appliance audit leaves v1"
RESTORE = "appliance audit restore v1"


def fold(stack):
    if not stack:
        return hashlib.sha256(b"").digest()
    acc = stack[-1]
    for left in reversed(stack[:-1]):
        acc = hashlib.sha256(b"\x01" + left + acc).digest()
    return acc


def trusted_keys(paths):
    """key_id (sha256 of the DER public key) -> public key, for every PEM public key in the files given."""
    import re

    from cryptography.hazmat.primitives import serialization

    keys = {}
    for path in paths:
        for block in re.findall(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", Path(path).read_bytes(),
                                re.S):
            public = serialization.load_pem_public_key(block)
            der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            keys[hashlib.sha256(der).hexdigest()] = public
    return keys


def check_signature(cp, trusted, pack_keys):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    if pack_keys.get(cp["key_id"], {}).get("status") == "revoked":
        return "signed by a revoked key"
    public = trusted.get(cp["key_id"])
    if public is None:
        where = "found only in the pack" if cp["key_id"] in pack_keys else "unknown"
        return f"signed by key {cp['key_id'][:16]}, not one given with --key ({where})"
    body = f"{HEADER}\n{cp['tree_size']}\n{cp['root']}\n{cp['ts']}\n".encode()
    if cp.get("format") == RESTORE:
        fields = {k: v for k, v in cp.items() if k not in ("format", "signature")}
        body = (RESTORE + "\n" + json.dumps(fields, sort_keys=True, separators=(",", ":"))).encode()
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
    key_files = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--key"]
    if not key_files:
        print("give --key AUDIT-KEY.pem: the audit public key you trust, from outside the pack (the appliance's "
              "pinned key file, /etc/appliance/audit-keys.pem)")
        return 2
    trusted = trusted_keys(key_files)
    extra = []
    for i, a in enumerate(argv[:-1]):
        if a == "--checkpoint":
            text = Path(argv[i + 1]).read_text("utf-8").strip()
            try:  # one checkpoint, or a list of them ...
                data = json.loads(text)
                extra += data if isinstance(data, list) else [data]
            except ValueError:  # ... or one a line
                extra += [json.loads(line) for line in text.splitlines() if line.strip()]
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
    anchored = {}  # seq -> leaf hex, from the leaf lines of a kept copy
    kept = []
    for item in extra:  # in order: a restore marker sets aside what was anchored before it from lost_from on
        if item.get("format") == LEAVES:
            hexed = item["leaves"]
            for i in range(0, len(hexed), 64):
                anchored.setdefault(item["from"] + i // 64, set()).add(hexed[i:i + 64])
        elif item.get("format") == RESTORE:
            cut = item["lost_from"]
            anchored = {seq: leaf for seq, leaf in anchored.items() if seq < cut}
            kept = [cp for cp in kept if cp["tree_size"] < cut]
            print(f"note: events {cut}..{item['lost_to']} were lost at the restore of {item['archive']} at "
                  f"{item['ts']} by {item['os_user']}: {item['reason']}")
            kept.append(item)
        else:
            kept.append(item)
    checkpoints += kept
    targets = {}
    for cp in checkpoints:
        bad = check_signature(cp, trusted, keys)
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
            if anchored.pop(event["seq"], {leaf.hex()}) != {leaf.hex()}:
                problems.append(f"event {event['seq']} differs from its leaf anchored as it was committed")
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
    if anchored:  # a journal kept after the export goes on past the pack: said, not failed
        print(f"note: events {min(anchored)}..{max(anchored)} were anchored after the pack's newest event ({size}): "
              f"written after the export, or deleted before it (compare with the appliance's own `audit verify`)")
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
