"""One exchange with the model, and the one answer to "when does a turn end".

A turn is the user's words (spoken or typed) and the model's reply to them,
tool rounds included. Three readers take part at different times: speech-to-
text (the user's audio in, the transcript out), the agent (the model's words
and tool calls into Home Assistant's chat log) and text-to-speech (the model's
voice out). A turn subscribes to the session before the user's first audio
frame and one task, `Turn._run`, reads the session's events for all three:
it decides which events are this turn's, moves the turn through its phases,
enforces a deadline on every wait, and ends the turn exactly once.

    LISTENING ──user stopped──▶ WAITING ──model starts──▶ RESPONDING ──▶ ENDED
        │                          │                         │
        │ nobody spoke             │ no answer in time       │ last response done: ok
        ▼                          ▼                         │ failed / silent too long /
    ENDED (no_speech)          ENDED (timeout)               ▼ interrupted / session gone
                                                           ENDED

A typed turn starts in WAITING. A full-duplex listener (a browser, whose
microphone stays open) sends its audio to the session itself and begins each
turn ahead of the user's words, or just after the provider heard them start
(`speaking`); it plays the model's audio chunks itself (`audio_chunks`) and
tells the turn what it played when the user cuts in (`interrupt(played)`).
When a turn ends, everything it owns goes with
it: its subscription, the tasks attached to it (a paired camera), its entry in
the owner's registry (`on_end` callbacks). What the readers have not read yet
stays readable; their iterators end after it, raising the turn's failure if
it failed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
import logging

from .audio import Resampler, duration_ms
from .config import OutputModality
from .errors import ErrorKind, RealtimeError
from .events import (
    AudioChunk,
    AwaitingToolResults,
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
    TranscriptDelta,
    Usage,
    UsageReported,
)
from .session import RealtimeSession

_LOGGER = logging.getLogger(__name__)

# Provider errors after which no answer is coming (others are logged: the deadlines
# still end a turn whose answer stalls).
_TURN_ENDING_ERRORS = frozenset(
    {ErrorKind.AUTH, ErrorKind.QUOTA, ErrorKind.RATE_LIMIT, ErrorKind.PROTOCOL}
)
# What speech-to-text reports when the model is already answering words whose
# transcript has not arrived (or never will): the model heard the user.
UNHEARD_WORDS = "…"


class TurnPhase(StrEnum):
    LISTENING = "listening"
    WAITING = "waiting"
    RESPONDING = "responding"
    ENDED = "ended"


class FailureReason(StrEnum):
    """Why a turn failed: the provider's error kinds and the turn's own."""

    NO_SPEECH = "no_speech"
    TIMEOUT = "timeout"
    AUTH = ErrorKind.AUTH.value
    QUOTA = ErrorKind.QUOTA.value
    RATE_LIMIT = ErrorKind.RATE_LIMIT.value
    SERVER = ErrorKind.SERVER.value
    CONNECTION = ErrorKind.CONNECTION.value
    PROTOCOL = ErrorKind.PROTOCOL.value
    REQUEST = ErrorKind.REQUEST.value
    TRANSCRIPTION = ErrorKind.TRANSCRIPTION.value
    # Refused before it began: the agent's daily spend limit is reached.
    SPEND_LIMIT = "spend_limit"

    @classmethod
    def of(cls, kind: ErrorKind | None) -> FailureReason:
        return cls(kind.value) if kind is not None else cls.CONNECTION


class TurnError(RealtimeError):
    """The turn failed; `reason` says how (for the message the user hears).

    `placeholders` fill the message's blanks (the limit that was reached).
    """

    def __init__(
        self, reason: FailureReason, detail: str, placeholders: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.placeholders = dict(placeholders or {})


@dataclass(frozen=True, slots=True)
class TurnDeadlines:
    """The longest each wait of a turn may take (seconds)."""

    # Listening: the user must start speaking...
    speech_start_s: float = 8.0
    # ...and the provider must hear them stop (else the turn is ended by hand).
    max_speech_s: float = 30.0
    # The user's audio ended by itself: the provider decides about what it has.
    after_audio_s: float = 5.0
    # ...or much sooner when it never heard the user start.
    after_silent_audio_s: float = 2.0
    # The user stopped: the provider's transcript (later ones take a placeholder).
    transcript_s: float = 5.0
    # The user stopped (or typed): the model starts answering.
    response_start_s: float = 15.0
    # Inside a response: the longest silence between two of its events.
    response_gap_s: float = 15.0
    # The model waits for our tool results (tools have their own, shorter limit).
    tool_results_s: float = 40.0
    # A new turn cuts off the one before: telling the provider so.
    interrupt_s: float = 2.0
    # A turn gets its session (connected, or reconnected, and configured).
    session_s: float = 15.0


DEFAULT_DEADLINES = TurnDeadlines()


class TurnTracker:
    """Which events are a turn's, and when its model's reply is over.

    A response that asked for tools is followed by another once the results
    are in; the reply ends with the first response that did not ask. Only
    responses that started while the tracker watched are the turn's: the late
    end of an earlier reply (one the user talked over, cancelled after the new
    turn began; Gemini's `interrupted` for a reply whose generation was already
    complete) must not end the new turn, nor its words become the new answer.
    """

    def __init__(self) -> None:
        self.awaiting_results = False
        self._responses: set[str] = set()

    @property
    def responses(self) -> frozenset[str]:
        """The responses that are the turn's."""
        return frozenset(self._responses)

    def belongs(self, event: SessionEvent) -> bool:
        """False for an event of a response that started before this turn."""
        match event:
            case ResponseStarted(response_id=response_id):
                self._responses.add(response_id)
            case (
                AudioChunk(response_id=response_id)
                | TranscriptDelta(response_id=response_id)
                | ToolCall(response_id=response_id)
                | ResponseDone(response_id=response_id)
                | Interrupted(response_id=response_id)
                | UsageReported(response_id=response_id)
            ):
                return response_id in self._responses
        return True

    def ends_turn(self, event: SessionEvent) -> bool:
        if not self.belongs(event):
            return False
        match event:
            case AwaitingToolResults():
                self.awaiting_results = True
            case ResponseDone() if self.awaiting_results:
                self.awaiting_results = False
            case ResponseDone() | SessionClosed() | Interrupted():
                return True
        return False


