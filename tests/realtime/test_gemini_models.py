"""Gemini Live models as they are: what each takes at setup, gemini-3.8-live's background
tool calls, `voiceActivity` and `turnCompleteReason`, and what the model is told after a
barge-in (the server cannot truncate). Against the fake over loopback; every message we
send is validated against google-genai's types (see `make_session`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from custom_components.realtime_assist.const import PROVIDER_PROFILES
from custom_components.realtime_assist.realtime.config import (
    Endpoint,
    ImageDetail,
    NoiseReduction,
    ReasoningEffort,
    SessionConfig,
    ToolSpec,
)
from custom_components.realtime_assist.realtime.events import (
    AudioChunk,
    AwaitingToolResults,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    ResponseStatus,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    TranscriptDelta,
)
from custom_components.realtime_assist.realtime.providers import PROVIDER_GEMINI
from custom_components.realtime_assist.realtime.providers.gemini import (
    GeminiLiveProvider,
    heard_note,
)
from custom_components.realtime_assist.realtime.session import (
    RealtimeSession,
    ReconnectPolicy,
    Subscription,
)
from custom_components.realtime_assist.realtime.turn import FailureReason, Turn
from tests.fakes.audio_samples import silence, speech_like, utterance
from tests.fakes.gemini_live import (
    FakeGeminiConnection,
    FakeGeminiLiveServer,
    ScriptedTurn,
    SpeechPart,
    ToolCallPart,
)
from tests.fakes.providers import GeminiSession
from tests.realtime.events import audio_of, speak, until

RATE = 16000
LIVE_38 = "gemini-3.8-live"
LIVE_31 = "gemini-3.1-flash-live-preview"
LIGHT = ToolSpec("HassTurnOn", "Turn a device on", {"type": "object", "properties": {}})
STATE = ToolSpec("GetState", "Read a device", {"type": "object", "properties": {}}, True)
REPLY = "This reply goes on for a while, so that the user has time to cut it off. " * 2

type MakeSession = Callable[..., Awaitable[tuple[RealtimeSession, Subscription]]]


@pytest.fixture
async def make_session(gemini: FakeGeminiLiveServer) -> AsyncIterator[MakeSession]:
    sessions: list[RealtimeSession] = []

    async def make(**changes: Any) -> tuple[RealtimeSession, Subscription]:
        provider = GeminiLiveProvider(Endpoint(api_key=gemini.api_key, url=gemini.url))
        config = SessionConfig(**({"model": LIVE_38, "instructions": "You run a home."} | changes))
        session = RealtimeSession(
            provider,
            config,
            input_sample_rate=RATE,
            reconnect=ReconnectPolicy(attempts=3, first_delay_s=0.01, max_delay_s=0.05),
        )
        events = session.subscribe()
        await session.start()
        sessions.append(session)
        return session, events

    yield make
    for session in sessions:
        await session.close()
    assert gemini.protocol_errors == []


def _done(event: object) -> bool:
    return isinstance(event, ResponseDone)


# -- what each model is sent --------------------------------------------------------


@pytest.mark.parametrize("model", PROVIDER_PROFILES[PROVIDER_GEMINI].models)
async def test_each_model_gets_only_what_it_accepts(
    gemini: FakeGeminiLiveServer, make_session: MakeSession, model: str
) -> None:
    """Every setting we have, on every model we offer: the fake refuses (1007) whatever
    the model does not take (3.8: thinking, affective dialog, proactive audio off)."""
    gemini.add_response(ScriptedTurn(SpeechPart("Hello.")))
    session, events = await make_session(
        model=model,
        voice="Kore",
        tools=(LIGHT, STATE),
        language="de-DE",
        transcription_vocabulary=("Hue Go", "Jonas's room"),
        noise_reduction=NoiseReduction.FAR_FIELD,
        reasoning_effort=ReasoningEffort.LOW,
        custom_voice_id="voice_1234",
        image_detail=ImageDetail.LOW,
    )
    await session.send_text("Hello")
    assert (await until(events, _done))[-1].status is ResponseStatus.COMPLETED  # type: ignore[union-attr]

    setup = gemini.connections[0].setup
    generation = setup["generationConfig"]
    assert not {"thinkingConfig", "enableAffectiveDialog"} & set(generation)
    assert "proactivity" not in setup
    assert setup["inputAudioTranscription"] == {
        "languageCodes": ["de-DE"],
        "customVocabulary": ["Hue Go", "Jonas's room"],
    }
    [declared] = setup["tools"]
    behaviors = [d.get("behavior") for d in declared["functionDeclarations"]]
    if model == LIVE_31:
        # Synchronous calls only; clientContent only as initial history.
        assert behaviors == [None, None]
        assert setup["historyConfig"] == {"initialHistoryInClientContent": True}
        assert "realtimeInput" in gemini.connections[0].messages[-1]
    else:
        assert behaviors == ["NON_BLOCKING", "BLOCKING"]
        assert "historyConfig" not in setup


async def test_3_1_gets_the_conversation_back_as_initial_history(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    """A fresh connection (the resumption handle refused) is seeded before any input."""
    gemini.refuse_handles = True
    gemini.add_response(ScriptedTurn(SpeechPart("Your name is Ada.")))
    session, events = await make_session(model=LIVE_31)
    await session.send_text("My name is Ada.")
    await until(events, _done)

    gemini.connections[0].close_abruptly()
    second = await gemini.wait_for_connection(2)
    gemini.add_response(ScriptedTurn(SpeechPart("Ada.")))
    await session.send_text("What is my name?")
    assert (await until(events, _done))[-1].transcript == "Ada."  # type: ignore[union-attr]

    assert [turn["role"] for turn in second.history[:2]] == ["user", "model"]
    # After the setup: the history, then the text as realtime input.
    assert second.messages[1]["clientContent"]["turnComplete"] is False
    assert second.messages[2] == {"realtimeInput": {"text": "What is my name?"}}


# -- background tool calls (gemini-3.8-live) ----------------------------------------


async def test_a_background_call_runs_while_the_model_talks_and_its_result_ends_the_turn(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    """The model asks for a tool and keeps talking; the result goes back `WHEN_IDLE`
    while it talks; its speech is not cut; the turn ends with its answer to the result."""
    hold = asyncio.Event()
    gemini.pacing.hold = hold  # the model pauses after the first chunk of each speech
    after_call = "Turning on the kitchen light for you right now."
    gemini.add_response(
        ScriptedTurn(ToolCallPart("HassTurnOn", {"name": "kitchen"}), SpeechPart(after_call))
    )
    gemini.add_response(ScriptedTurn(SpeechPart("The kitchen light is on.")))
    session, _events = await make_session(tools=(LIGHT,))
    turn = Turn(session, typed=True)
    await turn.send_text("Turn on the kitchen light")
    voice = turn.reply_audio(24000)
    listening = asyncio.ensure_future(_drain(voice))
    conn = gemini.connections[0]

    seen = []
    async for event in turn.replies():
        seen.append(event)
        if isinstance(event, ToolCall):
            await session.send_tool_result(event.call_id, event.name, {"success": True})
            await conn.wait_for_message("toolResponse")
            # The result is in while the model is still in the middle of its sentence.
            assert conn.turns[0].status == "in_progress"
            assert conn.turns[0].transcript != after_call
            hold.set()

    assert turn.done_ok
    first, confirmation = conn.turns
    assert (first.status, first.transcript) == ("completed", after_call)
    assert confirmation.transcript == "The kitchen light is on."
    assert conn.tool_responses == [
        {
            "id": first.tool_calls[0]["id"],
            "name": "HassTurnOn",
            "response": {"success": True},
            "scheduling": "WHEN_IDLE",
        }
    ]
    kinds = [type(event) for event in seen]
    # The call's batch closes at once; the response that asked goes on to its own end.
    assert kinds.index(AwaitingToolResults) < kinds.index(ResponseDone)
    assert [e.status for e in seen if isinstance(e, ResponseDone)] == [
        ResponseStatus.COMPLETED,
        ResponseStatus.COMPLETED,
    ]
    # The listener's stream carried all of the model's voice, before and after the result.
    streamed = await listening
    assert len(streamed) >= len(first.pcm) + len(confirmation.pcm)


async def _drain(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def test_a_blocking_call_stops_the_model_until_its_result(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    """A read-only tool's answer is what the model says next: the response ends at the call."""
    gemini.add_response(ScriptedTurn(SpeechPart("Let me look."), ToolCallPart("GetState", {})))
    gemini.add_response(ScriptedTurn(SpeechPart("It is off.")))
    session, events = await make_session(tools=(STATE,))
    await session.send_text("Is the light on?")
    asked = await until(events, _done)
    [call] = [e for e in asked if isinstance(e, ToolCall)]
    await session.send_tool_result(call.call_id, call.name, {"state": "off"})
    answer = await until(events, _done)

    assert isinstance(asked[-2], AwaitingToolResults)
    assert answer[-1].transcript == "It is off."  # type: ignore[union-attr]
    assert "scheduling" not in gemini.connections[0].tool_responses[0]


