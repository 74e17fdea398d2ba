"""The audit policy (`policies/audit.yaml`): the checkpoint cadence the signer keeps and verification holds it to."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cadence(_Strict):
    every_events: int = Field(default=1000, ge=1, le=10_000_000)
    every_seconds: int = Field(default=300, ge=1, le=31_536_000)
    grace_seconds: int = Field(default=60, ge=0, le=86_400)


class AuditPolicy(_Strict):
    version: Literal[1] = 1
    checkpoint: Cadence = Cadence()


_cached: dict[tuple[str, int], Cadence] = {}
_looked: list = [0.0, None, None]  # when the file was last looked at, what it held, under which APPLIANCE_POLICIES


def cadence() -> Cadence:
    """The installed cadence, read without recording (appends consult it): the file is looked at no more than
    once a second, and parsed again only when it changed."""
    import os
    import time

    from appliance import policies

    now = time.monotonic()
    where = os.environ.get("APPLIANCE_POLICIES")
    if _looked[1] is not None and now - _looked[0] < 1.0 and _looked[2] == where:
        return _looked[1]
    path = policies.path_of("audit")
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except OSError:
        key = (str(path), -1)  # read() names the problem
    if key not in _cached:
        _cached.clear()
        _cached[key] = policies.read("audit", path)[0].checkpoint
    _looked[:] = [now, _cached[key], where]
    return _cached[key]
