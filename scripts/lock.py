"""Write offline-wheels/requirements-<profile>.lock: every distribution the profile installs, pinned, with the
sha256 of the file pip's resolver chose for this platform (Linux x86-64, CPython 3.11). `make lock` runs it on a
connected machine; the lock is committed and `appliance bundle build` fetches exactly what it names.

The dev profile is what `make install` installs (`--require-hashes`): the cpu profile's pins, unchanged, plus the
test and documentation tools, so a developer runs the same libraries as an installed appliance. It is resolved
against the cpu lock, which must be written first.

    python scripts/lock.py cpu|cuda|dev
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "offline-wheels"
PROFILES = {  # the extras installed and the constraints applied
    "cpu": ("cpu", [LOCKS / "constraints-cpu.txt"]),
    "cuda": ("gpu", []),
    "dev": ("cpu,dev", [LOCKS / "constraints-cpu.txt", LOCKS / "requirements-cpu.lock"]),
}
# PyPI's torchvision does not load beside the CPU torch build and then Unsloth refuses to import: `make install`
# removes it, and the bundle never carries it (it installs with --no-deps from this complete list).
LEFT_OUT = {"cpu": {"torchvision"}, "cuda": set(), "dev": {"torchvision"}}


def pins(lock: Path) -> list[str]:
    """A lock's `name==version` lines, without their hashes (a constraints file takes no hashes)."""
    return [line.split()[0] for line in lock.read_text().splitlines() if "==" in line and not line.startswith("#")]


def main(profile: str) -> int:
    extra, constraints = PROFILES[profile]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                   "--report", str(report), f"{ROOT}[{extra}]"]
        for n, constraint in enumerate(constraints):
            if constraint.suffix == ".lock":  # pinned as the lock pins them, hashes aside
                plain = Path(tmp) / f"pins-{n}.txt"
                plain.write_text("\n".join(pins(constraint)) + "\n")
                constraint = plain
            command[4:4] = ["-c", str(constraint)]
        subprocess.run(command, check=True)
        resolved = json.loads(report.read_text())["install"]
    lines = [f"# The {profile} profile, resolved by pip for Linux x86-64 / CPython 3.11 (`make lock` rewrites it).",
             "# `appliance bundle build --profile " + profile + "` fetches exactly these files; the bundle's own lock",
             "# then pins the wheels it carries (built ones included) by their sha256.", ""]
    if profile == "dev":
        lines[1:3] = ["# `make install` installs exactly these files (--require-hashes): requirements-cpu.lock's pins",
                      "# unchanged, plus the tools the tests and the docs need."]
    for item in sorted(resolved, key=lambda i: i["metadata"]["name"].lower()):
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if name == "appliance" or name.lower() in LEFT_OUT[profile]:
            continue  # the appliance is built from this checkout into the bundle
        hashes = item["download_info"].get("archive_info", {}).get("hashes", {})
        if "sha256" not in hashes:
            raise SystemExit(f"{name}=={version}: the resolver gave no sha256 ({item['download_info'].get('url')})")
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{hashes['sha256']}")
    out = LOCKS / f"requirements-{profile}.lock"
    out.write_text("\n".join(lines) + "\n")
    print(f"{out.relative_to(ROOT)}: {len(lines) - 4} distributions")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in PROFILES:
        raise SystemExit(f"usage: {sys.argv[0]} {'|'.join(PROFILES)}")
    raise SystemExit(main(sys.argv[1]))
