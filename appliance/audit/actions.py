"""The audit trail's user-facing actions, shared by the CLI and the console: each checks the actor's
permission and leaves its own audit event, whoever calls it."""

from __future__ import annotations

from pathlib import Path

from appliance.audit.checkpoints import Checkpoint
from appliance.audit.events import Event
from appliance.audit.log import checkpoint_now, last_checkpoint, record_alone
from appliance.audit.verify import Trust, VerifyReport, verify_log
from appliance.context import Context
from appliance.errors import NotFound
from appliance.identity.roles import require


def verify(ctx: Context, exported: list[Checkpoint] | None = None) -> VerifyReport:
    """Recompute every event's hash and the tree; compare with the stored, the anchored (and exported)
    checkpoints, trusting the pinned keys only."""
    require(ctx, "audit.verify", "audit", "log")
    report = verify_log(ctx.engine, Trust.of(ctx.settings), exported)
    record_alone(ctx, Event("audit.verify", "audit", "log", outcome="ok" if report.ok else "error",
                            reason="; ".join(report.problems)[:500],
                            details={"events": report.events, "first_bad_seq": report.first_bad_seq}))
    return report


def checkpoint(ctx: Context) -> Checkpoint:
    """Sign a checkpoint of the log as it is now."""
    require(ctx, "audit.checkpoint", "audit", "log")
    cp = checkpoint_now(ctx)
    record_alone(ctx, Event("audit.checkpoint", "audit", str(cp.tree_size), details={"root": cp.root}))
    return cp


def newest_checkpoint(ctx: Context) -> Checkpoint:
    """The newest signed checkpoint, for an officer's own copy (the console: it does not sign)."""
    require(ctx, "audit.checkpoint", "audit", "log")
    with ctx.engine.connect() as conn:
        cp = last_checkpoint(conn)
    if cp is None:
        raise NotFound("no signed checkpoint yet: the signer (`appliance worker`) makes one within the cadence")
    record_alone(ctx, Event("audit.checkpoint_copy", "audit", str(cp.tree_size), details={"root": cp.root}))
    return cp


def export(ctx: Context, out) -> dict:
    """Write the evidence pack to `out` (a path or a `userfiles.OutputFile`)."""
    from appliance.audit.export import export_pack

    require(ctx, "audit.export", "audit", "log")
    summary = export_pack(ctx.engine, out)
    record_alone(ctx, Event("audit.export", "audit", Path(summary["path"]).name,
                            details={"events": summary["events"]}))
    return summary
