"""The locks agree with pyproject.toml and with each other: `make install` installs the dev lock, the offline
bundle carries the cpu lock, and a developer must run the libraries an installed appliance runs."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from appliance.bundle import read_lock

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "offline-wheels"


def parse_lock(path: Path) -> dict[str, tuple[Version, str]]:
    """name -> (pinned version, its file's sha256), as the bundle reads a lock; every pin must carry a sha256
    (pip's --require-hashes refuses one without)."""
    text = path.read_text()
    pinned = read_lock(text)
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    heads = [line.split("==")[0] for line in lines if not line.startswith(" ")]
    assert [h for h in heads if canonicalize_name(h) not in pinned] == [], f"{path.name}: not `name==version` + sha256"
    assert len(lines) == 2 * len(pinned), f"{path.name}: a line that is neither a pin nor its sha256"
    return {name: (Version(version), sha) for name, (version, sha) in pinned.items()}


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
