"""What both fake provider servers share: a websocket server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass
import ssl
from types import TracebackType
from typing import Literal, NoReturn, Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response


class FakeServerBugError(AssertionError):
    """The fake tried to send a message its own spec rejects."""


type Fault = Literal[
    "drop_mid_reply",
    "drop_after_tool_call",
    "drop_mid_user_speech",
    "no_transcript",
    "failed_transcript",
    "garbage",
    "corrupt_audio",
    "burst",
]
"""One-shot faults both fakes inject (see `LoopbackServer`'s fault switches)."""


class Dropped(Exception):
    """The fake dropped a connection on purpose: the work that did it ends quietly."""


def drop(ws: ServerConnection) -> NoReturn:
    """Close the TCP connection after what was sent, with no close frame (client: 1006)."""
    ws.transport.close()
    raise Dropped


class Burst:
    """What a connection sends meanwhile, held and then written at once.

    Under network load several provider messages arrive in one TCP read; the
    client then has them all before it handles the first. One write of them
    all makes a test see that without timing.
    """

    def __init__(self, ws: ServerConnection) -> None:
        self._transport = ws.transport
        self._held = bytearray()
        self._transport.write = self._hold  # type: ignore[method-assign]

    def _hold(self, data: bytes | bytearray | memoryview) -> None:
        self._held += data

    def release(self) -> None:
        """Send everything held, in one write."""
        del self._transport.write
        self._transport.write(bytes(self._held))


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
        self.ssl_context: ssl.SSLContext | None = None
        """Set before `start()`: the server speaks TLS (`wss://`) with this context."""
        self._faults: set[Fault] = set()
        self._bursts: dict[ServerConnection, Burst] = {}
        self._accepted = 0
        # Connections numbered up to this do not read while `_reading` is clear.
        self._paused_upto = 0
        self._reading = asyncio.Event()
        self._reading.set()
        self._admitting = asyncio.Event()
        self._admitting.set()
        self.mishearings: dict[str, str] = {}
        """Names the fake's transcription gets wrong (name -> what it writes instead)
        unless the session's transcription vocabulary holds them."""
        self.listing_failure: int | None = None
        """Answer the model list with this HTTP status instead (None: list the models)."""

    def transcribed(self, said: str, vocabulary: str) -> str:
        """The transcript of `said`: a misheard name comes out right only if `vocabulary`
        (the session's keywords, prompt or custom vocabulary, as text) names it."""
        for name, misheard in self.mishearings.items():
            if name.casefold() not in vocabulary.casefold():
                said = said.replace(name, misheard)
        return said

    # -- fault switches (each applies once, to whichever connection gets there first)

    def drop_mid_reply(self) -> None:
        """Drop the connection (no close frame) right after the next reply's first audio."""
        self._faults.add("drop_mid_reply")

    def drop_after_tool_call(self) -> None:
        """Drop the connection once the model has asked for tools, before any result."""
        self._faults.add("drop_after_tool_call")

    def drop_mid_user_speech(self) -> None:
        """Drop the connection as soon as the fake's VAD hears the user start speaking."""
        self._faults.add("drop_mid_user_speech")

    def never_transcribe_next_turn(self) -> None:
        """The next spoken user turn gets no input transcription at all."""
        self._faults.add("no_transcript")

    def fail_next_transcription(self) -> None:
        """The next spoken turn's transcription fails (Gemini reports none: nothing comes)."""
        self._faults.add("failed_transcript")

    def send_garbage_before_next_reply(self) -> None:
        """Before the next reply: malformed JSON, a non-object, unknown and broken messages."""
        self._faults.add("garbage")

    def corrupt_next_audio(self) -> None:
        """The next reply's first audio chunk is unusable (OpenAI: bad base64; Gemini: rate=0)."""
        self._faults.add("corrupt_audio")

    def burst_next_user_turn(self) -> None:
        """From the next time the fake's VAD hears the user start speaking until the model
        has asked for tools, the connection sends nothing; then all of it at once."""
        self._faults.add("burst")

    def start_burst(self, ws: ServerConnection) -> None:
        """The user started speaking: hold what `ws` sends if a burst is armed."""
        if self.take_fault("burst"):
            self._bursts[ws] = Burst(ws)

    def end_burst(self, ws: ServerConnection) -> None:
        """The model asked for tools: what `ws` held goes out at once."""
        if (burst := self._bursts.pop(ws, None)) is not None:
            burst.release()

    def pause_reading(self) -> None:
        """Open connections stop reading client frames until `resume_reading` (backpressure
        reaches the client); connections opened later read as usual."""
        self._paused_upto = self._accepted
        self._reading.clear()

    def resume_reading(self) -> None:
        """Read client frames again."""
        self._reading.set()

    def hold_new_connections(self) -> None:
        """New connections are accepted but their setup waits until `admit_connections`
        (so a test can act while a client is reconnecting)."""
        self._admitting.clear()

    def admit_connections(self) -> None:
        """Let held and new connections complete their setup."""
        self._admitting.set()

    def take_fault(self, fault: Fault) -> bool:
        """Whether `fault` is armed; it is disarmed by being taken."""
        armed = fault in self._faults
        self._faults.discard(fault)
        return armed

    def accept(self) -> int:
        """Number a new connection (1-based), for `wait_until_reading`."""
        self._accepted += 1
        return self._accepted

    async def wait_until_reading(self, number: int) -> None:
        """Hold connection `number`'s reader while reading is paused for it."""
        if number <= self._paused_upto:
            await self._reading.wait()

    async def wait_until_admitted(self) -> None:
        """Hold a new connection's setup while connections are held."""
        await self._admitting.wait()

    async def _handle(self, ws: ServerConnection) -> None:
        raise NotImplementedError

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        raise NotImplementedError

    @property
    def scheme(self) -> str:
        """`wss` when the server speaks TLS, else `ws`."""
        return "wss" if self.ssl_context is not None else "ws"

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            max_size=None,
            ssl=self.ssl_context,
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
