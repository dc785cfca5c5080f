"""One long-lived, duplex realtime session, whatever the provider.

Input goes in through methods (audio, text, images, tool results, control);
output comes out of subscriptions (`subscribe()`). The session owns the provider connection:
it reads it in one task, reconnects when it drops, recycles it before the
provider's time limit, and replays the conversation into the new connection.

Backpressure policy (per `Subscription`): the reader never waits for a consumer,
so tool calls and barge-in events are never held up behind audio. Control
events are always kept (they are few and small). Audio is kept up to
`max_buffered_audio_s` seconds; beyond that a stalled consumer loses the
newest audio (counted in `stats`, logged once per response) instead of memory
growing without bound. On barge-in, audio of the interrupted response that the
consumer has not read yet is discarded at once.

Reconnects restore first, then take live input: while a new connection is
being set up and the conversation replayed into it, input waits (audio is
kept with the turn's audio and replayed in order; other input waits for the
connection), so nothing reaches the new socket before the history does.

Errors: every method raises only `RealtimeError` subclasses; what the provider
reports comes out as events carrying an `ErrorKind`.

What it costs: the provider's usage reports (with a response's ResponseDone, or
later in a UsageReported) are kept per response (`usage_of`) and handed to the
owner's `on_usage` as they come; `connected_s` is how long connections were open.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
import contextlib
from dataclasses import dataclass
from enum import StrEnum
import itertools
import json
import logging
import time
from typing import Any

from .audio import MicrophoneResampler, duration_ms
from .config import SessionConfig, TurnDetectionMode
from .errors import (
    AuthenticationError,
    ConnectError,
    ConnectionDroppedError,
    ErrorKind,
    RealtimeError,
    SessionClosedError,
)
from .events import (
    AudioChunk,
    InputTranscript,
    Interrupted,
    ProviderError,
    Reconnected,
    ResponseDone,
    ResponseRetrying,
    ResponseStarted,
    ResponseStatus,
    SessionClosed,
    SessionEvent,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    ToolCallsCancelled,
    Usage,
    UsageReported,
)
from .providers.base import (
    ConnectionLost,
    HistoryItem,
    HistoryKind,
    HistoryRole,
    Provider,
    ProviderConnection,
)

_LOGGER = logging.getLogger(__name__)
# Responses whose usage is kept for `usage_of` (turns read theirs within minutes).
_USAGE_KEPT = 256
# Audio goes in messages of at most this much input (a second at 16 kHz).
_AUDIO_MESSAGE_BYTES = 32000
# Chunks handed in closer together than this came together (Home Assistant splits each
# packet a satellite sends into 10 ms chunks and hands them on in a row).
_TOGETHER_S = 0.001


def _one_message(chunks: Sequence[bytes]) -> int:
    """How many of the first `chunks` go in one audio message: up to
    `_AUDIO_MESSAGE_BYTES`, at least one."""
    count, size = 0, 0
    for pcm in chunks:
        if count and size + len(pcm) > _AUDIO_MESSAGE_BYTES:
            break
        count += 1
        size += len(pcm)
    return count


class _TurnEnd(StrEnum):
    """What ended a user's turn that the provider has not shown it has."""

    # Its turn detection (SpeechStopped): replayed, the audio ends the turn again.
    DETECTED = "detected"
    # `commit_audio`: replayed, the audio must be committed again.
    COMMITTED = "committed"


