"""The adapter set follows the registry: an approved artifact (its approval proven in the audit trail, its signature
verified) is loaded into the backend and only then served; a revoked one, or one whose signing key was revoked, is
refused at once and then unloaded."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx

from appliance.audit.events import Event
from appliance.context import Actor, Context
from appliance.serve.audit_writer import AuditUnavailable, AuditWriter
from appliance.serve.backends import AdapterFiles, Backend

GATEWAY = Actor("gateway", "system", "system")
log = logging.getLogger("appliance.serve")


class AdapterSet:
    def __init__(self, ctx: Context, backend: Backend, model: str, audit: AuditWriter) -> None:
        self.ctx, self.backend, self.model, self.audit = ctx, backend, model, audit
        self.loaded: dict[str, str] = {}  # adapter name -> artifact manifest digest
        self.refused: dict[str, str] = {}  # adapter name -> manifest digest whose load was refused

    def wanted(self) -> dict[str, tuple[str, str]]:
        """Approved artifacts trained on the served base and signed with a key that is not revoked:
        name -> (manifest digest, directory)."""
        from appliance.artifacts import registry
        from appliance.keys.store import list_keys
        from appliance.train import runs

        revoked = {k.key_id for k in list_keys(self.ctx.engine) if k.status == "revoked"}
        wanted = {}
        for artifact in registry.list_artifacts(self.ctx.engine):
            if artifact.status != "approved" or artifact.signing_key_id in revoked:
                continue
            if runs.get_run(self.ctx.engine, artifact.run_name).base_model != self.model:
                continue
            wanted[artifact.name] = (artifact.manifest_digest, str(artifact.directory(self.ctx.settings)))
        return wanted

    def verify(self, name: str) -> tuple[bool, str]:
        from appliance.artifacts import registry
        from appliance.artifacts.signing import verify
        from appliance.audit.proofs import approval_problem
        from appliance.audit.verify import Trust

        artifact = registry.get(self.ctx.engine, self.ctx.settings, name)
        if artifact.status != "approved":
            return False, "no longer approved"
        problem = approval_problem(self.ctx.engine, Trust.of(self.ctx.settings, with_anchors=False), name,
                                   artifact.manifest_digest)
        if problem:
            return False, problem
        result = verify(self.ctx, name)
        if not result.ok:
            return False, "; ".join(f"{c['check']}: {c['detail']}" for c in result.checks if not c["ok"])
        return True, f"verified with key {result.key_id[:16]}; approval proven in the audit trail"

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
            ok, detail = await asyncio.to_thread(self.verify, name)
            if not ok and "not yet covered by a signed checkpoint" in detail:
                continue  # the signer anchors it within the audit policy's cadence: look again next round
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
