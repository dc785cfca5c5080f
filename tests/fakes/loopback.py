"""What both fake provider servers share: a websocket server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass
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


@dataclass
class ModelPacing:
    """How fast a fake model produces a reply's audio, like a real one or instantly.

    A real realtime model starts speaking a few hundred milliseconds after the
    user's turn ends and then generates about twice as fast as real time; an
    instant fake hides every delay that waits for the end of a reply. `hold`
    lets a test prove an ordering: after a response's first audio chunk the
    fake sends nothing more until the test sets it (so a consumer that waits
    for the end of the reply never gets there, and the test fails).
    """

    first_audio_delay_s: float = 0.0
    """Before a response's first audio chunk (its generation latency)."""
    speed: float | None = None
    """Audio is generated this many times faster than real time; None: at once."""
    hold: asyncio.Event | None = None
    """Set: generation goes on past each response's first audio chunk."""

    @classmethod
    def like_a_real_model(cls) -> ModelPacing:
        """First audio 300 ms after the turn ends, then twice real time."""
        return cls(first_audio_delay_s=0.3, speed=2.0)

    async def before_first_chunk(self, cancelled: asyncio.Event) -> None:
        await _wait_unless(cancelled, self.first_audio_delay_s)

    async def after_chunk(
        self, number: int, chunk_ms: float, fixed_delay_s: float, cancelled: asyncio.Event
    ) -> None:
        """Between audio chunks: `fixed_delay_s` if set (older tests), else the pacing."""
        if number == 1 and self.hold is not None:
            hold = asyncio.ensure_future(self.hold.wait())
            stop = asyncio.ensure_future(cancelled.wait())
            try:
                await asyncio.wait({hold, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when the connection's task is cancelled while held
                hold.cancel()
                stop.cancel()
        if fixed_delay_s > 0:
            delay_s = fixed_delay_s
        else:
            delay_s = chunk_ms / 1000 / self.speed if self.speed else 0.0
        await _wait_unless(cancelled, delay_s)


async def _wait_unless(cancelled: asyncio.Event, delay_s: float) -> None:
    """Sleep `delay_s` (at least one loop turn) unless `cancelled` is set first."""
    if delay_s <= 0:
        await asyncio.sleep(0)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(cancelled.wait(), delay_s)


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
