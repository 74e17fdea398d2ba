"""docs/architecture.md's layout table describes the code as it is: every module the table names exists, and
every module of the appliance is named by the table (itself, or the package folder holding it)."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def _layout_paths() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return {path for row in rows for path in re.findall(r"`((?:appliance|ansible)/[\w/.-]*)`", row.split(" | ")[0])}


def test_every_module_the_layout_table_names_exists():
    missing = sorted(p for p in _layout_paths() if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_module_of_the_appliance_is_in_the_layout_table():
    named = _layout_paths()
    unnamed = []
    for module in sorted((ROOT / "appliance").rglob("*.py")):
        rel = module.relative_to(ROOT).as_posix()
        if module.name == "__init__.py" or rel.startswith("appliance/resources/"):
            continue
        folders = [f"{p.as_posix()}/" for p in Path(rel).parents if p.as_posix() not in (".", "appliance")]
        if rel not in named and not any(f in named for f in folders):
            unnamed.append(rel)
    assert not unnamed, f"modules docs/architecture.md's layout table does not name: {unnamed}"