class _SessionFailed(Exception):
    """The provider ended the session for good (fatal error, unrecoverable close)."""

    def __init__(self, reason: str, kind: ErrorKind) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How hard to try when the connection drops."""

    attempts: int = 5
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0
    # Recycle a connection this long before the provider would end it.
    recycle_margin_s: float = 60.0
    # The user's audio since the provider last took a turn is kept (up to this) and
    # replayed into a new connection: a drop mid-utterance, or after the user
    # stopped but before the provider answered, loses no words.
    max_replay_audio_s: float = 10.0
    # A rate-limited response is asked for again this many times, waiting (the
    # provider's hint, else backoff) no more than this in all.
    rate_limit_attempts: int = 3
    rate_limit_budget_s: float = 10.0


class Subscription:
    """One consumer's view of the session's events, with its own bounded buffer.

    See the module docstring for the buffering policy. Iterate it (async for),
    and close it (or use it as a context manager) when done listening.
    """

    def __init__(self, session: RealtimeSession, max_audio_s: float) -> None:
        self._session = session
        self._events: deque[SessionEvent] = deque()
        self._wakeup = asyncio.Event()
        self._max_audio_ms = max_audio_s * 1000.0
        self._audio_ms = 0.0
        self._warned_for: str | None = None
        self.dropped_audio_ms = 0.0
        self.closed = False

    def put(self, event: SessionEvent) -> None:
        if self.closed:
            return
        if isinstance(event, AudioChunk):
            chunk_ms = duration_ms(len(event.pcm), event.sample_rate)
            if self._audio_ms + chunk_ms > self._max_audio_ms:
                self.dropped_audio_ms += chunk_ms
                if self._warned_for != event.response_id:
                    self._warned_for = event.response_id
                    _LOGGER.warning(
                        "Realtime consumer is not reading: dropping audio of response %s",
                        event.response_id,
                    )
                return
            self._audio_ms += chunk_ms
        self._events.append(event)
        self._wakeup.set()

    def discard_audio(self, response_id: str) -> None:
        """Forget unread audio of a response the user talked over."""
        kept: deque[SessionEvent] = deque()
        for event in self._events:
            if isinstance(event, AudioChunk) and event.response_id == response_id:
                self._audio_ms -= duration_ms(len(event.pcm), event.sample_rate)
            else:
                kept.append(event)
        self._events = kept

    @property
    def buffered_audio_ms(self) -> float:
        return self._audio_ms

    @property
    def buffered_events(self) -> int:
        return len(self._events)

    def peek(self) -> tuple[SessionEvent, ...]:
        """The events waiting to be read, oldest first (nothing is consumed)."""
        return tuple(self._events)

    def end(self) -> None:
        """No more events will come: iteration stops once the buffer is drained."""
        self.closed = True
        self._wakeup.set()

    def close(self) -> None:
        """Stop listening; unread events are dropped."""
        self.end()
        self._events.clear()
        self._session.unsubscribe(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> SessionEvent:
        while not self._events:
            if self.closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        event = self._events.popleft()
        if isinstance(event, AudioChunk):
            self._audio_ms -= duration_ms(len(event.pcm), event.sample_rate)
        return event

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RealtimeSession:
    """A realtime conversation with a model that survives dropped connections."""

    def __init__(
        self,
        provider: Provider,
        config: SessionConfig,
        *,
        input_sample_rate: int = 16000,
        max_buffered_audio_s: float = 120.0,
        max_history_items: int = 40,
        reconnect: ReconnectPolicy | None = None,
        on_usage: Callable[[Usage], None] | None = None,
    ) -> None:
        self._provider = provider
        # Told about every usage report, as it comes (the owner's meter).
        self._on_usage = on_usage
        self._config = config
        self._input_rate = input_sample_rate
        self._policy = reconnect or ReconnectPolicy()
        self._max_buffered_audio_s = max_buffered_audio_s
        # In the order they subscribed: each event reaches them in that order, every run.
        self._subscribers: dict[Subscription, None] = {}
        self._connection: ProviderConnection | None = None
        # Set while the connection takes input: after a reconnect's restore and replay.
        self._connected = asyncio.Event()
        self._resampler: MicrophoneResampler | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._recycle_timer: asyncio.TimerHandle | None = None
        self._recycle_due = False
        self._recycling = False
        self._closing = False
        self._closed = False
        self._close_kind: ErrorKind | None = None
        self._active_response: str | None = None
        # We asked for a response (or the provider's VAD will make one) that has not started.
        self._expecting_response = False
        self._interrupted_responses: set[str] = set()
        self._history: deque[HistoryItem] = deque(maxlen=max_history_items)
        # Tool calls of the response in flight, remembered once it completes.
        self._response_calls: list[HistoryItem] = []
        # Results sent before the call's response completed, remembered after it.
        self._early_results: list[HistoryItem] = []
        # Calls asked for and not yet answered or withdrawn: call id -> name.
        self._outstanding_calls: dict[str, str] = {}
        self._withdrawn_calls: set[str] = set()
        # Audio handed in and not yet sent. While chunks come together, what arrives
        # within one pass of the event loop goes out as one message when the pass ends
        # (`_flush_audio`); while they come one by one, each goes at once.
        self._outgoing: list[bytes] = []
        self._flush: asyncio.Handle | None = None
        self._joining = False
        self._last_audio_at = 0.0
        # Sends the outgoing audio, in order, while the socket cannot take it at once.
        self._audio_sender: asyncio.Task[None] | None = None
        self._turn_audio: deque[tuple[int, bytes]] = deque()
        self._turn_audio_ms = 0.0
        self._audio_seq = itertools.count()
        # The user's turn ended, and the provider has neither answered it nor sent its
        # final transcript: the provider may not have it yet, so its audio stays kept.
        self._turn_ended: _TurnEnd | None = None
        self._rate_limit_tries = 0
        self._rate_limit_waited_s = 0.0
        # Asks for a rate-limited response again (after a drop, on the new connection).
        self._rate_limit_retry: asyncio.Task[None] | None = None
        # What the provider reported per response, and responses whose report is to come.
        self._usage: dict[str, Usage] = {}
        self._usage_pending: set[str] = set()
        self._connected_since: float | None = None
        self._connected_before_s = 0.0
        self.stats: dict[str, Any] = {
            "connects": 0,
            "reconnects": 0,
            "responses": 0,
            "interruptions": 0,
            "rate_limit_retries": 0,
            "input_audio_ms": 0.0,
            "output_audio_ms": 0.0,
            "usage_total_tokens": 0,
            "last_error": None,
        }

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Connect; raises AuthenticationError or ConnectError if that fails."""
        await self._open()
        self._connected.set()
        self._reader = asyncio.create_task(self._read(), name="realtime_session_reader")

    async def close(self) -> None:
        """End the session: the socket closes, `events()` ends after what is queued."""
        if self._closed:
            return
        self._closing = True
        self._disconnected()
        self._offline()
        if self._recycle_timer is not None:
            self._recycle_timer.cancel()
        for task in (self._reader, *self._tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        self._finish(None, None)

    async def __aenter__(self) -> RealtimeSession:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def config(self) -> SessionConfig:
        return self._config

    @property
    def input_sample_rate(self) -> int:
        """The rate of the PCM16 `send_audio` takes (it resamples for the provider)."""
        return self._input_rate

    @property
    def active_response_id(self) -> str | None:
        """The response the model is generating now, if any."""
        return self._active_response

    @property
    def outstanding_tool_calls(self) -> frozenset[str]:
        """Calls the model asked for that are neither answered nor withdrawn."""
        return frozenset(self._outstanding_calls)

    @property
    def connected_s(self) -> float:
        """How long this session has had a connection open, in all (seconds)."""
        if self._connected_since is None:
            return self._connected_before_s
        return self._connected_before_s + time.monotonic() - self._connected_since

    def usage_of(self, response_ids: Iterable[str]) -> Usage:
        """What the provider has reported for these responses so far."""
        usage = Usage()
        for response_id in response_ids:
            usage += self._usage.get(response_id, Usage())
        return usage

    def usage_pending(self, response_ids: Iterable[str]) -> bool:
        """Whether the provider is still to report usage of any of these responses."""
        return not self._usage_pending.isdisjoint(response_ids)

    @property
    def history(self) -> list[HistoryItem]:
        """Finished turns and tool rounds, oldest first, as replayed after a reconnect."""
        return list(self._history)

    def subscribe(self, max_buffered_audio_s: float | None = None) -> Subscription:
        """Listen to events from now on (subscribe before `start` to see them all).

        Iteration ends after SessionClosed. Several consumers may listen at once
        (speech-to-text, the agent, text-to-speech), each with its own buffer.
        """
        subscription = Subscription(self, max_buffered_audio_s or self._max_buffered_audio_s)
        if self._closed:
            subscription.end()
        else:
            self._subscribers[subscription] = None
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.pop(subscription, None)

    @property
    def dropped_audio_ms(self) -> float:
        """Audio that slow consumers did not get (see the buffering policy)."""
        return sum(subscription.dropped_audio_ms for subscription in self._subscribers)

    # -- input ---------------------------------------------------------------

    async def send_audio(self, pcm: bytes) -> None:
        """Push user audio: PCM16 mono at the session's input sample rate.

        While chunks come together, each goes out when this pass of the event loop
        ends, joined with whatever else arrived in it: a satellite's packet of
        several 10 ms chunks costs one send. While they come one by one, each goes
        at once (waiting for the end of the pass would cost a loop pass per chunk).
        No chunk waits for a later one. During a reconnect it is only kept, and
        replayed (in order) once the new connection has the conversation.
        """
        self._ensure_open()
        chunk_ms = duration_ms(len(pcm), self._input_rate)
        self.stats["input_audio_ms"] += chunk_ms
        self._keep_turn_audio(pcm, chunk_ms)
        if not self._connected.is_set():
            return
        if self._audio_sender is not None:
            # The socket is behind: the caller waits for it, as with any send.
            self._outgoing.append(pcm)
            await asyncio.wait({self._audio_sender})
        elif self._flush is not None:
            self._outgoing.append(pcm)  # it goes with the chunks before it
        else:
            now = time.monotonic()
            together = now - self._last_audio_at < _TOGETHER_S
            self._last_audio_at = now
            if self._joining or together:
                self._outgoing.append(pcm)
                self._flush = asyncio.get_running_loop().call_soon(self._flush_audio)
            else:
                self._send_now(pcm)

    async def commit_audio(self) -> None:
        """End the user's turn by hand (when turn detection is off)."""
        await self._deliver(lambda connection: connection.commit_audio())
        self._turn_ended = _TurnEnd.COMMITTED
        if self._config.turn_detection.mode is TurnDetectionMode.OFF:
            self._expecting_response = True

    async def clear_audio(self) -> None:
        await self._deliver(lambda connection: connection.clear_audio())
        self._forget_turn_audio()

    def abandon_user_turn(self) -> None:
        """The user's turn failed: a reconnect must not replay its audio (they will repeat)."""
        self._forget_turn_audio()

    async def send_text(self, text: str, *, respond: bool = True) -> None:
        """A user message typed rather than spoken."""
        await self._deliver(lambda connection: connection.send_text(text, respond=respond))
        self._remember(HistoryItem(HistoryRole.USER, text))
        self._expecting_response = self._expecting_response or respond

    async def send_image(self, image: bytes, mime_type: str = "image/jpeg") -> None:
        await self._deliver(lambda connection: connection.send_image(image, mime_type))

    async def send_tool_result(self, call_id: str, name: str, result: dict[str, Any]) -> None:
        """Answer a ToolCall; the model goes on when every call of its response is answered.

        The result of a withdrawn call (ToolCallsCancelled) is dropped.
        """
        await self._deliver(
            lambda connection: connection.send_tool_result(call_id, name, result),
            wanted=lambda: call_id not in self._withdrawn_calls,
        )
        if self._outstanding_calls.pop(call_id, None) is None:
            return
        output = HistoryItem(
            HistoryRole.USER, json.dumps(result), HistoryKind.FUNCTION_OUTPUT, call_id, name
        )
        if any(call.call_id == call_id for call in self._response_calls):
            self._early_results.append(output)
        else:
            self._remember(output)
        if not self._outstanding_calls:
            self._expecting_response = True  # the model continues with the results

    async def create_response(self, instructions: str | None = None) -> None:
        await self._deliver(lambda connection: connection.create_response(instructions))
        self._expecting_response = True

    async def interrupt(self, played: Mapping[str, int] | None = None) -> None:
        """The user cut the model off: stop its audio; it keeps only what was heard.

        `played` maps audio item ids (`AudioChunk.item_id`) to the milliseconds
        the listener heard of each; items it leaves out fall back to the
        provider connection's own estimate.
        """
        self._mark_interrupted(self._active_response)
        self._expecting_response = False
        await self._deliver(lambda connection: connection.interrupt(played or {}))

    def report_played(self, item_id: str, played_ms: int) -> None:
        """How much of one audio item the listener has heard so far."""
        if self._connection is not None:
            self._connection.report_played(item_id, played_ms)

    async def update(self, config: SessionConfig) -> None:
        """Change instructions, tools or turn detection without losing the conversation."""
        self._config = config
        if not await self._deliver(lambda connection: connection.update(config)):
            # The protocol takes this change only when connecting: resume on a new
            # connection with it, once the session is idle.
            self._request_recycle()

    def _ensure_open(self) -> None:
        if self._closed or self._closing:
            raise SessionClosedError(
                "the realtime session has ended", kind=self._close_kind or ErrorKind.CONNECTION
            )

    async def _ready(self) -> ProviderConnection:
        """The live connection, waiting out a reconnect in progress."""
        self._ensure_open()
        if not self._connected.is_set():
            try:
                async with asyncio.timeout(self._reconnect_budget_s()):
                    await self._connected.wait()
            except TimeoutError as err:
                raise ConnectError("the realtime connection did not come back") from err
        self._ensure_open()
        assert self._connection is not None
        return self._connection

    async def _deliver[T](
        self,
        send: Callable[[ProviderConnection], Awaitable[T]],
        *,
        wanted: Callable[[], bool] = lambda: True,
    ) -> T | None:
        """Run `send` on the live connection; if that dropped, once more on the next one
        (whose history does not have it yet), unless `wanted` says it no longer applies."""
        for attempt in range(2):
            connection = await self._ready()
            await self._drain_audio()
            if not wanted():
                return None
            try:
                return await send(connection)
            except ConnectionDroppedError:
                self._lost(connection)
                if attempt:
                    raise
        return None

    def _lost(self, connection: ProviderConnection) -> None:
        """A send found the socket gone: hold input until the reader has reconnected."""
        if connection is self._connection:
            self._offline()

    def _offline(self) -> None:
        """Input waits from now on; audio not yet sent is replayed with the turn's."""
        self._connected.clear()
        self._outgoing.clear()
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    def _reconnect_budget_s(self) -> float:
        policy = self._policy
        return policy.attempts * (policy.max_delay_s + 10.0)

    def _keep_turn_audio(self, pcm: bytes, chunk_ms: float) -> None:
        """Remember the user's audio of the turn in progress, up to the policy's limit."""
        self._turn_audio.append((next(self._audio_seq), pcm))
        self._turn_audio_ms += chunk_ms
        while self._turn_audio_ms > self._policy.max_replay_audio_s * 1000:
            _, dropped = self._turn_audio.popleft()
            self._turn_audio_ms -= duration_ms(len(dropped), self._input_rate)

    def _forget_turn_audio(self) -> None:
        """The provider has the turn (or it was given up): nothing to replay any more."""
        self._turn_audio.clear()
        self._turn_audio_ms = 0.0
        self._turn_ended = None

    def _turn_taken(self) -> None:
        """The provider answers the ended turn, or sent its words (the history has them):
        a new connection gets it from there, so its audio is no longer replayed."""
        if self._turn_ended is not None:
            self._forget_turn_audio()

    async def _replay_turn_audio(self, connection: ProviderConnection) -> None:
        """Send the turn's audio, including what arrives meanwhile, until caught up.

        Frames are joined into messages of up to `_AUDIO_MESSAGE_BYTES`: they are all
        here already, so joining delays nothing and saves a send per frame.
        """
        next_seq = 0
        while pending := [entry for entry in self._turn_audio if entry[0] >= next_seq]:
            next_seq = pending[-1][0] + 1
            chunks = [pcm for _, pcm in pending]
            while chunks:
                count = _one_message(chunks)
                await self._send_audio(connection, self._resample(b"".join(chunks[:count])))
                del chunks[:count]

    def _flush_audio(self) -> None:
        """Send the outgoing audio, one message at a time while the socket takes it at once;
        the rest goes to `_send_outgoing`, which may wait."""
        self._flush = None
        # Chunks came together this time: the next ones probably will too.
        self._joining = len(self._outgoing) > 1
        while self._outgoing and self._audio_sender is None:
            self._send_now(self._take_outgoing())

    def _send_now(self, pcm: bytes) -> None:
        """Send input audio at once if the socket takes it, else from `_send_outgoing`."""
        connection = self._connection
        assert connection is not None
        resampled = self._resample(pcm)
        if not connection.send_audio_now(resampled):
            self._audio_sender = self._spawn(
                self._send_outgoing(connection, resampled), "realtime_session_audio"
            )

    async def _send_outgoing(self, connection: ProviderConnection, pcm: bytes) -> None:
        try:
            await self._send_audio(connection, pcm)
            while self._outgoing and connection is self._connection:
                await self._send_audio(connection, self._resample(self._take_outgoing()))
        finally:
            self._audio_sender = None
            if self._outgoing and self._flush is None:
                self._flush = asyncio.get_running_loop().call_soon(self._flush_audio)

    def _take_outgoing(self) -> bytes:
        """The oldest outgoing audio, up to one message's worth (at least one chunk)."""
        count = _one_message(self._outgoing)
        taken = self._outgoing[:count]
        del self._outgoing[:count]
        return taken[0] if count == 1 else b"".join(taken)

    async def _drain_audio(self) -> None:
        """Audio handed in before goes out before anything sent after it."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush_audio()
        if self._audio_sender is not None:
            await asyncio.wait({self._audio_sender})

    def _resample(self, pcm: bytes) -> bytes:
        assert self._resampler is not None
        return self._resampler.process(pcm)

    async def _send_audio(self, connection: ProviderConnection, pcm: bytes) -> None:
        """Send audio already at the provider's rate; a drop only holds input (see `_lost`)."""
        try:
            await connection.send_audio(pcm)
        except ConnectionDroppedError:
            # The reader sees the drop, reconnects and replays the turn.
            _LOGGER.debug("Audio send failed; it will be replayed after reconnecting")
            self._lost(connection)

    # -- connection management -----------------------------------------------

    async def _open(self, resume: object | None = None) -> ProviderConnection:
        try:
            connection = await self._provider.connect(self._config, resume)
        except RealtimeError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConnectError(
                f"the provider's setup reply was malformed: {err!r}", kind=ErrorKind.PROTOCOL
            ) from err
        self.stats["connects"] += 1
        self._disconnected()
        self._connected_since = time.monotonic()
        self._connection = connection
        self._resampler = MicrophoneResampler(self._input_rate, connection.input_sample_rate)
        self._recycle_due = self._recycling = False
        if connection.max_duration_s is not None:
            delay = max(1.0, connection.max_duration_s - self._policy.recycle_margin_s)
            self._recycle_timer = asyncio.get_running_loop().call_later(
                delay, self._request_recycle
            )
        return connection

    def _request_recycle(self) -> None:
        """The connection nears its time limit (or needs a new setup): replace it at idle."""
        self._recycle_due = True
        self._maybe_recycle()

    def _maybe_recycle(self) -> None:
        """Recycle only at true idle: no response in flight or expected, no call unanswered."""
        if (
            not self._recycle_due
            or self._recycling
            or not self._connected.is_set()
            or self._active_response is not None
            or self._expecting_response
            or self._outstanding_calls
        ):
            return
        if self._connection is None:
            return
        # The reader sees the connection end and opens the next one.
        self._recycling = True
        self._spawn(self._connection.close(), "realtime_session_recycle")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _read(self) -> None:
        error: str | None = None
        kind: ErrorKind | None = None
        try:
            while True:
                assert self._connection is not None
                lost = await self._pump(self._connection)
                if lost is None:
                    return
                await self._reconnect(lost)
        except _SessionFailed as err:
            error, kind = str(err), err.kind
        except RealtimeError as err:
            error, kind = str(err), err.kind
        except Exception as err:
            _LOGGER.exception("Realtime session reader failed")
            error = str(err) or type(err).__name__
        finally:
            if not self._closing:
                self._disconnected()
                self._offline()
                if self._connection is not None:
                    with contextlib.suppress(Exception):
                        await self._connection.close()
                self._finish(error, kind)

    async def _pump(self, connection: ProviderConnection) -> ConnectionLost | None:
        """Forward one connection's events; why to reconnect, or None when closed."""
        try:
            async for event in connection.events():
                self._observe(event)
                if isinstance(event, ProviderError) and event.fatal:
                    raise _SessionFailed(f"{event.code}: {event.message}", event.kind)
        except ConnectionLost as lost:
            if lost.retryable:
                return lost
            raise _SessionFailed(lost.reason, lost.kind) from lost
        except ConnectionDroppedError as err:  # a send of the reader's (a truncation)
            return ConnectionLost(str(err))
        if self._recycle_due and not self._closing:
            return ConnectionLost("recycled before the provider's session limit")
        return None

    async def _reconnect(self, lost: ConnectionLost) -> None:
        """Open a new connection, restore the conversation and the turn's audio, then go live.

        Raises what ends the session: AuthenticationError, or the last
        connection error once the attempts are used up.
        """
        self._offline()
        self._disconnected()
        if self._recycle_timer is not None:
            self._recycle_timer.cancel()
        recycled = self._recycle_due
        old = self._connection
        assert old is not None
        lost_response = self._lose_response(lost, withdraw_all=not old.carries_tool_calls)
        resume = old.resume_state()
        with contextlib.suppress(Exception):
            await old.close()
        if not recycled:
            _LOGGER.warning("Realtime connection lost (%s); reconnecting", lost.reason)
        delay = max(self._policy.first_delay_s, lost.retry_after_s or 0.0)
        failure: RealtimeError = ConnectError(lost.reason, kind=lost.kind)
        for attempt in range(self._policy.attempts):
            if attempt or not recycled:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._policy.max_delay_s)
            try:
                connection = await self._open(resume)
            except AuthenticationError:
                raise
            except RealtimeError as err:
                failure = err
                self.stats["last_error"] = str(err)
                _LOGGER.info("Reconnect attempt %d failed: %s", attempt + 1, err)
                continue
            history = list(self._history)
            try:
                await connection.restore(history)
                await self._replay_turn_audio(connection)
                await self._ask_again(connection)
            except ConnectionDroppedError as err:
                failure = err
                _LOGGER.info("Reconnect attempt %d dropped while restoring", attempt + 1)
                with contextlib.suppress(Exception):
                    await connection.close()
                continue
            self._connected.set()
            self.stats["reconnects"] += 1
            self._emit(Reconnected(lost.reason, len(history), lost_response))
            return
        raise failure

    def _lose_response(self, lost: ConnectionLost, *, withdraw_all: bool) -> bool:
        """What the old connection took with it: the response in flight (True if there was
        one) and its tool calls, or every unanswered call if the next cannot carry them.

        A response expected and not started is still expected: `_ask_again` sees to it.
        """
        if lost.kind is not ErrorKind.CONNECTION:
            self.stats["last_error"] = f"{lost.kind}: {lost.reason}"
            self._emit(
                ProviderError(
                    str(lost.kind), lost.reason, kind=lost.kind, retry_after_s=lost.retry_after_s
                )
            )
        lost_response, self._active_response = self._active_response, None
        # Reports the old connection owed are not coming on a new one.
        self._usage_pending.clear()
        withdrawn = [call.call_id for call in self._response_calls if call.call_id]
        self._response_calls, self._early_results = [], []
        if withdraw_all:
            withdrawn += list(self._outstanding_calls)
        self._withdraw(tuple(dict.fromkeys(withdrawn)))
        if lost_response is not None:
            self._emit(
                ResponseDone(
                    lost_response,
                    ResponseStatus.FAILED,
                    reason="connection_lost",
                    error_kind=lost.kind,
                )
            )
        return lost_response is not None

    async def _ask_again(self, connection: ProviderConnection) -> None:
        """Ask the restored connection for what the old one may have lost unread.

        A turn its turn detection ended needs nothing: the replayed audio ends it again
        and the provider answers by itself (asking too would get two answers). A turn
        ended by `commit_audio` is committed again. A response expected and not started
        (asked for, or due after tool results) is asked for once, unless a rate-limit
        retry is still to ask for it.
        """
        if self._turn_ended is _TurnEnd.DETECTED:
            return
        if self._turn_ended is _TurnEnd.COMMITTED and self._turn_audio:
            await connection.commit_audio()
            if self._config.turn_detection.mode is TurnDetectionMode.OFF:
                return  # the commit asks for the response (see `commit_audio`)
        retry = self._rate_limit_retry
        if self._expecting_response and (retry is None or retry.done()):
            await connection.create_response()

    def _withdraw(self, call_ids: tuple[str, ...]) -> None:
        """Calls the model no longer waits for: consumers are told, results are dropped."""
        call_ids = tuple(call_id for call_id in call_ids if call_id in self._outstanding_calls)
        if not call_ids:
            return
        for call_id in call_ids:
            self._outstanding_calls.pop(call_id, None)
        self._withdrawn_calls.update(call_ids)
        self._emit(ToolCallsCancelled(call_ids))

    def _finish(self, error: str | None, kind: ErrorKind | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_kind = kind
        self._usage_pending.clear()
        self._connected.set()  # wake waiters; they see the session closed
        if self._recycle_timer is not None:
            self._recycle_timer.cancel()
        for subscription in self._subscribers:
            subscription.put(SessionClosed(error, kind))
            subscription.end()
        self._subscribers.clear()

    # -- event bookkeeping ---------------------------------------------------

    def _observe(self, event: SessionEvent) -> None:
        """Keep history and turn state, then hand the event to the consumer."""
        match event:
            case Interrupted(response_id=response_id):
                # The provider says the user cut in (it keeps no truncation to send), unless
                # its speech-started event already did (Gemini's `voiceActivity`).
                if response_id not in self._interrupted_responses:
                    self._mark_interrupted(response_id)
                return
            case ResponseStarted(response_id=response_id):
                self._turn_taken()
                self._active_response = response_id
                self._expecting_response = False
                self.stats["responses"] += 1
            case AudioChunk(response_id=response_id) if response_id in self._interrupted_responses:
                return  # stale audio of a response the user talked over
            case AudioChunk():
                self.stats["output_audio_ms"] += duration_ms(len(event.pcm), event.sample_rate)
            case SpeechStarted() if self._active_response is not None:
                if self._config.turn_detection.interrupt_response:
                    self._emit(event)
                    self._mark_interrupted(self._active_response)
                    return
            case SpeechStopped():
                self._turn_ended = _TurnEnd.DETECTED
                if self._config.turn_detection.create_response:
                    self._expecting_response = True
            case InputTranscript(final=True, text=text) if text.strip():
                self._turn_taken()
                self._remember(HistoryItem(HistoryRole.USER, text))
            case ToolCall(call_id=call_id, name=name, arguments=arguments):
                self._outstanding_calls[call_id] = name
                self._response_calls.append(
                    HistoryItem(
                        HistoryRole.ASSISTANT,
                        json.dumps(arguments),
                        HistoryKind.FUNCTION_CALL,
                        call_id,
                        name,
                    )
                )
            case ToolCallsCancelled(call_ids=call_ids):
                self._withdraw(call_ids)
                self._maybe_recycle()
                return
            case ResponseDone():
                event = self._response_done(event)
            case UsageReported(response_id=response_id, usage=usage):
                self._account(response_id, usage)
            case ProviderError():
                self.stats["last_error"] = f"{event.code}: {event.message}"
                if event.refused_response:
                    self._expecting_response = False
                    if event.kind is ErrorKind.RATE_LIMIT:
                        event = self._retry_rate_limited(None, event.retry_after_s) or event
                    self._maybe_recycle()
        self._emit(event)

    def _response_done(self, event: ResponseDone) -> SessionEvent:
        """Remember a finished response; a rate-limited one is asked for again instead."""
        if event.response_id == self._active_response:
            self._active_response = None
        self._interrupted_responses.discard(event.response_id)
        if event.usage is not None:
            self._account(event.response_id, event.usage)
        if event.usage_follows:
            self._usage_pending.add(event.response_id)
        calls, self._response_calls = self._response_calls, []
        results, self._early_results = self._early_results, []
        if event.status is ResponseStatus.FAILED:
            # The provider may not keep what a failed response asked for.
            self._withdraw(tuple(call.call_id for call in calls if call.call_id))
        else:
            if event.transcript.strip():
                self._remember(HistoryItem(HistoryRole.ASSISTANT, event.transcript))
            for item in (*calls, *results):
                self._remember(item)
        retrying = None
        if event.error_kind is ErrorKind.RATE_LIMIT:
            retrying = self._retry_rate_limited(event.response_id, event.retry_after_s)
        else:
            self._rate_limit_tries, self._rate_limit_waited_s = 0, 0.0
        self._maybe_recycle()
        return retrying or event

    def _account(self, response_id: str | None, usage: Usage) -> None:
        """Keep a usage report by response (the newest few) and hand it to the owner."""
        self.stats["usage_total_tokens"] += usage.total_tokens
        if response_id is not None:
            self._usage_pending.discard(response_id)
            self._usage[response_id] = self._usage.pop(response_id, Usage()) + usage
            if len(self._usage) > _USAGE_KEPT:
                del self._usage[next(iter(self._usage))]
        if self._on_usage is not None:
            try:
                self._on_usage(usage)
            except Exception:  # the owner's bookkeeping must not end the session
                _LOGGER.exception("Usage callback failed")

    def _disconnected(self) -> None:
        """The connection is gone: its time counts to `connected_s`."""
        if self._connected_since is not None:
            self._connected_before_s += time.monotonic() - self._connected_since
            self._connected_since = None

    def _retry_rate_limited(
        self, response_id: str | None, retry_after_s: float | None
    ) -> ResponseRetrying | None:
        """Ask for the response again after a wait, within the policy's budget."""
        policy = self._policy
        delay = retry_after_s or policy.first_delay_s * 2**self._rate_limit_tries
        if (
            self._rate_limit_tries >= policy.rate_limit_attempts
            or self._rate_limit_waited_s + delay > policy.rate_limit_budget_s
        ):
            self._rate_limit_tries, self._rate_limit_waited_s = 0, 0.0
            return None
        self._rate_limit_tries += 1
        self._rate_limit_waited_s += delay
        self.stats["rate_limit_retries"] += 1
        self._expecting_response = True
        self._rate_limit_retry = self._spawn(self._ask_after(delay), "realtime_session_retry")
        return ResponseRetrying(response_id, delay)

    async def _ask_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        try:
            await self._deliver(lambda connection: connection.create_response())
        except RealtimeError as err:
            _LOGGER.debug("Could not ask for the response again: %s", err)

    def _mark_interrupted(self, response_id: str | None) -> None:
        if response_id is None:
            return
        self.stats["interruptions"] += 1
        if response_id == self._active_response:
            # Audio of it still arriving is stale; forgotten when the response ends.
            self._interrupted_responses.add(response_id)
        for subscription in self._subscribers:
            subscription.discard_audio(response_id)
        self._emit(Interrupted(response_id))

    def _remember(self, item: HistoryItem) -> None:
        self._history.append(item)

    def _emit(self, event: SessionEvent) -> None:
        for subscription in self._subscribers:
            subscription.put(event)
