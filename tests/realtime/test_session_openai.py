"""The realtime session against the fake OpenAI Realtime server over loopback.

Every test ends with the fake's verdict that each client event was valid per
the `openai` SDK's GA types (see the `make_session` fixture).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import json
import logging
from typing import Any

import pytest

from custom_components.realtime_assist.const import PROVIDER_PROFILES
from custom_components.realtime_assist.realtime.config import (
    Endpoint,
    ImageDetail,
    NoiseReduction,
    ReasoningEffort,
    SessionConfig,
)
from custom_components.realtime_assist.realtime.errors import (
    AuthenticationError,
    ConnectError,
    ErrorKind,
    SessionClosedError,
)
from custom_components.realtime_assist.realtime.events import (
    AudioChunk,
    AwaitingToolResults,
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
    ToolCall,
    TranscriptDelta,
)
from custom_components.realtime_assist.realtime.providers import PROVIDER_OPENAI
from custom_components.realtime_assist.realtime.providers.openai import (
    MAX_CONNECTION_S,
    OpenAIRealtimeProvider,
)
from custom_components.realtime_assist.realtime.session import (
    RealtimeSession,
    ReconnectPolicy,
    Subscription,
)
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.openai_realtime import (
    FakeOpenAIRealtimeServer,
    FunctionCallItem,
    ScriptedResponse,
    SpeechItem,
)
from tests.realtime.events import audio_of, speak, until

SATELLITE_RATE = 16000
FAST_RECONNECT = ReconnectPolicy(attempts=3, first_delay_s=0.01, max_delay_s=0.05)
UTTERANCE = (
    silence(0.3, SATELLITE_RATE) + speech_like(1.0, SATELLITE_RATE) + silence(1.0, SATELLITE_RATE)
)
LONG_REPLY = "This is a long answer that keeps the model talking for a few seconds. " * 2

type MakeSession = Callable[..., Awaitable[tuple[RealtimeSession, Subscription]]]


def _config(**changes: Any) -> SessionConfig:
    return SessionConfig(
        model="gpt-realtime",
        instructions="You are a helpful home assistant.",
        voice="marin",
        input_transcription_model="gpt-4o-mini-transcribe",
        **changes,
    )


@pytest.fixture
async def make_session(fake_server: FakeOpenAIRealtimeServer) -> AsyncIterator[MakeSession]:
    """Open sessions against the fake; on teardown close them and check for leaks."""
    sessions: list[RealtimeSession] = []

    async def make(
        config: SessionConfig | None = None, **kwargs: Any
    ) -> tuple[RealtimeSession, Subscription]:
        provider = OpenAIRealtimeProvider(
            Endpoint(api_key=FakeOpenAIRealtimeServer.API_KEY, url=fake_server.url)
        )
        kwargs.setdefault("reconnect", FAST_RECONNECT)
        session = RealtimeSession(provider, config or _config(), **kwargs)
        subscription = session.subscribe()
        await session.start()
        sessions.append(session)
        return session, subscription

    yield make
    for session in sessions:
        await session.close()
    await asyncio.sleep(0)
    leaked = [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("realtime_session") and not task.done()
    ]
    assert leaked == []
    assert fake_server.protocol_errors == []


def _final_done(event: SessionEvent) -> bool:
    return isinstance(event, ResponseDone)


async def _until_audio(subscription: Subscription, ms: int) -> list[SessionEvent]:
    """Events until at least `ms` of model audio (24 kHz) has arrived."""
    seen: list[SessionEvent] = []
    while len(audio_of(seen)) < ms * 48:
        seen += await until(subscription, lambda e: isinstance(e, AudioChunk))
    return seen


async def test_spoken_turn_gives_transcript_audio_and_text(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    """Speech in → the provider's VAD ends the turn → transcript, then the model's voice."""
    fake_server.add_input_transcript("Turn on the kitchen light.")
    fake_server.add_response(ScriptedResponse(SpeechItem("Turning on the kitchen light.")))
    session, events = await make_session()

    await speak(
        session,
        silence(0.3, SATELLITE_RATE)
        + speech_like(1.0, SATELLITE_RATE)
        + silence(1.0, SATELLITE_RATE),
    )
    seen = await until(events, _final_done)

    kinds = [type(e) for e in seen]
    assert kinds.index(SpeechStarted) < kinds.index(SpeechStopped) < kinds.index(ResponseStarted)
    finals = [e.text for e in seen if isinstance(e, InputTranscript) and e.final]
    assert finals == ["Turn on the kitchen light."]
    conn = fake_server.connections[0]
    # What the satellite would play is exactly what the model sent.
    assert audio_of(seen) == conn.responses[0].pcm
    assert len(audio_of(seen)) > 0
    assert "".join(e.text for e in seen if isinstance(e, TranscriptDelta)) == (
        "Turning on the kitchen light."
    )
    done = seen[-1]
    assert isinstance(done, ResponseDone)
    assert done.status is ResponseStatus.COMPLETED
    assert done.transcript == "Turning on the kitchen light."
    # 16 kHz satellite audio reached the provider resampled to 24 kHz, all of it.
    assert conn.audio_ms_received == pytest.approx(2300, abs=30)
    assert [item.text for item in session.history] == [
        "Turn on the kitchen light.",
        "Turning on the kitchen light.",
    ]


async def test_tool_call_mid_response_and_follow_up(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    """The call arrives while the response is live; its result brings the follow-up."""
    fake_server.add_response(
        ScriptedResponse(
            SpeechItem("Sure, one moment."),
            FunctionCallItem("HassTurnOn", {"name": "kitchen light"}),
        )
    )
    fake_server.add_response(ScriptedResponse(SpeechItem("The kitchen light is on.")))
    session, events = await make_session()

    await session.send_text("Turn on the kitchen light")
    before_call = await until(events, lambda e: isinstance(e, ToolCall))
    call = before_call[-1]
    assert isinstance(call, ToolCall)
    assert call.name == "HassTurnOn"
    assert call.arguments == {"name": "kitchen light"}
    # Mid-response: the model's audio is already here, the response is not done.
    assert audio_of(before_call)
    assert not any(isinstance(e, ResponseDone) for e in before_call)

    awaiting = await until(events, lambda e: isinstance(e, AwaitingToolResults))
    assert awaiting[-1] == AwaitingToolResults((call.call_id,))
    await session.send_tool_result(call.call_id, call.name, {"success": True})
    rest = await until(
        events, lambda e: isinstance(e, ResponseDone) and e.transcript.endswith("is on.")
    )

    conn = fake_server.connections[0]
    outputs = [i for i in conn.items if i["type"] == "function_call_output"]
    assert outputs[0]["call_id"] == call.call_id
    assert json.loads(outputs[0]["output"]) == {"success": True}
    assert [r.status for r in conn.responses] == ["completed", "completed"]
    assert conn.errors_sent == []
    assert any(isinstance(e, ResponseStarted) for e in rest)


async def test_two_tool_calls_in_one_response_get_one_follow_up(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    """The model continues once, after both results are in, in whatever order they come."""
    fake_server.add_response(
        ScriptedResponse(
            FunctionCallItem("HassTurnOn", {"name": "kitchen"}),
            FunctionCallItem("HassTurnOff", {"name": "hallway"}),
        )
    )
    fake_server.add_response(ScriptedResponse(SpeechItem("Done, both.")))
    session, events = await make_session()

    await session.send_text("Kitchen on, hallway off")
    seen = await until(events, lambda e: isinstance(e, AwaitingToolResults))
    calls = [e for e in seen if isinstance(e, ToolCall)]
    assert [c.name for c in calls] == ["HassTurnOn", "HassTurnOff"]
    conn = fake_server.connections[0]

    await session.send_tool_result(calls[1].call_id, calls[1].name, {"success": True})
    await conn.wait_for_event("conversation.item.create", count=2)
    await asyncio.sleep(0.1)
    # One result is not enough for the model to go on.
    assert len([e for e in conn.received if e["type"] == "response.create"]) == 1

    await session.send_tool_result(calls[0].call_id, calls[0].name, {"success": True})
    await until(events, lambda e: isinstance(e, ResponseDone) and e.transcript == "Done, both.")
    assert len([e for e in conn.received if e["type"] == "response.create"]) == 2


async def test_barge_in_drops_stale_audio_and_truncates_to_what_was_played(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    fake_server.chunk_delay_s = 0.02
    fake_server.add_response(ScriptedResponse(SpeechItem(LONG_REPLY)))
    session, events = await make_session()

    await session.send_text("Tell me a story")
    seen = await _until_audio(events, 200)
    item_id = next(e.item_id for e in seen if isinstance(e, AudioChunk))
    assert item_id is not None
    session.report_played(item_id, 150)
    response_id = next(e.response_id for e in seen if isinstance(e, ResponseStarted))

    await speak(session, speech_like(0.6, SATELLITE_RATE) + silence(0.2, SATELLITE_RATE))
    after = await until(events, lambda e: isinstance(e, ResponseDone))

    kinds = [type(e) for e in after]
    assert kinds.index(SpeechStarted) < kinds.index(Interrupted)
    stop = kinds.index(Interrupted)
    assert after[stop] == Interrupted(response_id)
    assert not audio_of(after[stop:], response_id)
    done = after[-1]
    assert isinstance(done, ResponseDone)
    assert done.status is ResponseStatus.INTERRUPTED
    conn = fake_server.connections[0]
    await conn.wait_for_event("conversation.item.truncate")
    assert conn.truncations == [(conn.responses[0].item_ids[0], 150)]


async def test_what_the_listener_heard_wins_over_the_vads_estimate(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    """The server's VAD hears the user over the reply: the reply is cut at once on an
    estimate (real time since its first audio). The listener's own figure, when it comes
    later, is exact (it started playing late): the item is cut again, shorter, to it."""
    fake_server.chunk_delay_s = 0.02
    fake_server.add_response(ScriptedResponse(SpeechItem(LONG_REPLY)))
    session, events = await make_session()
    await session.send_text("Tell me a story")
    seen = await _until_audio(events, 200)  # 5 chunks paced 20 ms apart: 80 ms at least
    item_id = next(e.item_id for e in seen if isinstance(e, AudioChunk))
    assert item_id is not None

    await speak(session, speech_like(0.6, SATELLITE_RATE))  # still speaking: no new answer
    await until(events, lambda e: isinstance(e, ResponseDone))
    conn = fake_server.connections[0]
    estimate = (await conn.wait_for_event("conversation.item.truncate"))["audio_end_ms"]
    assert estimate >= 80
    await session.interrupt({item_id: 30})
    await session.send_text("(later)", respond=False)
    await conn.wait_for_event("conversation.item.create", count=2)  # read in order

    assert conn.truncations == [(item_id, estimate), (item_id, 30)]
    assert conn.errors_sent == []


@pytest.mark.parametrize(("played_ms", "expected"), [(100, "truncate"), (0, "delete")])
async def test_interrupt_cancels_and_keeps_only_what_was_heard(
    fake_server: FakeOpenAIRealtimeServer,
    make_session: MakeSession,
    played_ms: int,
    expected: str,
) -> None:
    """A satellite cut the reply off: cancel it, and the model remembers only what played."""
    fake_server.chunk_delay_s = 0.02
    fake_server.add_response(ScriptedResponse(SpeechItem(LONG_REPLY)))
    session, events = await make_session()

    await session.send_text("Tell me a story")
    seen = await _until_audio(events, 200)
    item_id = next(e.item_id for e in seen if isinstance(e, AudioChunk))
    assert item_id is not None
    await session.interrupt({item_id: played_ms})
    after = await until(events, lambda e: isinstance(e, ResponseDone))

    assert any(isinstance(e, Interrupted) for e in after)
    done = after[-1]
    assert isinstance(done, ResponseDone)
    assert done.status is ResponseStatus.CANCELLED
    conn = fake_server.connections[0]
    item_id = conn.responses[0].item_ids[0]
    if expected == "truncate":
        await conn.wait_for_event("conversation.item.truncate")
        assert conn.truncations == [(item_id, played_ms)]
    else:
        deleted = await conn.wait_for_event("conversation.item.delete")
        assert deleted["item_id"] == item_id
    assert [e for e in conn.received if e["type"] == "response.cancel"]


async def test_reconnect_after_abrupt_close_restores_the_conversation(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    fake_server.add_response(ScriptedResponse(SpeechItem("It is sunny.")))
    session, events = await make_session()
    await session.send_text("What's the weather?")
    await until(events, _final_done)

    fake_server.connections[0].close_abruptly()
    seen = await until(events, lambda e: isinstance(e, Reconnected))

    reconnected = seen[-1]
    assert reconnected == Reconnected(reconnected.reason, restored_items=2, lost_response=False)
    second = await fake_server.wait_for_connection(2)
    await second.wait_for_event("conversation.item.create", count=2)
    assert second.session["instructions"] == "You are a helpful home assistant."
    restored = [
        (item["role"], item["content"][0]["text"])
        for item in second.items
        if item["type"] == "message"
    ]
    assert restored == [("user", "What's the weather?"), ("assistant", "It is sunny.")]

    fake_server.add_response(ScriptedResponse(SpeechItem("Still sunny.")))
    await session.send_text("And now?")
    later = await until(events, _final_done)
    assert later[-1].transcript == "Still sunny."  # type: ignore[union-attr]
    assert second.last_user_text() == "And now?"


async def test_drop_mid_response_reports_the_lost_response(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    fake_server.chunk_delay_s = 0.02
    fake_server.add_response(ScriptedResponse(SpeechItem(LONG_REPLY)))
    session, events = await make_session()
    await session.send_text("Tell me a story")
    started = await until(events, lambda e: isinstance(e, AudioChunk))

    fake_server.connections[0].close_abruptly()
    seen = await until(events, lambda e: isinstance(e, Reconnected))

    response_id = next(e.response_id for e in started if isinstance(e, ResponseStarted))
    failed = [e for e in seen if isinstance(e, ResponseDone)]
    assert failed == [
        ResponseDone(
            response_id,
            ResponseStatus.FAILED,
            reason="connection_lost",
            error_kind=ErrorKind.CONNECTION,
        )
    ]
    assert seen[-1] == Reconnected(seen[-1].reason, restored_items=1, lost_response=True)  # type: ignore[union-attr]


async def test_audio_sent_while_reconnecting_is_delivered_after(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    session, events = await make_session()
    fake_server.hold_new_connections()
    fake_server.connections[0].close_abruptly()
    await asyncio.sleep(0)
    # 500 ms of the user's turn while the socket is gone (or about to be noticed).
    await speak(session, speech_like(0.5, SATELLITE_RATE))
    second = await fake_server.wait_for_connection(2)
    fake_server.admit_connections()
    await until(events, lambda e: isinstance(e, Reconnected))
    await second.wait_for_event("input_audio_buffer.append")
    await asyncio.sleep(0.1)
    # The whole turn so far reached the new connection, joined into one message (it
    # was all there before the replay: 25 frames of 20 ms).
    assert second.audio_ms_received == pytest.approx(500, abs=5)
    appends = [e for e in second.received if e["type"] == "input_audio_buffer.append"]
    assert len(appends) == 1


async def test_question_lost_with_the_socket_is_asked_again(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    """A typed question and its `response.create` were written, but the socket died
    before the server read them. The new connection gets the question from the history
    and is asked for the answer: it comes, once."""
    fake_server.add_response(ScriptedResponse(SpeechItem("It is 21 degrees.")))
    fake_server.add_response(ScriptedResponse(SpeechItem("You're welcome.")))
    session, events = await make_session()
    fake_server.pause_reading()  # the frames stay in the network, unread
    await session.send_text("How warm is it inside?")
    fake_server.connections[0].close_abruptly()

    seen = await until(events, _final_done)
    [reconnected] = [e for e in seen if isinstance(e, Reconnected)]
    assert reconnected.restored_items == 1  # the question is back
    assert (seen[-1].status, seen[-1].transcript) == (  # type: ignore[union-attr]
        ResponseStatus.COMPLETED,
        "It is 21 degrees.",
    )
    await _answered_once(fake_server, session, events, ["It is 21 degrees."])


async def test_drop_after_the_user_stopped_still_answers_them_once(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    """The server's VAD heard the user stop; the connection drops before its commit and
    response (a real network may deliver those in a later read). The turn's audio is
    kept until the provider answers it, so the new connection gets it again: its VAD
    ends the turn and answers, once (nobody asks as well)."""
    fake_server.pause_after_speech_stopped_s = 30.0  # the commit would come much later
    fake_server.add_input_transcript("Turn on the porch light.")
    fake_server.add_response(ScriptedResponse(SpeechItem("Done.")))
    fake_server.add_response(ScriptedResponse(SpeechItem("You're welcome.")))
    session, events = await make_session()
    await speak(session, UTTERANCE)
    await until(events, lambda e: isinstance(e, SpeechStopped))
    fake_server.pause_after_speech_stopped_s = 0.0  # the new connection is prompt
    fake_server.connections[0].close_abruptly()

    seen = await until(events, _final_done)
    assert [e for e in seen if isinstance(e, Reconnected)]
    heard = [e.text for e in seen if isinstance(e, InputTranscript) and e.final]
    assert heard == ["Turn on the porch light."]
    assert (seen[-1].status, seen[-1].transcript) == (  # type: ignore[union-attr]
        ResponseStatus.COMPLETED,
        "Done.",
    )
    await _answered_once(fake_server, session, events, ["Done."])


async def test_answered_spoken_turn_is_not_replayed_after_a_drop(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    """Once the model answers a spoken turn, a new connection gets it from the history,
    not as audio again (its VAD would answer the old question once more)."""
    fake_server.add_input_transcript("Turn on the porch light.")
    fake_server.add_response(ScriptedResponse(SpeechItem("Done.")))
    fake_server.add_response(ScriptedResponse(SpeechItem("You're welcome.")))
    session, events = await make_session()
    await speak(session, UTTERANCE)
    await until(events, _final_done)

    fake_server.connections[0].close_abruptly()
    await until(events, lambda e: isinstance(e, Reconnected))
    await _answered_once(fake_server, session, events, [])
    assert fake_server.connections[1].audio_ms_received == 0


async def _answered_once(
    fake_server: FakeOpenAIRealtimeServer,
    session: RealtimeSession,
    events: Subscription,
    replies: list[str],
) -> None:
    """The next answer is to the next question, and the new connection said `replies`
    and then that answer: nothing was answered twice."""
    await session.send_text("Thanks.")
    later = await until(events, _final_done)
    assert later[-1].transcript == "You're welcome."  # type: ignore[union-attr]
    conn = fake_server.connections[-1]
    said = ["".join(item.text for item in response.items) for response in conn.responses]
    assert said == [*replies, "You're welcome."]
    assert conn.errors_sent == []


def _said(conn: Any) -> list[str]:
    return ["".join(item.text for item in response.items) for response in conn.responses]


async def test_answer_asked_for_as_the_vad_answers_comes_once(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    """The turn is ended by hand (commit, `response.create`) just as the server's VAD ended
    it and began answering: the server refuses our request
    (`conversation_already_has_active_response`), and the VAD's answer, which heard the
    user, is the one answer: no second one follows it."""
    fake_server.add_input_transcript("Turn on the porch light.")
    fake_server.add_response(ScriptedResponse(SpeechItem("Done.")))
    fake_server.add_response(ScriptedResponse(SpeechItem("You're welcome.")))
    session, events = await make_session()
    fake_server.pause_reading()  # the server reads it all in one go: its VAD answers first
    await speak(session, UTTERANCE)
    await session.commit_audio()
    await session.create_response()
    fake_server.resume_reading()
    seen = await until(events, _final_done)
    assert seen[-1].transcript == "Done."  # type: ignore[union-attr]
    conn = fake_server.connections[0]
    assert [error["code"] for error in conn.errors_sent] == [
        "conversation_already_has_active_response"
    ]

    await session.send_text("Thanks.")
    thanks = conn.received.index(await conn.wait_for_event("conversation.item.create"))
    # Read in order: nothing asked for another answer before the next question.
    asked = [e for e in conn.received[:thanks] if e["type"] == "response.create"]
    assert len(asked) == 1  # the one refused
    later = await until(events, _final_done)
    assert later[-1].transcript == "You're welcome."  # type: ignore[union-attr]
    assert _said(conn) == ["Done.", "You're welcome."]


async def test_text_typed_as_the_vad_answers_is_answered_after(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    """A message typed just as the server's VAD began answering the user's speech: the
    answer it was refused would have been the first to read the message, so it is asked
    for once the VAD's ends."""
    fake_server.add_response(ScriptedResponse(SpeechItem("Done.")))
    fake_server.add_response(ScriptedResponse(SpeechItem("The porch light is on too.")))
    session, events = await make_session()
    fake_server.pause_reading()
    await speak(session, UTTERANCE)
    await session.send_text("And the porch light?")
    fake_server.resume_reading()
    await until(events, _final_done)
    later = await until(events, _final_done)
    assert later[-1].transcript == "The porch light is on too."  # type: ignore[union-attr]
    conn = fake_server.connections[0]
    assert [error["code"] for error in conn.errors_sent] == [
        "conversation_already_has_active_response"
    ]
    assert _said(conn) == ["Done.", "The porch light is on too."]


