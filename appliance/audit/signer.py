"""The signer's loop: a thread of the worker (`appliance worker`) that keeps the audit policy's cadence, signing and
anchoring a checkpoint whenever the events since the last one are `every_events` many or `every_seconds` old,
whatever wrote them (the gateway and the console append events but never sign)."""

from __future__ import annotations

import sys
import threading

from appliance.context import Context


def start(ctx: Context, stop: threading.Event | None = None) -> threading.Thread:
    from appliance import policies
    from appliance.audit.log import sign_if_due
    from appliance.audit.policy import cadence

    stop = stop or threading.Event()
    policies.load(ctx, "audit")  # the cadence it keeps is admitted into the trail's policy history

    def loop() -> None:
        while True:
            try:
                every = cadence()
                sign_if_due(ctx)
            except Exception as exc:  # noqa: BLE001 - the loop outlives a passing failure; verify notices a lapse
                print(f"audit signer: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                every = None
            if stop.wait(min(10.0, max(1.0, (every.every_seconds if every else 40) / 4))):
                return

    thread = threading.Thread(target=loop, name="audit-signer", daemon=True)
    thread.start()
    return thread
