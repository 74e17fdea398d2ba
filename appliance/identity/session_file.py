"""Where a person keeps their session: a 0600 file in their own home, one per appliance home. Read and written
by the person's own process (in-process, or the `appliance` client of the control socket); light, so the client
needs nothing else of the appliance to find it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from appliance.errors import PermissionDenied
from appliance.fsutil import atomic_write_bytes


class SessionStore(Protocol):
    """Where the person keeps their session: read, replace, forget."""

    def read(self) -> dict | None: ...

    def write(self, data: dict) -> None: ...

    def clear(self) -> None: ...


def session_path(env: Mapping[str, str], home: str) -> Path:
    """The person's session file for the appliance at `home`: APPLIANCE_SESSION_FILE, or one file per home
    under XDG_STATE_HOME (default ~/.local/state)/appliance/."""
    explicit = env.get("APPLIANCE_SESSION_FILE")
    if explicit:
        return Path(explicit)
    state = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    tag = hashlib.sha256(str(home).encode()).hexdigest()[:16]
    return state / "appliance" / f"session-{tag}.json"


class FileSessionStore:
    def __init__(self, path: Path):
        self.path = path

    def read(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            raise PermissionDenied(f"{self.path}: unreadable session file", hint="login") from None
        return data if isinstance(data, dict) else None

    def write(self, data: dict) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_bytes(self.path, json.dumps(data).encode())

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
