"""Write appliance/resources/given_names.txt: the given names of Faker's person providers (MIT), every locale
written in the Latin alphabet, one a line, sorted, for the names gazetteer beside the US Census lists.

Run:  .venv/bin/python scripts/given_names.py   (Faker is a development dependency; the list ships as data)
"""

from __future__ import annotations

import importlib
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "appliance" / "resources" / "given_names.txt"
LISTS = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary")


def _latin(name: str) -> bool:
    return bool(name) and all(c.isalpha() and ord(c) < 0x250 for c in name.replace("-", ""))


def collect() -> list[str]:
    from faker.config import AVAILABLE_LOCALES

    found: set[str] = set()
    for locale in sorted(AVAILABLE_LOCALES):
        try:
            provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        except ImportError:
            continue
        for attr in LISTS:
            value = next((cls.__dict__[attr] for cls in provider.__mro__ if attr in cls.__dict__), None)
            if isinstance(value, (list, tuple, set, frozenset, dict)):
                found.update(n for n in value if isinstance(n, str) and _latin(n))
    return sorted(found)


if __name__ == "__main__":
    names = collect()
    OUT.write_text("".join(f"{n}\n" for n in names), "utf-8")
    print(f"wrote {len(names)} given names to {OUT}")
