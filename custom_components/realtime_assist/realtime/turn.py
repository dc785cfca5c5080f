"""One spoken exchange on a live session, shared by the three consumers of a voice turn.

A satellite's turn has three readers that run at different times: speech-to-
text (the user's audio in, the provider's transcript out), the agent (the
model's words and tool calls) and text-to-speech (the model's voice). Each
gets its own subscription, opened before the user's first audio frame, so none
of them misses what happened before it started reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
import contextlib
import time

from .audio import Resampler, duration_ms
from .events import (
    AudioChunk,
    AwaitingToolResults,
    InputTranscript,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    SessionClosed,
    SessionEvent,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    TranscriptDelta,
)
from .session import RealtimeSession


class TurnTracker:
    """Tells when the model's last response of a turn has ended.

    A response that asked for tools is followed by another once the results
    are in; the turn ends with the first response that did not ask. Only
    responses that started while the tracker watched are the turn's: the late
    end of an earlier reply (one the user talked over, cancelled after the new
    turn began; Gemini's `interrupted` for a reply whose generation was already
    complete) must not end the new turn, nor its words become the new answer.
    """

    def __init__(self) -> None:
        self._awaiting_results = False
        self._responses: set[str] = set()

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
            ):
                return response_id in self._responses
        return True

    def ends_turn(self, event: SessionEvent) -> bool:
        if not self.belongs(event):
            return False
        match event:
            case AwaitingToolResults():
                self._awaiting_results = True
            case ResponseDone() if self._awaiting_results:
                self._awaiting_results = False
            case ResponseDone() | SessionClosed() | Interrupted():
                return True
        return False


class NoSpeechError(Exception):
    """The audio ended before the provider heard the user finish a sentence."""


class VoiceTurn:
    """The user's audio in, the model's transcript, words and voice out."""

    def __init__(self, session: RealtimeSession, *, transcript_timeout_s: float = 10.0) -> None:
        self.session = session
        self._transcript_timeout_s = transcript_timeout_s
        self._stt_events = session.subscribe()
        self.agent_events = session.subscribe()
        self._audio_events = session.subscribe()
        self.transcript: str | None = None
        # The agent has streamed the model's answer (a new text turn starts a new VoiceTurn).
        self.agent_done = False
        # Playback estimate for barge-in: the satellite plays what we hand it in real time.
        self._first_audio_at: float | None = None
        self._delivered_ms = 0.0
        # Audio handed over per audio item, in order (what `interrupt` apportions).
        self._item_ms: dict[str, float] = {}

    async def listen(self, audio: AsyncIterable[bytes], *, commit_at_end: bool) -> str:
        """Stream the user's audio until the provider ends the turn; return its transcript.

        With the provider's turn detection the provider decides when the user
        stopped; otherwise (`commit_at_end`) the end of `audio` ends the turn.
        """
        pump = asyncio.create_task(self._pump(audio, commit_at_end), name="realtime_turn_audio")
        deadline: float | None = None
        heard = False
        try:
            while True:
                async with asyncio.timeout_at(deadline):
                    event = await self._next_event_or(pump)
                if event is None:
                    # The audio ended first. Committed by hand, the transcript follows;
                    # with the provider's turn detection it may still be deciding about
                    # audio already sent. Either way: wait for it, but not forever, and
                    # not long at all when the provider never heard the user start.
                    wait_s = self._transcript_timeout_s if heard or commit_at_end else 2.0
                    deadline = asyncio.get_running_loop().time() + wait_s
                    continue
                match event:
                    case SpeechStarted():
                        heard = True
                    case SpeechStopped():
                        pump.cancel()
                    case InputTranscript(final=True, text=text):
                        self.transcript = text
                        return text
                    case SessionClosed(error=error):
                        raise NoSpeechError(f"the session ended: {error or 'closed'}")
        except TimeoutError:
            raise NoSpeechError("the audio ended before the user finished speaking") from None
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self._stt_events.close()

    async def _next_event_or(self, pump: asyncio.Task[None]) -> SessionEvent | None:
        """The next STT event; None once `pump` has finished (it is not waited for again)."""
        if pump.done():
            return await anext(self._stt_events)
        next_event = asyncio.ensure_future(anext(self._stt_events))
        await asyncio.wait({pump, next_event}, return_when=asyncio.FIRST_COMPLETED)
        if next_event.done():
            return next_event.result()
        if pump.cancelled():
            # We stopped the audio ourselves (the provider ended the turn): keep reading.
            return await next_event
        next_event.cancel()
        pump.result()  # raise what went wrong sending the audio, if anything
        return None

    async def _pump(self, audio: AsyncIterable[bytes], commit_at_end: bool) -> None:
        async for chunk in audio:
            await self.session.send_audio(chunk)
        if commit_at_end:
            await self.session.commit_audio()

    async def reply_audio(self, sample_rate: int) -> AsyncIterator[bytes]:
        """The model's voice for this turn (PCM16 mono at `sample_rate`), as it arrives."""
        tracker = TurnTracker()
        resampler: Resampler | None = None
        try:
            async for event in self._audio_events:
                if not tracker.belongs(event):
                    continue
                if isinstance(event, AudioChunk):
                    if resampler is None or resampler.rate_in != event.sample_rate:
                        resampler = Resampler(event.sample_rate, sample_rate)
                    pcm = resampler.process(event.pcm)
                    self._delivered(pcm, sample_rate, event.item_id or event.response_id)
                    yield pcm
                elif tracker.ends_turn(event):
                    break
            if resampler is not None and (tail := resampler.flush()):
                self._delivered(tail, sample_rate, next(reversed(self._item_ms), ""))
                yield tail
        finally:
            self._audio_events.close()

    def _delivered(self, pcm: bytes, sample_rate: int, item_id: str) -> None:
        if self._first_audio_at is None:
            self._first_audio_at = time.monotonic()
        chunk_ms = duration_ms(len(pcm), sample_rate)
        self._delivered_ms += chunk_ms
        self._item_ms[item_id] = self._item_ms.get(item_id, 0.0) + chunk_ms

    def played_ms(self) -> int | None:
        """How much of the reply the satellite has played by now (None: nothing delivered)."""
        if self._first_audio_at is None:
            return None
        elapsed_ms = (time.monotonic() - self._first_audio_at) * 1000
        return int(min(elapsed_ms, self._delivered_ms))

    def still_playing(self) -> bool:
        played = self.played_ms()
        return played is not None and played < self._delivered_ms - 1

    async def interrupt(self) -> None:
        """A new turn cut this one off: the model keeps only what the satellite played
        (apportioned to the audio items in the order they were handed over)."""
        remaining = self.played_ms() or 0
        played: dict[str, int] = {}
        for item_id, delivered_ms in self._item_ms.items():
            played[item_id] = int(min(remaining, delivered_ms))
            remaining -= played[item_id]
        await self.session.interrupt(played)

    def discard_audio(self) -> None:
        """Nobody will play the model's voice of this turn: stop buffering it."""
        self._audio_events.close()

    def close(self) -> None:
        for subscription in (self._stt_events, self.agent_events, self._audio_events):
            subscription.close()
