"""What both fake provider servers share: a websocket server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response


class FakeServerBugError(AssertionError):
    """The fake tried to send a message its own spec rejects."""


async def wait_until(
    condition: asyncio.Condition, predicate: Callable[[], bool], timeout_s: float, what: str
) -> None:
    """Wait for `predicate` (checked whenever `condition` is notified), or fail the test."""
    try:
        async with asyncio.timeout(timeout_s), condition:
            await condition.wait_for(predicate)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}") from None


class LoopbackServer:
    """Listens on a free loopback port; `stop()` raises if the fake itself misbehaved."""

    # Named in the failure `stop()` raises.
    description = "the fake server"

    def __init__(self) -> None:
        self._server: Server | None = None
        self.internal_errors: list[BaseException] = []
        """Bugs in the fake itself; `stop()` raises if there are any."""

    async def _handle(self, ws: ServerConnection) -> None:
        raise NotImplementedError

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        raise NotImplementedError

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request, max_size=None
        )

    async def stop(self) -> None:
        """Close every connection and the listener; raise if the fake misbehaved."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self.internal_errors:
            raise RuntimeError(f"{self.description} failed") from self.internal_errors[0]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
