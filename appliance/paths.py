"""Where the shipped policies live: a checkout's `policies/`, or the copy a wheel installs.

`APPLIANCE_POLICIES` (a folder laid out like `policies/`) overrides both; the Ansible install points it at
`/etc/appliance/policies`, which the operators own and edit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def policies_dir() -> Path:
    chosen = os.environ.get("APPLIANCE_POLICIES")
    if chosen:
        return Path(chosen)
    checkout = Path(__file__).resolve().parents[1] / "policies"
    if checkout.is_dir():
        return checkout
    # A wheel installs the same files as data under the environment's prefix (pyproject's data-files).
    return Path(sys.prefix) / "share" / "appliance" / "policies"
