"""The realtime session against the fake Gemini Live server over loopback.

Every client message is validated against google-genai's `LiveClientMessage`
by the fake (see the `make_session` fixture's final check).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from custom_components.realtime_assist.realtime.config import Endpoint, SessionConfig, ToolSpec
from custom_components.realtime_assist.realtime.errors import AuthenticationError, ConnectError
from custom_components.realtime_assist.realtime.events import (
    AudioChunk,
    AwaitingToolResults,
    InputTranscript,
    Interrupted,
    Reconnected,
    ResponseDone,
    ResponseStarted,
    ResponseStatus,
    SpeechStopped,
    ToolCall,
    ToolCallsCancelled,
    TranscriptDelta,
    UsageReported,
)
from custom_components.realtime_assist.realtime.providers import gemini as gemini_provider
from custom_components.realtime_assist.realtime.providers.gemini import GeminiLiveProvider
from custom_components.realtime_assist.realtime.session import (
    RealtimeSession,
    ReconnectPolicy,
    Subscription,
)
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.gemini_live import (
    FakeGeminiConnection,
    FakeGeminiLiveServer,
    ScriptedTurn,
    SpeechPart,
    ToolCallPart,
)
from tests.fakes.providers import GeminiSession, usage_kinds
from tests.realtime.events import audio_of, speak, until

RATE = 16000  # the satellite's rate is Gemini's input rate: no resampling on the way in
MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
LONG_REPLY = "This answer goes on for a while, so that the user has time to interrupt it. " * 2
UTTERANCE = silence(0.2, RATE) + speech_like(1.0, RATE) + silence(1.0, RATE)

type MakeSession = Callable[..., Awaitable[tuple[RealtimeSession, Subscription]]]


def _config(**changes: Any) -> SessionConfig:
    settings: dict[str, Any] = {"model": MODEL, "instructions": "You run a home.", "voice": "Puck"}
    return SessionConfig(**(settings | changes))


@pytest.fixture
async def make_session(gemini: FakeGeminiLiveServer) -> AsyncIterator[MakeSession]:
    sessions: list[RealtimeSession] = []

    async def make(**changes: Any) -> tuple[RealtimeSession, Subscription]:
        provider = GeminiLiveProvider(Endpoint(api_key=gemini.api_key, url=gemini.url))
        session = RealtimeSession(
            provider,
            _config(**changes),
            input_sample_rate=RATE,
            reconnect=ReconnectPolicy(attempts=3, first_delay_s=0.01, max_delay_s=0.05),
        )
        subscription = session.subscribe()
        await session.start()
        sessions.append(session)
        return session, subscription

    yield make
    for session in sessions:
        await session.close()
    assert gemini.protocol_errors == []


async def test_spoken_turn_gives_transcript_audio_and_text(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    gemini.add_input_transcript("Is the front door locked?")
    gemini.add_response(ScriptedTurn(SpeechPart("Yes, it is locked.")))
    session, events = await make_session()

    await speak(session, UTTERANCE)
    seen = await until(events, lambda e: isinstance(e, ResponseDone))

    kinds = [type(e) for e in seen]
    assert kinds.index(SpeechStopped) < kinds.index(ResponseStarted)
    assert [e.text for e in seen if isinstance(e, InputTranscript) and e.final] == [
        "Is the front door locked?"
    ]
    conn = gemini.connections[0]
    assert audio_of(seen) == bytes(conn.turns[0].pcm)
    assert {e.sample_rate for e in seen if isinstance(e, AudioChunk)} == {24000}
    assert "".join(e.text for e in seen if isinstance(e, TranscriptDelta)) == "Yes, it is locked."
    done = seen[-1]
    assert isinstance(done, ResponseDone)
    assert done == ResponseDone(
        done.response_id, ResponseStatus.COMPLETED, "Yes, it is locked.", usage_follows=True
    )
    # The model turn's usage comes with `turnComplete`, after the response ended.
    reported = await until(events, lambda e: isinstance(e, UsageReported))
    assert reported[-1] == UsageReported(done.response_id, session.usage_of([done.response_id]))
    assert usage_kinds(session.usage_of([done.response_id])) == GeminiSession(conn).reported_usage()
    # 16 kHz in, byte for byte: no resampling on the way in.
    assert conn.audio_ms_received == pytest.approx(2200, abs=20)
    setup = conn.setup
    assert setup["model"] == f"models/{MODEL}"
    assert setup["systemInstruction"] == {"parts": [{"text": "You run a home."}]}
    voice = setup["generationConfig"]["speechConfig"]["voiceConfig"]
    assert voice["prebuiltVoiceConfig"]["voiceName"] == "Puck"


async def test_usage_packed_with_a_whole_short_turn_goes_to_that_turn(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    """Gemini 3.x may send a whole short model turn and its usage in one message."""
    session, events = await make_session(model="gemini-3.8-live")
    await gemini.connections[0].send(
        {
            "serverContent": {
                "modelTurn": {"role": "model", "parts": [{"text": "Sure."}]},
                "generationComplete": True,
                "turnComplete": True,
            },
            "usageMetadata": {
                "promptTokenCount": 100,
                "responseTokenCount": 5,
                "totalTokenCount": 105,
            },
        }
    )
    seen = await until(events, lambda e: isinstance(e, UsageReported))

    started = [e.response_id for e in seen if isinstance(e, ResponseStarted)]
    reported = seen[-1]
    assert isinstance(reported, UsageReported)
    assert [reported.response_id] == started
    assert session.usage_of(started).total_tokens == 105


async def test_tool_call_waits_for_its_result_then_the_model_goes_on(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    gemini.add_response(
        ScriptedTurn(SpeechPart("One moment."), ToolCallPart("HassTurnOn", {"name": "porch light"}))
    )
    gemini.add_response(ScriptedTurn(SpeechPart("The porch light is on.")))
    tool = ToolSpec("HassTurnOn", "Turn a device on", {"type": "object", "properties": {}})
    session, events = await make_session(tools=(tool,))

    await session.send_text("Turn on the porch light")
    seen = await until(events, lambda e: isinstance(e, AwaitingToolResults))
    [call] = [e for e in seen if isinstance(e, ToolCall)]
    assert (call.name, call.arguments) == ("HassTurnOn", {"name": "porch light"})
    asked = await until(events, lambda e: isinstance(e, ResponseDone))
    assert asked[-1].status is ResponseStatus.COMPLETED  # type: ignore[union-attr]

    await session.send_tool_result(call.call_id, call.name, {"success": True})
    follow_up = await until(events, lambda e: isinstance(e, ResponseDone))

    assert follow_up[-1].transcript == "The porch light is on."  # type: ignore[union-attr]
    conn = gemini.connections[0]
    assert [r["id"] for r in conn.tool_responses] == [call.call_id]
    declared = conn.setup["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declared] == ["HassTurnOn"]


async def test_interrupted_stops_the_audio_within_one_chunk(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    gemini.chunk_delay_s = 0.02
    gemini.add_response(ScriptedTurn(SpeechPart(LONG_REPLY)))
    session, events = await make_session()
    await session.send_text("Tell me about the weather")
    seen = await until(events, lambda e: isinstance(e, AudioChunk))
    response_id = next(e.response_id for e in seen if isinstance(e, ResponseStarted))

    await speak(session, speech_like(0.8, RATE) + silence(0.1, RATE))
    after = await until(events, lambda e: isinstance(e, Interrupted))
    rest = await until(events, lambda e: isinstance(e, ResponseDone))

    assert after[-1] == Interrupted(response_id)
    # At most the one chunk that was already on its way before the interruption.
    assert len(audio_of(after)) <= 2 * gemini.audio_chunk_ms * 48
    assert not audio_of(rest, response_id)
    assert rest[-1].status is ResponseStatus.INTERRUPTED  # type: ignore[union-attr]
    assert gemini.connections[0].turns[0].status == "interrupted"


async def test_cancelled_tool_call_result_is_not_sent(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    """The user spoke before a blocking call was answered: Gemini withdraws it; its result
    stays home."""
    gemini.add_response(ScriptedTurn(ToolCallPart("SlowThing", {})))
    tool = ToolSpec("SlowThing", "Takes a while", {"type": "object", "properties": {}}, True)
    session, events = await make_session(tools=(tool,))
    await session.send_text("Do the slow thing")
    [call] = [
        e for e in await until(events, lambda e: isinstance(e, ToolCall)) if isinstance(e, ToolCall)
    ]

    await speak(session, speech_like(0.8, RATE) + silence(0.1, RATE))
    cancelled = await until(events, lambda e: isinstance(e, ToolCallsCancelled))
    await session.send_tool_result(call.call_id, call.name, {"done": True})  # type: ignore[union-attr]
    await asyncio.sleep(0.1)

    assert cancelled[-1] == ToolCallsCancelled((call.call_id,))  # type: ignore[union-attr]
    conn = gemini.connections[0]
    assert set(conn.cancelled_call_ids) == {call.call_id}  # type: ignore[union-attr]
    assert conn.tool_responses == []


async def test_go_away_resumes_with_the_conversation_and_no_lost_audio(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    gemini.add_response(ScriptedTurn(SpeechPart("Your name is Ada.")))
    session, events = await make_session()
    await session.send_text("My name is Ada.")
    await until(events, lambda e: isinstance(e, ResponseDone))
    first = gemini.connections[0]

    # The new connection answers from the conversation it resumed.
    gemini.responder = lambda conn: ScriptedTurn(SpeechPart("Ada.")) if conn is not first else None
    await gemini.send_go_away(first, time_left_s=0.5)
    # The user starts talking while the connection is being replaced.
    await speak(session, UTTERANCE)
    reconnected = await until(events, lambda e: isinstance(e, Reconnected))
    answer = await until(
        events, lambda e: isinstance(e, ResponseDone) and e.transcript == "Ada.", within_s=8
    )

    assert reconnected[-1].lost_response is False  # type: ignore[union-attr]
    second = gemini.connections[1]
    assert second.resumed_from is not None
    # The resumed session knows the first exchange without it being sent again.
    assert [turn["role"] for turn in second.history][:2] == ["user", "model"]
    assert not [m for m in second.messages if "clientContent" in m]
    assert answer[-1].transcript == "Ada."  # type: ignore[union-attr]
    # Every frame of the user's turn reached the new connection.
    assert second.audio_ms_received == pytest.approx(2200, abs=20)


def _texts(history: list[dict[str, Any]]) -> list[str]:
    return [part["text"] for turn in history for part in turn.get("parts", []) if "text" in part]


async def _second_reply_playing(
    gemini: FakeGeminiLiveServer, make_session: MakeSession, playback: asyncio.Event
) -> tuple[FakeGeminiConnection, Subscription]:
    """Two typed exchanges; the server holds the second's `turnComplete` (and the handle
    after it) until `playback` is set. The first connection, and the session's events."""
    gemini.add_response(ScriptedTurn(SpeechPart("Hello Ada.")))
    gemini.add_response(ScriptedTurn(SpeechPart("Paris is lovely.")))
    session, events = await make_session()
    await session.send_text("My name is Ada.")
    await until(events, lambda e: isinstance(e, ResponseDone))
    gemini.turn_complete_hold = playback
    await session.send_text("I live in Paris.")
    await until(events, lambda e: isinstance(e, ResponseDone))
    return gemini.connections[0], events