# -- voice activity and turn ends ---------------------------------------------------


async def test_voice_activity_marks_the_users_speech(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    gemini.add_input_transcript("Good morning.")
    session, events = await make_session()
    await speak(session, utterance(0.8, RATE, lead_silence_s=0.4))
    seen = await until(events, _done)

    [started] = [e for e in seen if isinstance(e, SpeechStarted)]
    [stopped] = [e for e in seen if isinstance(e, SpeechStopped)]
    assert started.audio_start_ms == pytest.approx(400, abs=40)
    assert stopped.audio_end_ms is not None
    assert stopped.audio_end_ms > started.audio_start_ms + 800  # type: ignore[operator]


async def test_a_barge_in_is_reported_once(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    """`voiceActivity` and `interrupted` both say the user cut in: one Interrupted."""
    gemini.chunk_delay_s = 0.02
    gemini.add_response(ScriptedTurn(SpeechPart(REPLY)))
    session, events = await make_session()
    await session.send_text("Tell me something")
    seen = await until(events, lambda e: isinstance(e, AudioChunk))
    await speak(session, speech_like(0.6, RATE) + silence(0.6, RATE))
    # The cut reply ends, then the model answers what the user said over it.
    seen += await until(
        events, lambda e: isinstance(e, ResponseDone) and e.status is ResponseStatus.COMPLETED
    )

    assert len([e for e in seen if isinstance(e, Interrupted)]) == 1
    assert len([e for e in seen if isinstance(e, SpeechStarted)]) == 1
    assert session.stats["interruptions"] == 1


async def test_a_malformed_function_call_fails_the_turn(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    gemini.malformed_next_function_call()
    gemini.add_response(ScriptedTurn(SpeechPart("Let me."), ToolCallPart("HassTurnOn", {})))
    session, _events = await make_session(tools=(LIGHT,))
    turn = Turn(session, typed=True)
    await turn.send_text("Turn it on")
    with pytest.raises(Exception) as failed:  # noqa: PT011 - the turn's TurnError
        await turn.reply_text()

    assert turn.failure is failed.value
    assert turn.failure.reason is FailureReason.PROTOCOL
    assert "malformed_function_call" in turn.failure.detail


# -- what the user heard, after a barge-in ------------------------------------------


def _notes(conn: FakeGeminiConnection) -> list[str]:
    return [part["text"] for content in conn.context_updates for part in content["parts"]]


async def _reply_heard(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> tuple[RealtimeSession, Subscription, str]:
    """A session whose model is some words into REPLY (and goes on); the reply's audio item."""
    gemini.chunk_delay_s = 0.02
    gemini.add_response(ScriptedTurn(SpeechPart(REPLY)))
    session, events = await make_session()
    await session.send_text("Tell me something")
    words: list[str] = []

    def some_words_in(event: object) -> bool:
        if isinstance(event, TranscriptDelta):
            words.append(event.text)
        return len("".join(words).split()) >= 8

    seen = await until(events, some_words_in)
    [started] = [e for e in seen if isinstance(e, ResponseStarted)]
    assert audio_of(seen, started.response_id)
    return session, events, started.response_id


async def test_a_half_duplex_barge_in_tells_the_model_what_was_played(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    session, _events, item = await _reply_heard(gemini, make_session)
    conn = gemini.connections[0]

    await session.interrupt({item: 1})  # the satellite played a millisecond of it
    await conn.wait_for_message("clientContent", count=2)

    assert _notes(conn) == [heard_note("")]
    # The note is context, not something the user said.
    assert GeminiSession(conn).user_texts() == ["Tell me something"]


async def test_what_was_heard_follows_the_listeners_playback(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    """The note quotes the words that came with the audio the listener played."""
    session, events, item = await _reply_heard(gemini, make_session)
    conn = gemini.connections[0]
    received_ms = int(conn.turns[0].audio_ms)

    session.report_played(item, received_ms // 2)
    await speak(session, speech_like(0.6, RATE) + silence(0.6, RATE))
    await until(events, lambda e: isinstance(e, Interrupted))
    await conn.wait_for_message("clientContent", count=2)

    [note] = _notes(conn)
    heard = note.split('"')[1]
    assert REPLY.startswith(heard)
    assert 0 < len(heard) < len(conn.turns[0].transcript)


async def test_a_reply_heard_to_the_end_needs_no_note(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    gemini.add_response(ScriptedTurn(SpeechPart("Short.")))
    session, events = await make_session()
    await session.send_text("Say something short")
    seen = await until(events, _done)
    [started] = [e for e in seen if isinstance(e, ResponseStarted)]

    await session.interrupt({started.response_id: 60_000})

    assert _notes(gemini.connections[0]) == []
