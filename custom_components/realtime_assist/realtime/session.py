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
"""

from __future__ import annotations

import asyncio
from collections import deque
import contextlib
from dataclasses import dataclass
import logging
from typing import Any

from .audio import Resampler, duration_ms
from .config import SessionConfig
from .errors import AuthenticationError, ConnectError, RealtimeError, SessionClosedError
from .events import (
    AudioChunk,
    InputTranscript,
    Interrupted,
    ProviderError,
    Reconnected,
    ResponseDone,
    ResponseStarted,
    ResponseStatus,
    SessionClosed,
    SessionEvent,
    SpeechStarted,
    SpeechStopped,
)
from .providers.base import (
    ConnectionLost,
    HistoryItem,
    HistoryRole,
    Provider,
    ProviderConnection,
)

_LOGGER = logging.getLogger(__name__)


class _SessionFailed(Exception):
    """The provider ended the session for good (fatal error, unrecoverable close)."""


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How hard to try when the connection drops."""

    attempts: int = 5
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0
    # Recycle a connection this long before the provider would end it.
    recycle_margin_s: float = 60.0
    # The user's audio since the last end of turn is kept (up to this) and
    # replayed into a new connection: a drop mid-utterance loses no words.
    max_replay_audio_s: float = 10.0


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
    ) -> None:
        self._provider = provider
        self._config = config
        self._input_rate = input_sample_rate
        self._policy = reconnect or ReconnectPolicy()
        self._max_buffered_audio_s = max_buffered_audio_s
        self._subscribers: set[Subscription] = set()
        self._connection: ProviderConnection | None = None
        self._connected = asyncio.Event()
        self._resampler: Resampler | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._recycle_timer: asyncio.TimerHandle | None = None
        self._recycle_due = False
        self._closing = False
        self._closed = False
        self._active_response: str | None = None
        self._interrupted_responses: set[str] = set()
        self._history: deque[HistoryItem] = deque(maxlen=max_history_items)
        self._turn_audio: deque[bytes] = deque()
        self._turn_audio_ms = 0.0
        self.stats: dict[str, Any] = {
            "connects": 0,
            "reconnects": 0,
            "responses": 0,
            "interruptions": 0,
            "input_audio_ms": 0.0,
            "output_audio_ms": 0.0,
            "usage_total_tokens": 0,
            "last_error": None,
        }

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Connect; raises AuthenticationError or ConnectError if that fails."""
        await self._open()
        self._reader = asyncio.create_task(self._read(), name="realtime_session_reader")

    async def close(self) -> None:
        """End the session: the socket closes, `events()` ends after what is queued."""
        if self._closed:
            return
        self._closing = True
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
        self._finish(None)

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
    def active_response_id(self) -> str | None:
        """The response the model is generating now, if any."""
        return self._active_response

    @property
    def history(self) -> list[HistoryItem]:
        """Finished turns, oldest first, as replayed after a reconnect."""
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
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def dropped_audio_ms(self) -> float:
        """Audio that slow consumers did not get (see the buffering policy)."""
        return sum(subscription.dropped_audio_ms for subscription in self._subscribers)

    # -- input ---------------------------------------------------------------

    async def send_audio(self, pcm: bytes) -> None:
        """Push user audio: PCM16 mono at the session's input sample rate."""
        self._ensure_open()
        chunk_ms = duration_ms(len(pcm), self._input_rate)
        self.stats["input_audio_ms"] += chunk_ms
        self._keep_turn_audio(pcm, chunk_ms)
        if self._connected.is_set() and self._connection is not None:
            await self._send_audio(self._connection, pcm)

    async def commit_audio(self) -> None:
        """End the user's turn by hand (when turn detection is off)."""
        self._forget_turn_audio()
        await (await self._ready()).commit_audio()

    async def clear_audio(self) -> None:
        self._forget_turn_audio()
        await (await self._ready()).clear_audio()

    async def send_text(self, text: str, *, respond: bool = True) -> None:
        """A user message typed rather than spoken."""
        self._remember(HistoryRole.USER, text)
        await (await self._ready()).send_text(text, respond=respond)

    async def send_image(self, image: bytes, mime_type: str = "image/jpeg") -> None:
        await (await self._ready()).send_image(image, mime_type)

    async def send_tool_result(self, call_id: str, name: str, result: dict[str, Any]) -> None:
        """Answer a ToolCall; the model goes on when every call of its response is answered."""
        await (await self._ready()).send_tool_result(call_id, name, result)

    async def create_response(self, instructions: str | None = None) -> None:
        await (await self._ready()).create_response(instructions)

    async def interrupt(self, played_ms: int | None = None) -> None:
        """The user cut the model off: stop its audio, keep only `played_ms` of it in memory."""
        connection = await self._ready()
        self._mark_interrupted(self._active_response)
        await connection.interrupt(played_ms)

    def report_played(self, played_ms: int) -> None:
        """How much of the current response's audio the user has heard so far."""
        if self._connection is not None:
            self._connection.report_played(played_ms)

    async def update(self, config: SessionConfig) -> None:
        """Change instructions, tools or turn detection without losing the conversation."""
        self._config = config
        if not await (await self._ready()).update(config):
            # The protocol takes a configuration only when connecting: resume on a new
            # connection with it, once no response is in flight.
            self._request_recycle()

    def _ensure_open(self) -> None:
        if self._closed or self._closing:
            raise SessionClosedError("the realtime session has ended")

    async def _ready(self) -> ProviderConnection:
        """The live connection, waiting out a reconnect in progress."""
        self._ensure_open()
        if not self._connected.is_set():
            async with asyncio.timeout(self._reconnect_budget_s()):
                await self._connected.wait()
        self._ensure_open()
        assert self._connection is not None
        return self._connection

    def _reconnect_budget_s(self) -> float:
        policy = self._policy
        return policy.attempts * (policy.max_delay_s + 10.0)

    def _keep_turn_audio(self, pcm: bytes, chunk_ms: float) -> None:
        """Remember the user's audio of the turn in progress, up to the policy's limit."""
        self._turn_audio.append(pcm)
        self._turn_audio_ms += chunk_ms
        while self._turn_audio_ms > self._policy.max_replay_audio_s * 1000:
            dropped = self._turn_audio.popleft()
            self._turn_audio_ms -= duration_ms(len(dropped), self._input_rate)

    def _forget_turn_audio(self) -> None:
        """The provider has the turn (it ended): nothing to replay any more."""
        self._turn_audio.clear()
        self._turn_audio_ms = 0.0

    async def _send_audio(self, connection: ProviderConnection, pcm: bytes) -> None:
        assert self._resampler is not None
        try:
            await connection.send_audio(self._resampler.process(pcm))
        except Exception:  # the reader sees the drop, reconnects and replays the turn
            _LOGGER.debug("Audio send failed; it will be replayed after reconnecting")

    # -- connection management -----------------------------------------------

    async def _open(self, resume: object | None = None) -> None:
        connection = await self._provider.connect(self._config, resume)
        self.stats["connects"] += 1
        self._connection = connection
        self._resampler = Resampler(self._input_rate, connection.input_sample_rate)
        self._recycle_due = False
        if connection.max_duration_s is not None:
            delay = max(1.0, connection.max_duration_s - self._policy.recycle_margin_s)
            self._recycle_timer = asyncio.get_running_loop().call_later(
                delay, self._request_recycle
            )
        self._connected.set()

    def _request_recycle(self) -> None:
        """The connection nears its time limit: replace it once no response is in flight."""
        self._recycle_due = True
        if self._active_response is None:
            self._close_for_recycle()

    def _close_for_recycle(self) -> None:
        """Close the connection; the reader then opens the next one."""
        if self._connection is None:
            return
        task = asyncio.create_task(self._connection.close(), name="realtime_session_recycle")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self) -> None:
        error: str | None = None
        try:
            while True:
                assert self._connection is not None
                reason = await self._pump(self._connection)
                if reason is None:
                    return
                if not await self._reconnect(reason):
                    error = self.stats["last_error"] or reason
                    return
        except _SessionFailed as err:
            error = str(err)
        except AuthenticationError as err:
            error = f"authentication failed: {err}"
        except Exception as err:
            _LOGGER.exception("Realtime session reader failed")
            error = str(err) or type(err).__name__
        finally:
            if not self._closing:
                self._connected.clear()
                if self._connection is not None:
                    with contextlib.suppress(Exception):
                        await self._connection.close()
                self._finish(error)

    async def _pump(self, connection: ProviderConnection) -> str | None:
        """Forward one connection's events; the reason to reconnect, or None when closed."""
        try:
            async for event in connection.events():
                self._observe(event)
                if isinstance(event, ProviderError) and event.fatal:
                    raise _SessionFailed(f"{event.code}: {event.message}")
        except ConnectionLost as lost:
            if lost.retryable:
                return lost.reason
            raise _SessionFailed(lost.reason) from lost
        if self._recycle_due and not self._closing:
            return "recycled before the provider's session limit"
        return None

    async def _reconnect(self, reason: str) -> bool:
        """Open a new connection and replay the conversation into it."""
        self._connected.clear()
        if self._recycle_timer is not None:
            self._recycle_timer.cancel()
        lost_response = self._active_response
        if lost_response is not None:
            self._active_response = None
            self._emit(ResponseDone(lost_response, ResponseStatus.FAILED, reason="connection_lost"))
        resume = None
        if self._connection is not None:
            resume = self._connection.resume_state()
            with contextlib.suppress(Exception):
                await self._connection.close()
        if not self._recycle_due:
            _LOGGER.warning("Realtime connection lost (%s); reconnecting", reason)
        delay = self._policy.first_delay_s
        for attempt in range(self._policy.attempts):
            if attempt or not self._recycle_due:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._policy.max_delay_s)
            try:
                await self._open(resume)
            except AuthenticationError:
                raise
            except (ConnectError, RealtimeError) as err:
                self.stats["last_error"] = str(err)
                _LOGGER.info("Reconnect attempt %d failed: %s", attempt + 1, err)
                continue
            break
        else:
            return False
        assert self._connection is not None
        history = list(self._history)
        await self._connection.restore(history)
        for pcm in list(self._turn_audio):
            await self._send_audio(self._connection, pcm)
        self.stats["reconnects"] += 1
        self._emit(Reconnected(reason, len(history), lost_response is not None))
        return True

    def _finish(self, error: str | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._connected.set()  # wake waiters; they see the session closed
        if self._recycle_timer is not None:
            self._recycle_timer.cancel()
        for subscription in self._subscribers:
            subscription.put(SessionClosed(error))
            subscription.end()
        self._subscribers.clear()

    # -- event bookkeeping ---------------------------------------------------

    def _observe(self, event: SessionEvent) -> None:
        """Keep history and turn state, then hand the event to the consumer."""
        match event:
            case Interrupted(response_id=response_id):
                # The provider says the user cut in (it keeps no truncation to send).
                self._mark_interrupted(response_id)
                return
            case ResponseStarted(response_id=response_id):
                self._active_response = response_id
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
                self._forget_turn_audio()
            case InputTranscript(final=True, text=text) if text.strip():
                self._remember(HistoryRole.USER, text)
            case ResponseDone():
                self._response_done(event)
            case ProviderError():
                self.stats["last_error"] = f"{event.code}: {event.message}"
        self._emit(event)

    def _response_done(self, event: ResponseDone) -> None:
        if event.response_id == self._active_response:
            self._active_response = None
        self._interrupted_responses.discard(event.response_id)
        if event.usage is not None:
            self.stats["usage_total_tokens"] += event.usage.total_tokens
        if event.transcript.strip() and event.status is not ResponseStatus.FAILED:
            self._remember(HistoryRole.ASSISTANT, event.transcript)
        if self._recycle_due:
            self._close_for_recycle()

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

    def _remember(self, role: HistoryRole, text: str) -> None:
        self._history.append(HistoryItem(role, text))

    def _emit(self, event: SessionEvent) -> None:
        for subscription in self._subscribers:
            subscription.put(event)
