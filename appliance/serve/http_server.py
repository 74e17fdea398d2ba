"""The gateway's HTTP server: uvicorn (h11) with the serving policy's limits on what a client may hold open.

uvicorn closes idle keep-alive connections and answers 503 beyond `limit_concurrency`, but waits for a request's
headers forever: a client sending one byte at a time (slowloris) holds a connection without end. Here a
connection whose request headers are not complete within `header_timeout_seconds` of its first byte (or of
being opened) is closed; the body's own deadline is the gateway's (`read_body`)."""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from appliance.serve.policy import ServingPolicy


def guarded_protocol(header_timeout: float) -> type[H11Protocol]:
    class GuardedH11Protocol(H11Protocol):
        _header_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            if self._header_deadline is None:
                self._header_deadline = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _headers_too_slow(self) -> None:
            self._header_deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE:
                self._arm()
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol


def config(app, host: str, port: int, policy: ServingPolicy):
    import uvicorn

    server = policy.server
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                          http=guarded_protocol(server.header_timeout_seconds),
                          limit_concurrency=server.max_connections, timeout_keep_alive=int(server.keep_alive_seconds),
                          timeout_graceful_shutdown=5)


def run(app, host: str, port: int, policy: ServingPolicy) -> None:
    import uvicorn

    uvicorn.Server(config(app, host, port, policy)).run()
