"""Where the shipped policies live: a checkout's `policies/`, or the copy a wheel installs.

`APPLIANCE_POLICIES` (a folder laid out like `policies/`) overrides both; the Ansible install points it at
`/etc/appliance/policies`, which the operators own and edit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def policies_source() -> str:
    """Where the policies come from: "installed" (APPLIANCE_POLICIES), "checkout" or "wheel"."""
    if os.environ.get("APPLIANCE_POLICIES"):
        return "installed"
    return "checkout" if (Path(__file__).resolve().parents[1] / "policies").is_dir() else "wheel"


def policies_dir() -> Path:
    source = policies_source()
    if source == "installed":
        return Path(os.environ["APPLIANCE_POLICIES"])
    if source == "checkout":
        return Path(__file__).resolve().parents[1] / "policies"
    # A wheel installs the same files as data under the environment's prefix (pyproject's data-files).
    return Path(sys.prefix) / "share" / "appliance" / "policies"