class Turn:
    """One exchange on a live session; see the module docstring for its lifecycle."""

    def __init__(
        self,
        session: RealtimeSession,
        *,
        deadlines: TurnDeadlines | None = None,
        typed: bool = False,
        speaking: bool = False,
    ) -> None:
        self.session = session
        self._deadlines = deadlines or DEFAULT_DEADLINES
        self._loop = asyncio.get_running_loop()
        self._events = session.subscribe()
        self._tracker = TurnTracker()
        self.phase = TurnPhase.WAITING if typed else TurnPhase.LISTENING
        self._phase_since = self._loop.time()
        self._heard_at: float | None = None
        self._audio_ended_at: float | None = None
        self._last_event_at = self._phase_since
        self._results_asked_at: float | None = None
        # The tool calls the model waits for, and whether the connection was replaced since.
        self._awaited: set[str] = set()
        self._reconnected = False
        self._retry_until = 0.0
        self._partial: list[str] = []
        # What speech-to-text returns: the provider's transcript, or the words so far
        # once the model is answering (a reply must not wait for a transcript).
        self._heard: asyncio.Future[str] = self._loop.create_future()
        # The provider's final words for the user's turn, whenever they come (None: never).
        self.transcript: asyncio.Future[str | None] = self._loop.create_future()
        self._replies: deque[SessionEvent] = deque()
        self._replies_added = asyncio.Event()
        self._audio: deque[AudioChunk] = deque()
        self._audio_added = asyncio.Event()
        self._timeout: asyncio.Timeout | None = None
        self._buffer_audio = True
        self.speech_started = asyncio.Event()
        if speaking:
            # The provider heard the user start before the turn began: their speech
            # is under way (no wait for it to start; its length counts from now).
            self._heard_at = self._phase_since
            self.speech_started.set()
        # The model's voice for this turn has begun (its first audio chunk is here).
        self.speaking = asyncio.Event()
        self.ended = asyncio.Event()
        self.failure: TurnError | None = None
        self.interrupted = False
        # The agent took this turn's reply (a message typed next starts a new turn).
        self.answered = False
        # What began the turn (the glue's pipeline run): only its own agent stage takes it.
        self.began_in: str | None = None
        # The model said up front that its reply will ask the user something.
        self.expects_answer = False
        # What the model said, by response (a tool round starts another).
        self._said: dict[str, list[str]] = {}
        # The model's function calls, in order (the turn record lists them).
        self.tool_calls: list[ToolCall] = []
        # When the user's words were over (spoken: the provider heard them stop; typed:
        # sent) and when the model's voice began (loop time): the turn's latency.
        self.speech_ended_at: float | None = None
        self.first_audio_at: float | None = None
        self.playback: ReplyAudio | None = None
        self._attached: set[asyncio.Task[None]] = set()
        self._on_end: list[Callable[[Turn], None]] = []
        self._sender: asyncio.Task[None] | None = None
        self._task = asyncio.create_task(self._run(), name="realtime_turn")

    # -- the owner's side ------------------------------------------------------

    def on_end(self, callback: Callable[[Turn], None]) -> None:
        """Call `callback` once when the turn ends (at once if it has)."""
        if self.phase is TurnPhase.ENDED:
            callback(self)
        else:
            self._on_end.append(callback)

    def attach(self, task: asyncio.Task[None]) -> None:
        """A task that lives as long as the turn (a paired camera): cancelled at its end."""
        if self.phase is TurnPhase.ENDED:
            task.cancel()
            return
        self._attached.add(task)
        task.add_done_callback(self._attached.discard)

    async def cancel(self, reason: str = "cancelled") -> None:
        """End the turn now (nobody will read it any more), and wait until it has."""
        if self.phase is not TurnPhase.ENDED:
            _LOGGER.debug("Ending a realtime turn: %s", reason)
            self._end(None, interrupted=True)
        await self.wait_ended()

    async def wait_ended(self) -> None:
        await asyncio.wait({self._task})

    async def interrupt(self, played: Mapping[str, int] | None = None) -> None:
        """A new turn cut this one off: the model keeps only what the listener heard.

        `played` is what a listener that plays the audio itself reports it heard of
        each audio item (ms); else the modelled playback of `reply_audio` counts.
        """
        if played is None:
            played = self.playback.heard_by_item() if self.playback is not None else {}
        if self.phase is not TurnPhase.ENDED:
            self._end(None, interrupted=True)
        try:
            # Best effort, and quick: the next turn waits for it.
            async with asyncio.timeout(self._deadlines.interrupt_s):
                await self.session.interrupt(played)
        except (RealtimeError, TimeoutError) as err:
            _LOGGER.debug("Could not interrupt the previous reply: %r", err)

    def still_playing(self) -> bool:
        """The listener has not heard all of the reply yet."""
        return self.playback is not None and self.playback.still_playing()

    @property
    def done_ok(self) -> bool:
        return self.phase is TurnPhase.ENDED and self.failure is None and not self.interrupted

    @property
    def usage(self) -> Usage:
        """What the provider billed for this turn's responses, as far as it has reported."""
        return self.session.usage_of(self._tracker.responses)

    @property
    def usage_pending(self) -> bool:
        """The provider has yet to report usage of this turn (Gemini: after playback)."""
        return self.session.usage_pending(self._tracker.responses)

    # -- speech-to-text --------------------------------------------------------

    async def listen(self, audio: AsyncIterable[bytes], *, commit_at_end: bool) -> str:
        """Stream the user's audio until the provider ends their turn; return their words.

        With the provider's turn detection the provider decides when the user
        stopped; otherwise (`commit_at_end`) the end of `audio` ends the turn.
        Returns as soon as the transcript is in or the model starts answering
        (then with the words so far); raises TurnError when the turn fails.
        """
        if commit_at_end and self._heard_at is None:
            # No provider reports speech starting without its turn detection: the
            # stream is the speech (Home Assistant's VAD ends it), up to `max_speech_s`.
            self._heard_at = self._phase_since
            self._reschedule()
        self._sender = asyncio.create_task(
            self._send_audio(audio, commit_at_end), name="realtime_turn_audio"
        )
        try:
            return await self.heard()
        except asyncio.CancelledError:
            # The pipeline gave up on this turn (a new wake word, a broken stream).
            if self.phase is not TurnPhase.ENDED:
                self._end(TurnError(FailureReason.NO_SPEECH, "speech-to-text was cancelled"))
            raise
        finally:
            self._sender.cancel()

    async def heard(self) -> str:
        """The user's words: the transcript, or the words so far once the model answers.

        Raises TurnError when the turn fails first. `listen` returns this; a
        full-duplex listener, which sends its audio itself, awaits it directly.
        """
        await asyncio.wait({self._heard})
        return self._heard.result()

    async def _send_audio(self, audio: AsyncIterable[bytes], commit_at_end: bool) -> None:
        try:
            async for chunk in audio:
                if self.phase is not TurnPhase.LISTENING:
                    return
                await self.session.send_audio(chunk)
            if self.phase is not TurnPhase.LISTENING:
                return
            if commit_at_end:
                await self.session.commit_audio()
                self._user_turn_ended()
            else:
                # The provider may still be deciding about audio it already has.
                self._audio_ended_at = self._loop.time()
                self._reschedule()
        except RealtimeError as err:
            if self.phase is not TurnPhase.ENDED:
                self._end(TurnError(FailureReason.of(err.kind), str(err)))

    async def send_text(self, text: str) -> None:
        """A typed user message starts the turn's reply.

        A session that cannot take it (closed, or its connection not back in time)
        fails the turn: TurnError, which the agent tells the user, like any failure.
        """
        try:
            await self.session.send_text(text)
        except RealtimeError as err:
            failure = TurnError(FailureReason.of(err.kind), str(err))
            self._end(failure)
            raise failure from err
        self._user_turn_ended()

    # -- the agent ---------------------------------------------------------------

    async def replies(self) -> AsyncIterator[SessionEvent]:
        """The model's words, tool calls and response ends of this turn, as they come.

        Ends with the turn; raises its TurnError after the last event if it failed.
        """
        while True:
            while self._replies:
                yield self._replies.popleft()
            if self.phase is TurnPhase.ENDED:
                break
            self._replies_added.clear()
            await self._replies_added.wait()
        if self.failure is not None:
            raise self.failure

    def words_so_far(self) -> str:
        """What the model has said (or written) in this turn by now."""
        return _sentences(self._said.values())

    def withdrawn(self, call_id: str) -> bool:
        """Whether the provider already withdrew a tool call (the news is queued, unread)."""
        return any(
            isinstance(event, ToolCallsCancelled) and call_id in event.call_ids
            for event in self._replies
        )

    async def reply_text(self) -> str:
        """Everything the model said or wrote in this turn."""
        async for _event in self.replies():
            pass
        return self.words_so_far()

    # -- text-to-speech ----------------------------------------------------------

    def reply_audio(self, sample_rate: int) -> AsyncIterator[bytes]:
        """The model's voice (PCM16 mono at `sample_rate`) as one listener's stream."""
        self.playback = ReplyAudio(self, sample_rate)
        return self.playback.stream()

    async def audio_chunks(self) -> AsyncIterator[AudioChunk]:
        """The model's voice as it comes, with its audio items, for a listener that plays
        it itself and reports what it heard (a browser). Ends with the turn's audio."""
        while (chunk := await self._next_audio(None)) is not None:
            yield chunk

    @property
    def unread_audio(self) -> bool:
        """Some of the model's voice waits to be read."""
        return bool(self._audio)

    @property
    def plays_audio(self) -> bool:
        """The model answers in its voice and somebody may play it."""
        return self._buffer_audio and self.session.config.output_modality is OutputModality.AUDIO

    def discard_audio(self) -> None:
        """Nobody will play the model's voice of this turn: stop keeping it."""
        self._buffer_audio = False
        self._audio.clear()

    async def _next_audio(self, until: float | None) -> AudioChunk | None:
        """The next audio chunk; None at the end of the turn or at `until` (loop time)."""
        while not self._audio:
            if self.phase is TurnPhase.ENDED:
                return None
            self._audio_added.clear()
            try:
                async with asyncio.timeout_at(until):
                    await self._audio_added.wait()
            except TimeoutError:
                return None
        return self._audio.popleft()

    # -- the turn's task -----------------------------------------------------------

    async def _run(self) -> None:
        try:
            while self.phase is not TurnPhase.ENDED:
                try:
                    async with asyncio.timeout_at(self._deadline()) as self._timeout:
                        event = await anext(self._events)
                    self._timeout = None
                except TimeoutError:
                    self._timeout = None
                    await self._deadline_passed()
                    continue
                except StopAsyncIteration:
                    self._timeout = None
                    self._end(TurnError(FailureReason.CONNECTION, "the session ended"))
                    break
                await self._handle(event)
        finally:
            self._events.close()

    def _reschedule(self) -> None:
        """The phase changed outside `_run`: its current wait gets the new deadline."""
        if self._timeout is not None and not self._timeout.expired():
            self._timeout.reschedule(self._deadline())

    def _deadline(self) -> float:
        return min(self._deadlines_due().values())

    def _deadlines_due(self) -> dict[str, float]:
        """Each pending wait and when it gives up (loop time)."""
        limits = self._deadlines
        due: dict[str, float] = {}
        if not self._heard.done() and self.phase is not TurnPhase.LISTENING:
            due["transcript"] = self._phase_since + limits.transcript_s
        match self.phase:
            case TurnPhase.LISTENING if self._audio_ended_at is not None:
                wait = limits.after_audio_s if self._heard_at else limits.after_silent_audio_s
                due["audio_ended"] = self._audio_ended_at + wait
            case TurnPhase.LISTENING if self._heard_at is not None:
                due["max_speech"] = self._heard_at + limits.max_speech_s
            case TurnPhase.LISTENING:
                due["speech_start"] = self._phase_since + limits.speech_start_s
            case TurnPhase.WAITING:
                due["response_start"] = (
                    max(self._phase_since, self._retry_until) + limits.response_start_s
                )
            case TurnPhase.RESPONDING if self._results_asked_at is not None:
                due["tool_results"] = self._results_asked_at + limits.tool_results_s
            case TurnPhase.RESPONDING:
                due["response_gap"] = (
                    max(self._last_event_at, self._retry_until) + limits.response_gap_s
                )
        return due

    async def _deadline_passed(self) -> None:
        now = self._loop.time()
        for wait, at in self._deadlines_due().items():
            if at > now:
                continue
            match wait:
                case "transcript":
                    self._settle_heard()
                case "max_speech":
                    _LOGGER.debug(
                        "The user spoke for %ss: ending their turn", self._deadlines.max_speech_s
                    )
                    await self._end_user_turn_by_hand()
                case "speech_start" | "audio_ended" if self._heard_at is None:
                    self._end(TurnError(FailureReason.NO_SPEECH, "nobody spoke"))
                case "audio_ended":
                    self._end(TurnError(FailureReason.TIMEOUT, "the user's turn never ended"))
                case _:
                    self._end(TurnError(FailureReason.TIMEOUT, f"no answer in time ({wait})"))

    async def _end_user_turn_by_hand(self) -> None:
        """Commit the user's audio and ask for the answer (never waits: `_run` must not)."""
        self._user_turn_ended()
        self.attach(asyncio.create_task(self._commit(), name="realtime_turn_commit"))

    async def _commit(self) -> None:
        try:
            await self.session.commit_audio()
            await self.session.create_response()
        except RealtimeError as err:
            self._end(TurnError(FailureReason.of(err.kind), str(err)))

    async def _handle(self, event: SessionEvent) -> None:
        if self.phase is TurnPhase.ENDED or not self._tracker.belongs(event):
            return  # the late end of an earlier reply
        match event:
            case SpeechStarted():
                self.speech_started.set()
                if self.phase is TurnPhase.LISTENING and self._heard_at is None:
                    self._heard_at = self._loop.time()
            case SpeechStopped():
                self._user_turn_ended()
            case InputTranscript(final=False, text=text):
                self._partial.append(text)
            case InputTranscript(final=True, text=text):
                self._transcribed(text)
            case ProviderError(kind=ErrorKind.TRANSCRIPTION):
                _LOGGER.info("The provider could not transcribe the user: %s", event.message)
                self._transcribed(None)
            case ProviderError() if event.refused_response or event.kind in _TURN_ENDING_ERRORS:
                self._end(TurnError(FailureReason.of(event.kind), event.message))
            case ProviderError():
                _LOGGER.debug("Provider error during a turn: %s %s", event.code, event.message)
            case ResponseRetrying(delay_s=delay_s):
                self._retry_until = self._loop.time() + delay_s
            case SessionClosed(error=error, kind=kind):
                self._end(TurnError(FailureReason.of(kind), error or "the session closed"))
            case ResponseStarted():
                self._user_turn_ended()
                self._set_phase(TurnPhase.RESPONDING)
                self._reply(event)
            case AudioChunk():
                self._settle_heard()
                if self.first_audio_at is None:
                    self.first_audio_at = self._loop.time()
                if self._buffer_audio:
                    self._audio.append(event)
                self.speaking.set()
                self._audio_added.set()
            case TranscriptDelta(response_id=response_id, text=text):
                self._said.setdefault(response_id, []).append(text)
                self._settle_heard()
                self._reply(event)
            case ToolCall():
                self.tool_calls.append(event)
                self._settle_heard()
                self._reply(event)
            case ToolCallsCancelled(call_ids=call_ids):
                self._reply(event)
                self._withdrawn(call_ids)
            case AwaitingToolResults(call_ids=call_ids):
                self._tracker.awaiting_results = True
                self._results_asked_at = self._loop.time()
                self._awaited = set(call_ids)
                self._reply(event)
            case Reconnected():
                self._reconnected = True
                self._check_awaited()
            case ResponseDone():
                self._reply(event)
                self._response_done(event)
            case Interrupted():
                self._end(None, interrupted=True)
        self._last_event_at = self._loop.time()

    def _withdrawn(self, call_ids: tuple[str, ...]) -> None:
        """The provider withdrew tool calls: after a reconnect, the model won't go on.

        Gemini withdraws calls when the user speaks over the model (the turn ends
        as interrupted) and when a new connection cannot know them (the turn
        fails: it would wait for results the model no longer expects).
        """
        self._awaited -= set(call_ids)
        self._check_awaited()

    def _check_awaited(self) -> None:
        if self._results_asked_at is not None and not self._awaited and self._reconnected:
            self._end(TurnError(FailureReason.CONNECTION, "the connection dropped mid-tool-call"))

    def _response_done(self, event: ResponseDone) -> None:
        match event.status:
            case ResponseStatus.FAILED:
                reason = FailureReason.of(event.error_kind)
                self._end(TurnError(reason, event.reason or "the model's answer failed"))
            case ResponseStatus.INTERRUPTED | ResponseStatus.CANCELLED:
                self._end(None, interrupted=True)
            case _ if self._tracker.awaiting_results:
                # The model goes on once the results are in: a new response follows.
                self._tracker.awaiting_results = False
                self._results_asked_at = self._loop.time()
            case _:
                self._end(None)

    def _user_turn_ended(self) -> None:
        if self.speech_ended_at is None:
            self.speech_ended_at = self._loop.time()
        if self.phase is TurnPhase.LISTENING:
            self._set_phase(TurnPhase.WAITING)
            if self._sender is not None:
                self._sender.cancel()
            self._reschedule()

    def _set_phase(self, phase: TurnPhase) -> None:
        if self.phase is not phase and self.phase is not TurnPhase.ENDED:
            self.phase = phase
            self._phase_since = self._loop.time()

    def _transcribed(self, text: str | None) -> None:
        if not self.transcript.done():
            self.transcript.set_result(text)
        if text is not None and not self._heard.done():
            self._heard.set_result(text.strip() or UNHEARD_WORDS)
        self._settle_heard()

    def _settle_heard(self) -> None:
        """Speech-to-text returns now: with the words so far if the transcript is late."""
        if not self._heard.done():
            self._heard.set_result("".join(self._partial).strip() or UNHEARD_WORDS)

    def _reply(self, event: SessionEvent) -> None:
        if isinstance(event, ResponseStarted | TranscriptDelta | ToolCall):
            self._results_asked_at = None
        self._replies.append(event)
        self._replies_added.set()

    def _end(self, failure: TurnError | None, *, interrupted: bool = False) -> None:
        if self.phase is TurnPhase.ENDED:
            return
        self.phase = TurnPhase.ENDED
        self.failure = failure
        self.interrupted = interrupted
        if failure is not None and failure.reason is not FailureReason.NO_SPEECH:
            _LOGGER.warning("Realtime turn failed (%s): %s", failure.reason, failure.detail)
        if not self._heard.done():
            if failure is not None:
                self._heard.set_exception(failure)
                self._heard.exception()  # retrieved: a turn nobody listened to is no error
            else:
                self._settle_heard()
        if not self.transcript.done():
            self.transcript.set_result(None)
        if self._sender is not None:
            self._sender.cancel()
        for task in list(self._attached):
            task.cancel()
        if failure is not None:
            self.session.abandon_user_turn()
        if interrupted:
            self._audio.clear()  # nobody hears the rest of a reply that was cut off
        self._events.close()  # `_run` stops reading
        self.ended.set()
        self._replies_added.set()
        self._audio_added.set()
        callbacks, self._on_end = self._on_end, []
        for callback in callbacks:
            callback(self)


