"""Which events belong to a turn: the late end of an earlier reply is not this turn's.

A new turn can begin while the previous reply is still ending on the wire: a
reply the user talked over is cancelled after the new turn subscribed (OpenAI),
and Gemini sends `interrupted` for a reply whose generation was already
complete (its server waits for playback before `turnComplete`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from custom_components.realtime_assist.realtime.config import Endpoint, SessionConfig
from custom_components.realtime_assist.realtime.events import (
    AudioChunk,
    AwaitingToolResults,
    Interrupted,
    Reconnected,
    ResponseDone,
    ResponseStarted,
    ResponseStatus,
    SessionEvent,
    ToolCall,
    TranscriptDelta,
)
from custom_components.realtime_assist.realtime.providers.gemini import GeminiLiveProvider
from custom_components.realtime_assist.realtime.providers.openai import OpenAIRealtimeProvider
from custom_components.realtime_assist.realtime.session import RealtimeSession, ReconnectPolicy
from custom_components.realtime_assist.realtime.turn import (
    FailureReason,
    Turn,
    TurnError,
    TurnTracker,
)
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.gemini_live import FakeGeminiLiveServer, ScriptedTurn, SpeechPart
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer

MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"


def test_the_late_end_of_an_earlier_reply_does_not_end_the_turn() -> None:
    tracker = TurnTracker()

    assert not tracker.ends_turn(Interrupted("earlier"))
    assert not tracker.ends_turn(ResponseDone("earlier", ResponseStatus.CANCELLED))
    # Nor do its last words become this turn's answer.
    assert not tracker.belongs(TranscriptDelta("earlier", "and then the dragon"))
    assert not tracker.belongs(AudioChunk("earlier", b"\0\0", 24000))
    assert not tracker.belongs(ToolCall("earlier", "call_1", "HassTurnOn", {}))

    assert not tracker.ends_turn(ResponseStarted("ours"))
    assert tracker.belongs(TranscriptDelta("ours", "Yes?"))
    assert tracker.ends_turn(ResponseDone("ours", ResponseStatus.COMPLETED))


def test_a_reply_that_asked_for_tools_is_followed_by_the_turns_answer() -> None:
    tracker = TurnTracker()

    assert not tracker.ends_turn(ResponseStarted("asks"))
    assert not tracker.ends_turn(ToolCall("asks", "call_1", "HassTurnOn", {}))
    assert not tracker.ends_turn(AwaitingToolResults(("call_1",)))
    assert not tracker.ends_turn(ResponseDone("asks", ResponseStatus.COMPLETED))
    assert not tracker.ends_turn(ResponseStarted("answers"))
    assert tracker.ends_turn(Interrupted("answers"))


async def _until_done(events: AsyncIterator[SessionEvent]) -> list[SessionEvent]:
    seen: list[SessionEvent] = []
    async with asyncio.timeout(5):
        async for event in events:
            seen.append(event)
            if isinstance(event, ResponseDone):
                return seen
    raise AssertionError(f"the session ended first: {seen}")


async def test_gemini_reply_after_a_reconnect_is_not_taken_for_an_interrupted_one(
    gemini: FakeGeminiLiveServer,
) -> None:
    """Gemini names no responses: ours must not repeat on the next connection, or its first
    reply would share the id of the one the user interrupted as the old connection died."""
    gemini.chunk_delay_s = 0.02
    gemini.add_response(ScriptedTurn(SpeechPart("A long story about the weather. " * 3)))
    gemini.add_response(ScriptedTurn(SpeechPart("Yes, I am still here.")))
    provider = GeminiLiveProvider(Endpoint(api_key=gemini.api_key, url=gemini.url))
    session = RealtimeSession(
        provider,
        SessionConfig(model=MODEL),
        reconnect=ReconnectPolicy(attempts=3, first_delay_s=0.01, max_delay_s=0.05),
    )
    events = session.subscribe()
    await session.start()
    try:
        await session.send_text("Tell me a story")
        async with asyncio.timeout(5):
            async for event in events:
                if isinstance(event, AudioChunk):
                    break
        await session.interrupt(0)
        gemini.connections[0].close_abruptly()
        async with asyncio.timeout(5):
            async for event in events:
                if isinstance(event, Reconnected):
                    break

        await session.send_text("Are you still there?")
        seen = await _until_done(events)
    finally:
        await session.close()

    [started] = [e for e in seen if isinstance(e, ResponseStarted)]
    audio = b"".join(
        e.pcm for e in seen if isinstance(e, AudioChunk) and e.response_id == started.response_id
    )
    assert audio == bytes(gemini.connections[1].turns[0].pcm)
    assert audio
    assert gemini.protocol_errors == []


async def test_listen_gets_the_transcript_when_it_arrives_after_a_pause(
    fake_server: FakeOpenAIRealtimeServer,
) -> None:
    """Over a real network the transcript comes in a later read than speech_stopped.

    The turn stops sending audio at speech_stopped; that must not end the turn
    before the provider's transcript is in.
    """
    fake_server.pause_after_speech_stopped_s = 0.05
    fake_server.add_input_transcript("Good night.")
    provider = OpenAIRealtimeProvider(Endpoint(fake_server.api_key, fake_server.url))
    config = SessionConfig(model="gpt-realtime", input_transcription_model="gpt-4o-mini-transcribe")
    utterance = silence(0.2, 16000) + speech_like(0.8, 16000) + silence(1.5, 16000)

    async def satellite() -> AsyncIterator[bytes]:
        for start in range(0, len(utterance), 320):
            yield utterance[start : start + 320]
            await asyncio.sleep(0)

    async with RealtimeSession(provider, config) as session:
        for _ in range(3):
            turn = Turn(session)
            assert await turn.listen(satellite(), commit_at_end=False) == "Good night."
            await turn.cancel()
            fake_server.add_input_transcript("Good night.")


async def test_a_typed_message_the_session_cannot_take_fails_the_turn(
    fake_server: FakeOpenAIRealtimeServer,
) -> None:
    """The session closed under a typed turn (a fatal provider error, an unload): the
    turn fails as a turn, whose reason the agent tells the user, not with a session
    error the conversation stage does not catch (Home Assistant then says only that
    something unexpected happened)."""
    provider = OpenAIRealtimeProvider(Endpoint(fake_server.api_key, fake_server.url))
    session = RealtimeSession(provider, SessionConfig(model="gpt-realtime"))
    await session.start()
    turn = Turn(session, typed=True)
    await session.close()

    with pytest.raises(TurnError) as failed:
        await turn.send_text("Hello?")

    assert failed.value.reason is FailureReason.CONNECTION
    assert turn.ended.is_set()
    assert turn.failure is failed.value
