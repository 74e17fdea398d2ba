"""The adapter set follows the audit trail: an artifact whose release the trail proves (its makers' and its
approver's signed statements, verified as the gateway follows the trail against its anchors; its folder signed by a
pinned artifact key) is loaded into the backend and only then served; a revoked one, or one whose signing key was
revoked, is refused at once and then unloaded."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx

from appliance.audit.events import Event
from appliance.context import Actor, Context
from appliance.errors import ApplianceError
from appliance.serve.audit_writer import AuditUnavailable, AuditWriter
from appliance.serve.backends import AdapterFiles, Backend

GATEWAY = Actor("gateway", "system", "system")
log = logging.getLogger("appliance.serve")


class AdapterSet:
    def __init__(self, ctx: Context, backend: Backend, model: str, audit: AuditWriter) -> None:
        from appliance.audit.follow import TrailFollower

        self.ctx, self.backend, self.model, self.audit = ctx, backend, model, audit
        self.loaded: dict[str, str] = {}  # adapter name -> artifact manifest digest
        self.refused: dict[str, str] = {}  # adapter name -> manifest digest whose load was refused
        self.trail = TrailFollower(ctx.settings, ctx.engine)
        self._started = False
        self._trail_problem: str | None = None
        self._keys_revoked = 0

    def wanted(self) -> dict[str, tuple[str, str]]:
        """Artifacts the trail shows approved and not revoked, as the gateway verified it against the anchors:
        name -> (manifest digest, directory). Nothing while the trail does not verify."""
        from appliance.artifacts.registry import folder_of
        from appliance.artifacts.release import candidates

        if not self._started:
            self._started = True
            self.trail.start()
        else:
            self.trail.follow()
        if self.trail.problem:
            if self.trail.problem != self._trail_problem:
                self._trail_problem = self.trail.problem
                log.warning("serving no adapter: %s", self.trail.problem)
                self.audit.put(GATEWAY, Event("serve.trail", "audit", "log", outcome="error",
                                              reason=f"no adapter is served: {self.trail.problem}"))
            return {}
        from appliance.artifacts import registry

        wanted = {}
        # What the trail approved, and (to refuse them by name) what the registry's column calls approved.
        named = [(c.name, c.digest) for c in candidates(self.trail)]
        named += [(a.name, a.manifest_digest) for a in registry.list_artifacts(self.ctx.engine)
                  if a.status == "approved" and a.name not in dict(named)]
        for name, digest in named:
            try:
                wanted[name] = (digest, str(folder_of(self.ctx.settings, name)))
            except ApplianceError:
                continue
        keys_revoked = sum(d.action == "key.revoke" for d in self.trail.decisions)
        if keys_revoked != self._keys_revoked:  # a signing key revoked: what is loaded is proven again
            self._keys_revoked = keys_revoked
            for name in [n for n in self.loaded if n in wanted and not self.verify(n, wanted[n][0])[0]]:
                del wanted[name]
        return wanted

    def verify(self, name: str, digest: str) -> tuple[bool, str]:
        """The release proof (`artifacts/release.py`): signed by its makers and approved by an officer, each with a
        key root pinned, its folder signed by a pinned artifact key, nothing revoked."""
        from appliance.artifacts.release import prove

        problem, detail = prove(self.ctx.settings, self.trail, name, digest, self.model)
        return (False, problem) if problem else (True, detail)

    async def sync(self, client: httpx.AsyncClient) -> None:
        wanted = await asyncio.to_thread(self.wanted)
        for name in [n for n in self.loaded if n not in wanted or wanted[n][0] != self.loaded[n]]:
            digest = self.loaded.pop(name)  # refused at the gateway from now on, whatever the backend holds
            await self.backend.unload(client, name)
            self.audit.put(GATEWAY, Event("serve.unload", "artifact", name, object_sha256=digest,
                                          reason="no longer approved, or its signing key was revoked"))
        staged: list[tuple[str, str, str]] = []
        for name, (digest, directory) in wanted.items():
            if name in self.loaded or self.refused.get(name) == digest:
                continue
            ok, detail = await asyncio.to_thread(self.verify, name, digest)
            if not ok:
                self.refused[name] = digest
                self.audit.put(GATEWAY, Event("serve.load", "artifact", name, outcome="denied",
                                              object_sha256=digest, reason=detail))
                log.warning("refused to load %s: %s", name, detail)
                continue
            try:
                await self.backend.load(client, AdapterFiles(name, Path(directory), digest))
            except httpx.HTTPStatusError as exc:
                self._failed(name, digest, exc.response.text[:300])
                continue
            staged.append((name, digest, detail))
        problem = await self.backend.commit()  # llama-server: an instance with the new adapter list
        if problem:
            for name, digest, _ in staged:
                await self.backend.unload(client, name)
                self._failed(name, digest, problem)
            staged = []
            await self.backend.commit()
        for name, digest, detail in staged:
            try:  # served only once its load is on the record
                await self.audit.write(GATEWAY, Event("serve.load", "artifact", name, object_sha256=digest,
                                                      reason=detail))
            except AuditUnavailable:
                await self.backend.unload(client, name)
                continue
            self.loaded[name] = digest
            self.refused.pop(name, None)

    def _failed(self, name: str, digest: str, why: str) -> None:
        log.warning("the backend could not load %s: %s", name, why)
        self.refused[name] = digest
        self.audit.put(GATEWAY, Event("serve.load", "artifact", name, outcome="error", object_sha256=digest,
                                      reason=f"the backend could not load it: {why}"))
