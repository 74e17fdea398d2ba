#!/usr/bin/env python3
"""Check an appliance bundle before anything of it is installed: Python's standard library and `openssl` only.

    verify_bundle.py BUNDLE PUBLIC_KEY_PEM PROFILE

The same checks as `appliance bundle verify`, for a host where no appliance is installed yet: manifest.sig is an
ECDSA P-256 / SHA-256 signature of manifest.json by PUBLIC_KEY_PEM (checked by `openssl dgst -verify`), every
file has the sha256 the manifest lists, nothing is missing or added, the manifest is of PROFILE, and the lock
pins every wheel by that sha256. Prints the release name (VERSION-MANIFESTDIGEST) on success; otherwise one line
per problem on stderr and exit 4.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile

SIGNED = ("manifest.json", "manifest.sig")


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def signature_problems(bundle, public_key):
    try:
        with open(os.path.join(bundle, "manifest.sig")) as f:
            der = base64.b64decode(f.read().strip(), validate=True)
    except (OSError, ValueError) as exc:
        return [f"manifest.sig: missing or unreadable ({exc})"]
    with tempfile.NamedTemporaryFile(suffix=".der") as sig:
        sig.write(der)
        sig.flush()
        done = subprocess.run(["openssl", "dgst", "-sha256", "-verify", public_key, "-signature", sig.name,
                               os.path.join(bundle, "manifest.json")], capture_output=True, text=True)
    if done.returncode != 0:
        return ["manifest.sig: not a signature of manifest.json by the release key (a changed manifest, "
                "or another release key)"]
    return []


def main(bundle, public_key, profile):
    problems = signature_problems(bundle, public_key)
    try:
        with open(os.path.join(bundle, "manifest.json"), "rb") as f:
            raw = f.read()
        manifest = json.loads(raw)
        listed = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        problems.append("manifest.json: missing or not a bundle manifest")
        return problems, None
    if manifest.get("profile") != profile:
        problems.append(f"manifest.json: a {manifest.get('profile')!r} bundle, not {profile!r}")
    present = set()
    for folder, _, names in os.walk(bundle):
        for name in names:
            rel = os.path.relpath(os.path.join(folder, name), bundle).replace(os.sep, "/")
            if rel not in SIGNED:
                present.add(rel)
    problems += [f"{name}: missing" for name in sorted(set(listed) - present)]
    problems += [f"{name}: not in the manifest" for name in sorted(present - set(listed))]
    problems += [f"{name}: sha256 differs from the manifest" for name in sorted(set(listed) & present)
                 if sha256(os.path.join(bundle, name)) != listed[name]]
    lock_name = f"requirements-{profile}.lock"
    try:
        with open(os.path.join(bundle, lock_name)) as f:
            lock = f.read()
        problems += [f"{name}: not pinned by {lock_name} with its sha256" for name in sorted(listed)
                     if name.startswith("offline-wheels/") and f"--hash=sha256:{listed[name]}" not in lock]
    except OSError:
        problems.append(f"{lock_name}: missing")
    release = f"{manifest.get('appliance_version', 'unknown')}-{hashlib.sha256(raw).hexdigest()[:12]}"
    return problems, release


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    found, name = main(*sys.argv[1:])
    if found:
        for line in found:
            print(f"bundle {sys.argv[1]}: {line}", file=sys.stderr)
        sys.exit(4)
    print(name)