async def test_session_expiry_rolls_over_to_a_new_connection(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    """OpenAI ends sessions after 60 minutes (error `session_expired`, close 1001)."""
    fake_server.session_ttl_s = 0.3
    _session, events = await make_session()
    seen = await until(events, lambda e: isinstance(e, Reconnected))
    assert "maximum duration" in seen[-1].reason  # type: ignore[union-attr]
    assert not any(isinstance(e, ProviderError) for e in seen)
    assert len(fake_server.connections) == 2


async def test_connection_is_recycled_before_the_provider_limit(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    fake_server.add_response(ScriptedResponse(SpeechItem("Remember me.")))
    policy = ReconnectPolicy(recycle_margin_s=MAX_CONNECTION_S - 1.0)
    session, events = await make_session(reconnect=policy)
    await session.send_text("Hello")
    await until(events, _final_done)

    seen = await until(events, lambda e: isinstance(e, Reconnected), within_s=5.0)

    assert seen[-1] == Reconnected(seen[-1].reason, restored_items=2, lost_response=False)  # type: ignore[union-attr]
    assert "recycled" in seen[-1].reason  # type: ignore[union-attr]
    assert fake_server.connections[0].ws.close_code == 1000


async def test_slow_consumer_has_bounded_audio_and_keeps_control_events(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    """A consumer that stops reading loses the newest audio, never tool calls or turn events."""
    fake_server.add_response(
        ScriptedResponse(SpeechItem(LONG_REPLY), FunctionCallItem("HassTurnOn", {"name": "fan"}))
    )
    session, stalled = await make_session(max_buffered_audio_s=0.5)
    eager = session.subscribe(max_buffered_audio_s=60)

    await session.send_text("Talk for a while")
    eager_events = await until(eager, lambda e: isinstance(e, ResponseDone))
    stalled_events = [e async for e in _drain(stalled)]

    full_ms = len(audio_of(eager_events)) / 48
    assert full_ms > 2000
    assert len(audio_of(stalled_events)) / 48 <= 500
    assert stalled.dropped_audio_ms == pytest.approx(full_ms - len(audio_of(stalled_events)) / 48)
    assert [type(e) for e in stalled_events if not isinstance(e, AudioChunk)] == [
        type(e) for e in eager_events if not isinstance(e, AudioChunk)
    ]
    eager.close()


async def _drain(subscription: Subscription) -> AsyncIterator[SessionEvent]:
    """What is buffered now, without waiting for more."""
    while subscription.buffered_events:
        yield await anext(subscription)


async def test_malformed_and_unknown_events_are_ignored(
    fake_server: FakeOpenAIRealtimeServer,
    make_session: MakeSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    session, events = await make_session()
    conn = fake_server.connections[0]
    for raw in (
        "this is not json",
        '{"no_type": true}',
        '{"type": "response.brand_new_event", "event_id": "e1"}',
        '{"type": "response.output_audio.delta", "event_id": "e2"}',
        '{"type": "response.output_audio.delta", "delta": "***", "item_id": "x"}',
    ):
        await fake_server.inject(conn, raw)
    fake_server.add_response(ScriptedResponse(SpeechItem("Still here.")))
    with caplog.at_level(logging.WARNING):
        await session.send_text("Are you there?")
        seen = await until(events, _final_done)

    assert seen[-1].transcript == "Still here."  # type: ignore[union-attr]
    assert not session.closed
    assert "malformed" in caplog.text


async def test_bad_key_and_unreachable_endpoint_fail_to_start(
    fake_server: FakeOpenAIRealtimeServer, unreachable_url: str
) -> None:
    bad_key = OpenAIRealtimeProvider(Endpoint(api_key="sk-wrong", url=fake_server.url))
    with pytest.raises(AuthenticationError, match="Incorrect API key"):
        await RealtimeSession(bad_key, _config()).start()

    nowhere = OpenAIRealtimeProvider(Endpoint(api_key="sk-test-valid", url=unreachable_url))
    with pytest.raises(ConnectError):
        await RealtimeSession(nowhere, _config()).start()

    fake_server.reject_connections_with_status(503)
    busy = OpenAIRealtimeProvider(Endpoint(api_key=fake_server.api_key, url=fake_server.url))
    with pytest.raises(ConnectError, match="503"):
        await RealtimeSession(busy, _config()).start()


async def test_session_closes_with_an_error_when_reconnecting_keeps_failing(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    _session, events = await make_session()
    fake_server.reject_connections_with_status(503)
    fake_server.connections[0].close_abruptly()

    seen = await until(events, lambda e: isinstance(e, SessionClosed))

    closed = seen[-1]
    assert isinstance(closed, SessionClosed)
    assert closed.error is not None
    assert "503" in closed.error
    assert closed.kind is ErrorKind.CONNECTION


async def test_revoked_key_ends_the_session_with_kind_auth(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    fake_server.fail_next_responses_with("invalid_api_key", "Incorrect API key provided.")
    session, events = await make_session()
    await session.send_text("Hello")
    seen = await until(events, lambda e: isinstance(e, SessionClosed))

    [error] = [e for e in seen if isinstance(e, ProviderError)]
    assert (error.kind, error.fatal, error.refused_response) == (ErrorKind.AUTH, True, True)
    assert session.closed
    assert seen[-1] == SessionClosed(seen[-1].error, ErrorKind.AUTH)  # type: ignore[union-attr]
    with pytest.raises(SessionClosedError) as raised:
        await session.send_text("Hello?")
    assert raised.value.kind is ErrorKind.AUTH


async def test_azure_endpoint_uses_its_path_and_api_key_header(
    fake_server: FakeOpenAIRealtimeServer,
) -> None:
    """Azure OpenAI's GA endpoint: `/openai/v1/realtime?model=<deployment>`, `api-key` header."""
    provider = OpenAIRealtimeProvider(
        Endpoint(api_key=fake_server.api_key, url=fake_server.azure_url)
    )
    async with RealtimeSession(provider, _config()) as session:
        events = session.subscribe()
        fake_server.add_response(ScriptedResponse(SpeechItem("Hello from Azure.")))
        await session.send_text("Hi")
        seen = await until(events, _final_done)
        events.close()
    conn = fake_server.connections[0]
    assert conn.azure
    assert conn.headers["api-key"] == fake_server.api_key
    assert "authorization" not in conn.headers
    assert seen[-1].transcript == "Hello from Azure."  # type: ignore[union-attr]

    wrong = OpenAIRealtimeProvider(Endpoint(api_key="wrong", url=fake_server.azure_url))
    with pytest.raises(AuthenticationError):
        await wrong.connect(_config())
    assert fake_server.protocol_errors == []


async def test_image_reaches_the_conversation(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    session, _events = await make_session()
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"
    await session.send_image(jpeg)
    conn = fake_server.connections[0]
    await conn.wait_for_event("conversation.item.create")
    assert conn.images == [("image/jpeg", jpeg)]


@pytest.mark.parametrize("model", PROVIDER_PROFILES[PROVIDER_OPENAI].models)
async def test_reasoning_effort_goes_to_reasoning_models_only(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession, model: str
) -> None:
    """The fake refuses `reasoning` for models that do not reason (`unsupported_parameter`)."""
    fake_server.add_response(ScriptedResponse(SpeechItem("Fine.")))
    session, events = await make_session(
        SessionConfig(model=model, reasoning_effort=ReasoningEffort.LOW)
    )
    await session.send_text("How are you?")
    await until(events, _final_done)

    reasoning = fake_server.connections[0].session.get("reasoning")
    reasons = model.startswith("gpt-realtime-2")
    assert reasoning == ({"effort": "low"} if reasons else None)


async def test_noise_reduction_custom_voice_and_image_detail_reach_the_session(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    config = _config(
        noise_reduction=NoiseReduction.FAR_FIELD,
        custom_voice_id="voice_1234",
        image_detail=ImageDetail.LOW,
    )
    fake_server.add_response(ScriptedResponse(SpeechItem("In my own voice.")))
    session, events = await make_session(config)
    await session.send_image(b"\xff\xd8\xff\xe0" + bytes(64) + b"\xff\xd9")
    await session.send_text("What do you see?")
    done = (await until(events, _final_done))[-1]

    conn = fake_server.connections[0]
    audio = conn.session["audio"]
    assert audio["input"]["noise_reduction"] == {"type": "far_field"}
    assert audio["output"]["voice"] == {"id": "voice_1234"}
    [image] = [part for item in conn.items for part in item.get("content", [])][:1]
    assert (image["type"], image["detail"]) == ("input_image", "low")
    assert done.status is ResponseStatus.COMPLETED  # type: ignore[union-attr]


async def test_an_empty_commit_is_harmless(
    fake_server: FakeOpenAIRealtimeServer, make_session: MakeSession
) -> None:
    """The server's VAD had committed the audio already: its complaint is no error."""
    session, events = await make_session()
    await session.commit_audio()
    await fake_server.connections[0].wait_for_event("input_audio_buffer.commit")
    fake_server.add_response(ScriptedResponse(SpeechItem("Yes?")))
    await session.send_text("Hello?")
    seen = await until(events, _final_done)

    assert fake_server.connections[0].errors_sent[0]["code"] == "input_audio_buffer_commit_empty"
    assert not [e for e in seen if isinstance(e, ProviderError)]
