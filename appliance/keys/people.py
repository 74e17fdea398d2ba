"""The people's personal public keys, pinned outside the database: whose signed decisions count.

`Settings.people_keys_path` (an install's /etc/appliance/people-keys.jsonl, root's; in development the home's
keys folder) holds one JSON object a line, appended and never rewritten:
- `{"op": "pin", "key_id", "user", "role", "os_user", "os_uid", "os_source", "public_pem", "ts"}`: root vouches
  that this key is the appliance account's `user`, acting in `role` (officer or engineer), enrolled from that OS
  account (`os_source` "peer": the kernel said so on the control socket; "process": in-process development use);
- `{"op": "revoke", "key_id", "reason", "ts"}`: nothing the key signs counts any more, whenever it was signed.

Whoever can write the database or the home cannot add, change or revoke a line; an install makes the file root's
(0644). A line that does not parse fails the whole file closed: no key of it is trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from appliance.errors import InputError, PermissionDenied, StorageError
from appliance.keys.crypto import key_id_of

ROLES = ("officer", "engineer")


@dataclass(frozen=True)
class PinnedKey:
    key_id: str
    user: str
    role: str
    os_user: str
    os_uid: int
    os_source: str
    public_pem: str
    pinned_at: str
    revoked: str | None = None  # why, once revoked

    def public_key(self):
        return serialization.load_pem_public_key(self.public_pem.encode())

    def same_person(self, other: PinnedKey) -> str | None:
        """How this key's holder is `other`'s, or None: the same key, appliance account or (kernel-known) OS account."""
        if self.key_id == other.key_id:
            return "the same key"
        if self.user == other.user:
            return f"the same appliance account ({self.user})"
        if self.os_source == other.os_source == "peer" and self.os_uid == other.os_uid:
            return f"the same OS account ({self.os_user}, uid {self.os_uid})"
        return None


@dataclass
class PeopleKeys:
    keys: dict[str, PinnedKey]
    problem: str | None = None  # the file could not be read whole: nothing in it is trusted

    def get(self, key_id: str) -> PinnedKey | None:
        return None if self.problem else self.keys.get(key_id)


def read(settings) -> PeopleKeys:
    path: Path = settings.people_keys_path
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return PeopleKeys({}, f"no personal key is pinned yet ({path} does not exist)")
    except OSError as exc:
        return PeopleKeys({}, f"{path}: cannot read the pinned personal keys: {exc.strerror}")
    keys: dict[str, PinnedKey] = {}
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if entry["op"] == "pin":
                key = PinnedKey(str(entry["key_id"]), str(entry["user"]), str(entry["role"]), str(entry["os_user"]),
                                int(entry["os_uid"]), str(entry["os_source"]), str(entry["public_pem"]),
                                str(entry["ts"]))
                if key_id_of(key.public_key()) != key.key_id or key.role not in ROLES:
                    raise ValueError("key_id or role")
                keys.setdefault(key.key_id, key)
            elif entry["op"] == "revoke":
                key_id = str(entry["key_id"])
                if key_id in keys:
                    keys[key_id] = PinnedKey(**{**keys[key_id].__dict__, "revoked": str(entry["reason"])})
            else:
                raise ValueError("op")
        except (ValueError, KeyError, TypeError) as exc:
            return PeopleKeys({}, f"{path} line {number}: not a pinned key ({exc}): the file was edited")
    return PeopleKeys(keys)


def check_writable(settings) -> None:
    """PermissionDenied unless this process may append to the pin file: root's act, on an install."""
    path: Path = settings.people_keys_path
    with contextlib.suppress(OSError):  # a home this account may not even look into: refused below
        if not path.parent.exists() and path.parent == settings.keys_dir:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not os.access(path.parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise PermissionDenied(f"{path}: only its owner pins personal keys (root, on an install): run "
                               f"`appliance keys pin` as root")


def _append(settings, entry: dict) -> None:
    path: Path = settings.people_keys_path
    check_writable(settings)
    line = (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if os.fstat(fd).st_size == 0:
                os.fchmod(fd, 0o644)  # readable by the services, whatever root's umask (the command's is 0077)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"{path}: cannot append: {exc.strerror}") from None


def pin(settings, *, key_id: str, user: str, role: str, os_user: str, os_uid: int, os_source: str,
        public_pem: str) -> PinnedKey:
    if role not in ROLES:
        raise InputError(f"{user} is {role}: only officers' and engineers' keys sign decisions")
    current = read(settings)
    if current.keys.get(key_id):
        raise InputError(f"key {key_id[:16]} is already pinned for {current.keys[key_id].user}")
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    entry = {"op": "pin", "key_id": key_id, "user": user, "role": role, "os_user": os_user, "os_uid": os_uid,
             "os_source": os_source, "public_pem": public_pem, "ts": stamp}
    _append(settings, entry)
    return PinnedKey(key_id, user, role, os_user, os_uid, os_source, public_pem, stamp)


def revoke(settings, key_id: str, reason: str) -> PinnedKey:
    current = read(settings)
    if current.problem:
        raise StorageError(current.problem)
    matches = [k for k in current.keys.values() if k.key_id.startswith(key_id.lower())] if len(key_id) >= 8 else []
    if len(matches) != 1:
        raise InputError(f"no pinned key {key_id!r}" if not matches else f"key id {key_id!r} is ambiguous")
    key = matches[0]
    if key.revoked:
        raise InputError(f"key {key.key_id[:16]} of {key.user} is already revoked")
    if not reason.strip():
        raise InputError("a revocation needs a reason", param="reason")
    _append(settings, {"op": "revoke", "key_id": key.key_id, "reason": reason.strip(),
                       "ts": datetime.now(UTC).isoformat(timespec="seconds")})
    return PinnedKey(**{**key.__dict__, "revoked": reason.strip()})