async def test_go_away_during_playback_keeps_the_last_exchange(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    """goAway comes while the server waits for the reply's playback, before `turnComplete`
    and the handle that holds this exchange: the client leaves once that handle came."""
    playback = asyncio.Event()
    first, events = await _second_reply_playing(gemini, make_session, playback)

    await gemini.send_go_away(first, time_left_s=30)
    playback.set()
    await until(events, lambda e: isinstance(e, Reconnected))

    second = gemini.connections[1]
    assert second.resumed_from is not None
    assert _texts(second.history) == [
        "My name is Ada.",
        "Hello Ada.",
        "I live in Paris.",
        "Paris is lovely.",
    ]
    assert not [m for m in second.messages if "clientContent" in m]


async def test_go_away_running_out_replays_only_what_the_handle_lacks(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    """The conversation does not come to rest before goAway's time runs out: the client
    leaves anyway, resumes with the handle it has and replays the exchange after it."""
    never = asyncio.Event()  # the playback never ends
    first, events = await _second_reply_playing(gemini, make_session, never)

    await gemini.send_go_away(first, time_left_s=gemini_provider.GO_AWAY_MARGIN_S + 0.1)
    await until(events, lambda e: isinstance(e, Reconnected))

    second = gemini.connections[1]
    replayed = await second.wait_for_message("clientContent")
    assert second.resumed_from is not None
    assert _texts(replayed["clientContent"]["turns"]) == ["I live in Paris.", "Paris is lovely."]
    assert _texts(second.history)[:2] == ["My name is Ada.", "Hello Ada."]


async def test_typed_turn_lost_with_the_socket_is_answered_on_the_next(
    gemini: FakeGeminiLiveServer, make_session: MakeSession
) -> None:
    """The typed turn was written but the socket died before the server read it: the
    handle cannot hold it, so the new connection is asked it again."""
    gemini.add_response(ScriptedTurn(SpeechPart("Hello Ada.")))
    session, events = await make_session()
    await session.send_text("My name is Ada.")
    await until(events, lambda e: isinstance(e, ResponseDone))
    first = gemini.connections[0]
    gemini.responder = lambda conn: (
        ScriptedTurn(SpeechPart("It is 21 degrees.")) if conn is not first else None
    )
    gemini.pause_reading()
    await session.send_text("How warm is it inside?")

    first.close_abruptly()
    await until(events, lambda e: isinstance(e, Reconnected))
    answer = await until(events, lambda e: isinstance(e, ResponseDone))

    assert answer[-1].transcript == "It is 21 degrees."  # type: ignore[union-attr]
    second = gemini.connections[1]
    assert second.resumed_from is not None
    assert _texts(second.history).count("How warm is it inside?") == 1


async def test_bad_key_and_unknown_model_fail_to_start(gemini: FakeGeminiLiveServer) -> None:
    bad_key = GeminiLiveProvider(Endpoint(api_key="AIza-wrong", url=gemini.url))
    with pytest.raises(AuthenticationError, match="API key not valid"):
        await bad_key.connect(_config())

    good = GeminiLiveProvider(Endpoint(api_key=gemini.api_key, url=gemini.url))
    with pytest.raises(ConnectError, match="not found"):
        await good.connect(_config(model="gemini-0.1-imaginary"))