def _sentences(responses: Iterable[list[str]]) -> str:
    """The texts of a turn's responses, a space between two (each is whole sentences)."""
    return " ".join(text for parts in responses if (text := "".join(parts).strip()))


@dataclass(slots=True)
class _Segment:
    """A stretch of the stream that holds model audio of one item."""

    item_id: str
    stream_at_ms: float
    duration_ms: float
    item_at_ms: float


class ReplyAudio:
    """The model's voice of one turn as one listener's stream.

    Resampled to the listener's rate and kept flowing: players stall on a
    stream that stops (Voice PE needs a power cycle after 5 s), so when the
    model goes quiet (tools run mid-reply, a slow model) and the listener has
    run out of audio for a moment, silence fills in until the model speaks
    again. The stream also keeps the books for barge-in: which part of which
    of the model's audio items the listener has heard by now. The listener is
    assumed to play from the first byte in real time, pausing when it runs dry.
    """

    SILENCE_MS = 100.0
    # The listener may run dry this long before silence fills in (a slow chunk
    # is not worth delaying the rest of the reply for).
    DRY_GRACE_S = 0.3
    # While silence fills a pause, the listener is kept this far ahead.
    FILL_LEAD_S = 0.1
    # Before the first audio, how long the opened stream waits before silence starts.
    FIRST_AUDIO_GRACE_S = 1.0

    def __init__(self, turn: Turn, sample_rate: int) -> None:
        self._turn = turn
        self.sample_rate = sample_rate
        self._loop = asyncio.get_running_loop()
        self.delivered_ms = 0.0
        # When the listener will have played everything delivered (loop time).
        self._plays_until: float | None = None
        self._filling = False
        self._segments: list[_Segment] = []
        self._item_ms: dict[str, float] = {}

    async def stream(self) -> AsyncIterator[bytes]:
        resampler: Resampler | None = None
        opened_at = self._loop.time()
        while True:
            chunk = await self._turn._next_audio(self._fill_due(opened_at))
            if chunk is None:
                if self._turn.phase is TurnPhase.ENDED and not self._turn._audio:
                    break
                self._filling = True
                yield self._silence()
                continue
            self._filling = False
            if resampler is None or resampler.rate_in != chunk.sample_rate:
                resampler = Resampler(chunk.sample_rate, self.sample_rate)
            if pcm := resampler.process(chunk.pcm):
                model_ms = duration_ms(len(chunk.pcm), chunk.sample_rate)
                self._account(pcm, chunk.item_id, model_ms)
                yield pcm
        if resampler is not None and not self._turn.interrupted and (tail := resampler.flush()):
            self._account(tail, None, 0.0)
            yield tail

    def _fill_due(self, opened_at: float) -> float:
        """When silence goes out if no audio came by then (loop time)."""
        if self._plays_until is None:
            return opened_at + self.FIRST_AUDIO_GRACE_S
        if self._filling:
            return self._plays_until - self.FILL_LEAD_S
        return self._plays_until + self.DRY_GRACE_S

    def _silence(self) -> bytes:
        pcm = bytes(2 * int(self.sample_rate * self.SILENCE_MS / 1000))
        self._account(pcm, None, 0.0)
        return pcm

    def _account(self, pcm: bytes, item_id: str | None, model_ms: float) -> None:
        length_ms = duration_ms(len(pcm), self.sample_rate)
        now = self._loop.time()
        self._plays_until = max(self._plays_until or now, now) + length_ms / 1000
        if item_id is not None:
            item_at = self._item_ms.get(item_id, 0.0)
            self._item_ms[item_id] = item_at + model_ms
            self._segments.append(_Segment(item_id, self.delivered_ms, length_ms, item_at))
        self.delivered_ms += length_ms

    def played_ms(self) -> float:
        """How far into the stream the listener is by now."""
        if self._plays_until is None:
            return 0.0
        ahead_ms = max(0.0, self._plays_until - self._loop.time()) * 1000
        return max(0.0, self.delivered_ms - ahead_ms)

    def still_playing(self) -> bool:
        return self._plays_until is not None and self._plays_until > self._loop.time()

    def heard_by_item(self) -> dict[str, int]:
        """How much of each of the model's audio items the listener has heard (ms), oldest first."""
        position = self.played_ms()
        heard: dict[str, int] = {}
        for segment in self._segments:
            if segment.stream_at_ms > position and segment.item_id in heard:
                continue  # not reached; what was heard of this item is counted already
            into = min(max(position - segment.stream_at_ms, 0.0), segment.duration_ms)
            heard[segment.item_id] = round(segment.item_at_ms + into)
        return heard
