"""The locks agree with pyproject.toml and with each other: `make install` installs the dev lock, the offline
bundle carries the cpu lock, and a developer must run the libraries an installed appliance runs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "offline-wheels"
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)\s*\\?\s*$")
_HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}\s*$")


def parse_lock(path: Path) -> dict[str, tuple[Version, str]]:
    """name -> (pinned version, its file's sha256); every pin must carry one (--require-hashes refuses it else)."""
    pinned: dict[str, tuple[Version, str]] = {}
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines):
        if not line.strip() or line.startswith("#") or _HASH.match(line):
            continue
        match = _PIN.match(line)
        assert match, f"{path.name}:{n + 1}: not a `name==version \\` pin: {line!r}"
        assert n + 1 < len(lines) and _HASH.match(lines[n + 1]), f"{path.name}:{n + 1}: {line!r} has no sha256"
        pinned[canonicalize_name(match[1])] = Version(match[2]), lines[n + 1].split("sha256:")[1].strip()
    return pinned


def requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        found += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return found


def disagreements(reqs: list[Requirement], pinned: dict[str, tuple[Version, str]]) -> list[str]:
    out = []
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        version = pinned.get(canonicalize_name(req.name), (None,))[0]
        if version is None:
            out.append(f"{req}: not in the lock")
        elif not req.specifier.contains(version, prereleases=True):
            out.append(f"{req}: the lock pins {version}")
    return out


@pytest.mark.parametrize(("lock", "extras"), [("requirements-cpu.lock", ("cpu",)),
                                              ("requirements-dev.lock", ("cpu", "dev"))])
def test_every_requirement_of_pyproject_is_pinned_by_the_lock_within_its_range(lock, extras):
    assert disagreements(requirements(*extras), parse_lock(LOCKS / lock)) == []


def test_the_dev_lock_pins_every_library_of_the_appliance_to_the_bundles_file():
    cpu, dev = parse_lock(LOCKS / "requirements-cpu.lock"), parse_lock(LOCKS / "requirements-dev.lock")
    assert {name: (v, dev.get(name)) for name, v in cpu.items() if dev.get(name) != v} == {}


def test_a_disagreement_is_named():
    """The check itself: a range the pin falls outside of, and a requirement the lock lacks, are both reported."""
    pinned = {"torch": (Version("2.13.0+cpu"), "0" * 64), "streamlit": (Version("1.67.0"), "1" * 64)}
    found = disagreements([Requirement("torch==2.13.0"), Requirement("streamlit>=1.70"), Requirement("peft>=0.1")],
                          pinned)
    assert found == ["streamlit>=1.70: the lock pins 1.67.0", "peft>=0.1: not in the lock"]
