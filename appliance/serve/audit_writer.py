"""The gateway's audit writer: every request's event is durable before its response completes, or the request
is refused.

Events are written by one thread in batches (one transaction each, so many requests share a commit). Each
`write` waits for its batch's commit; a batch that cannot be committed fails every request in it, and until a
write succeeds again new requests are refused up front (503) and `/readyz` reports not ready: the gateway fails
closed, as an audit device that cannot log refuses the request. The queue is bounded: when it is full a request
is refused rather than queued without limit. The outage itself is recorded once writes work again.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from concurrent.futures import Future, InvalidStateError
from datetime import UTC, datetime

from appliance.audit.events import Event
from appliance.context import Actor, Context

CAPACITY = 2048  # events waiting at most; beyond it requests are refused
WAIT_SECONDS = 5.0  # how long one batch may wait for the database before the writer gives up
BATCH = 200


class AuditUnavailable(Exception):
    """The request's audit event could not be made durable."""


class AuditWriter:
    def __init__(self, ctx: Context, capacity: int = CAPACITY, wait_seconds: float = WAIT_SECONDS) -> None:
        from appliance.db.engine import bounded_engine

        self.ctx = ctx
        self.engine = bounded_engine(ctx.settings.database_url, wait_seconds)
        self.wait_seconds = wait_seconds
        self.queue: queue.Queue = queue.Queue(maxsize=capacity)
        self.failure: str | None = None  # why writes fail now; None while they work
        self._failed_at: str | None = None
        self._refused = 0
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self.thread.start()

    # --- what the gateway calls ---------------------------------------------------------------------------------
    def check(self) -> None:
        """Refuse up front while writes fail: nothing is served that cannot be audited."""
        if self.failure is not None:
            with self._lock:  # looked at again under the lock: the recovery may have just put the outage on record
                if self.failure is not None:
                    self._refused += 1
                    raise AuditUnavailable(self.failure)

    def put(self, actor: Actor, event) -> Future:
        """Queue `event` (an Event, or a function returning one, called on the writer's thread: scrubbing is
        slow); the future completes with its sequence number once committed."""
        future: Future = Future()
        try:
            self.queue.put_nowait((actor, event, future))
        except queue.Full:
            with self._lock:
                self._refused += 1
            _settle(future, error=AuditUnavailable(f"the audit queue is full ({self.queue.maxsize} events waiting)"))
        return future

    async def write(self, actor: Actor, event) -> int:
        """Queue `event` and wait until it is durable; AuditUnavailable when it cannot be. A request cancelled
        meanwhile (its client went away) stops waiting; its event is written all the same."""
        future = self.put(actor, event)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.wait_seconds * 3 + 5)
        except TimeoutError:
            raise AuditUnavailable("the audit event was not committed in time") from None

    def close(self, timeout: float = 10.0) -> None:
        try:
            self.queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self.thread.join(timeout)
        self.engine.dispose()

    # --- the writer's thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < BATCH:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)
                    break
                batch.append(nxt)
            try:
                self._write(batch)
            except Exception as exc:  # noqa: BLE001 - the writer outlives anything: its requests are refused
                self._fail(exc)
                for *_, future in batch:
                    _settle(future, error=AuditUnavailable(self.failure))

    def _build(self, event) -> Event:
        if not callable(event):
            return event
        try:
            return event()
        except Exception as exc:  # the text could not be kept as the policy says: the event still is made
            return event(text_error=f"{type(exc).__name__}: {exc}")

    def _write(self, batch: list) -> None:
        from appliance.audit.log import record_many
        from appliance.db import session_scope

        events = [(actor, self._build(event), future) for actor, event, future in batch if future is not None]
        if self.failure is not None and not self._recover():
            for _, _, future in events:
                _settle(future, error=AuditUnavailable(self.failure))
            return
        if not events:
            return
        try:
            seqs = []
            with session_scope(self.engine) as s:
                for actor, event, _ in events:
                    seqs += record_many(self.ctx, s, [event], actor)
        except Exception as exc:  # noqa: BLE001 - whatever the database says, the requests are refused
            self._fail(exc)
            for _, _, future in events:
                _settle(future, error=AuditUnavailable(self.failure))
            return
        for (_, _, future), seq in zip(events, seqs, strict=True):
            _settle(future, seq)

    def _fail(self, exc: Exception) -> None:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
        first = self.failure is None
        self.failure = f"the audit trail cannot record requests: {reason}"  # before the probe looks at it
        if first:
            self._failed_at = datetime.now(UTC).isoformat(timespec="seconds")
            print(f"audit writes fail ({reason}): requests are refused until they work again", flush=True)
            threading.Thread(target=self._probe, name="audit-probe", daemon=True).start()

    def _recover(self) -> bool:
        """Record the outage (when it can be written, writes work again); True once recovered. Every request
        refused while writes failed is in its count: the count is read, written and reset, and the failure
        cleared, while the refusals wait on the lock (milliseconds: the database's write lock is already ours)."""
        from appliance.audit.log import lock_appends, record
        from appliance.db import session_scope

        with contextlib.ExitStack() as held:  # self._lock, once taken, until the outage is on record or not
            try:
                with session_scope(self.engine) as s:
                    lock_appends(s.connection())  # on SQLite the transaction began IMMEDIATE: the write lock
                    held.enter_context(self._lock)
                    refused = self._refused
                    record(self.ctx, s, Event("serve.audit", "gateway", "audit-writer", outcome="error",
                                              reason=f"audit writes failed from {self._failed_at} until now "
                                                     f"({self.failure}); {refused} requests refused meanwhile",
                                              details={"failed_at": self._failed_at, "refused": refused}))
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)
                return False
            self._refused = 0
            self.failure = None
        print("audit writes work again: serving", flush=True)
        return True

    def _probe(self) -> None:
        """While writes fail and no request comes, try again every second."""
        while self.failure is not None:
            time.sleep(1.0)
            try:
                self.queue.put_nowait(_PROBE)
            except queue.Full:
                continue


def _settle(future: Future, result=None, error: Exception | None = None) -> None:
    """Complete a request's future, unless it already is (cancelled by a request that stopped waiting)."""
    if future is None or future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:  # cancelled between the look and the call
        pass


_PROBE = (None, None, None)  # a queued no-op: makes the writer try to recover even when no request comes
