"""The backend's answer to a completion, as the gateway reads it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp


class BackendResponse:
    """The backend's answer to a completion (aiohttp's response), with the few calls the gateway makes."""

    def __init__(self, raw: aiohttp.ClientResponse, content: bytes | None = None, done=None) -> None:
        self.raw, self.content, self.status_code, self.done = raw, content, raw.status, done

    def json(self):
        return json.loads(self.content)

    async def aread(self) -> bytes:
        if self.content is None:
            self.content = await self.raw.read()
        return self.content

    async def aiter_lines(self) -> AsyncIterator[str]:
        async for line in self.raw.content:
            yield line.decode().rstrip("\r\n")

    async def aclose(self) -> None:
        if self.raw.content.at_eof():
            self.raw.release()  # back to the pool
        else:
            self.raw.close()  # a stream left early: the connection goes with it
        if self.done is not None:
            done, self.done = self.done, None
            done()

