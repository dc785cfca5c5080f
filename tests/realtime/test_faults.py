"""Faults at the session level, against both fake providers over loopback.

Each fault ends, within a deadline (`until`'s), with a normal answer or an event
that says what went wrong and of which kind; user audio already spoken is not
lost; nothing logs a traceback; the next response on the same session works;
and no task or fake connection outlives the test (the `open_session` fixture
checks). Where an ordering matters the fake holds back (`hold_new_connections`,
a drop only after what was sent) until the test has seen what comes first.
"""

from __future__ import annotations

import asyncio

import pytest

from custom_components.realtime_assist.realtime.audio import MicrophoneResampler
from custom_components.realtime_assist.realtime.config import ToolSpec
from custom_components.realtime_assist.realtime.errors import ErrorKind, SessionClosedError
from custom_components.realtime_assist.realtime.events import (
    AudioChunk,
    AwaitingToolResults,
    InputTranscript,
    ProviderError,
    Reconnected,
    ResponseDone,
    ResponseRetrying,
    ResponseStarted,
    ResponseStatus,
    SessionClosed,
    SessionEvent,
    ToolCall,
    ToolCallsCancelled,
)
from custom_components.realtime_assist.realtime.providers import (
    PROVIDER_GEMINI,
    PROVIDER_OPENAI,
    base,
)
from custom_components.realtime_assist.realtime.session import (
    RealtimeSession,
    Subscription,
)
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.providers import FakeProvider, GeminiFake, OpenAIFake
from tests.fixtures_entry import every_provider
from tests.realtime.events import audio_of, speak, until
from tests.realtime.sessions import FAST, RATE, OpenSession, session_config

provider = every_provider

DEADLINE_S = 10.0
TOOL = ToolSpec("HassTurnOn", "Turn a device on", {"type": "object", "properties": {}})
UTTERANCE = silence(0.3, RATE) + speech_like(1.0, RATE) + silence(1.0, RATE)
LONG_REPLY = "This answer goes on for a while, so that there is time to break it. " * 2


def _done(event: SessionEvent) -> bool:
    return isinstance(event, ResponseDone)


def _of[T](kind: type[T], events: list[SessionEvent]) -> list[T]:
    return [event for event in events if isinstance(event, kind)]


async def _answers(events: Subscription, transcript: str) -> list[SessionEvent]:
    """Events until a response completes; it must have said `transcript`."""
    seen = await until(events, _done, DEADLINE_S)
    done = seen[-1]
    assert isinstance(done, ResponseDone)
    assert (done.status, done.transcript) == (ResponseStatus.COMPLETED, transcript)
    return seen


async def _next_turn_works(
    fake: FakeProvider, session: RealtimeSession, events: Subscription, reply: str = "Still here."
) -> None:
    """The session answers the next turn as if nothing had happened."""
    if reply == "Still here.":
        fake.say(reply)
    await session.send_text("Are you still there?")
    await _answers(events, reply)


@pytest.mark.parametrize("fault", ["never", "fail"])
async def test_missing_transcript_still_gets_the_answer(
    realtime_fake: FakeProvider, open_session: OpenSession, fault: str
) -> None:
    """The model answers the spoken turn; a failed transcription is a TRANSCRIPTION error."""
    session, events = await open_session()
    if fault == "never":
        realtime_fake.never_transcribe_next_turn()
    else:
        realtime_fake.fail_next_transcription()
    realtime_fake.say("I am listening.")

    await speak(session, UTTERANCE)
    seen = await _answers(events, "I am listening.")

    assert not [e for e in _of(InputTranscript, seen) if e.final]
    reported = [e.kind for e in _of(ProviderError, seen)]
    failure_event = fault == "fail" and realtime_fake.name == PROVIDER_OPENAI
    assert reported == ([ErrorKind.TRANSCRIPTION] if failure_event else [])
    await _next_turn_works(realtime_fake, session, events)


async def test_drop_mid_reply_fails_the_reply_and_reconnects(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    session, events = await open_session()
    realtime_fake.say(LONG_REPLY)
    realtime_fake.drop_mid_reply()

    await session.send_text("Tell me a story")
    seen = await until(events, lambda e: isinstance(e, Reconnected), DEADLINE_S)

    [started] = _of(ResponseStarted, seen)
    assert audio_of(seen, started.response_id)  # the chunk sent before the drop
    assert (
        ResponseDone(
            started.response_id,
            ResponseStatus.FAILED,
            reason="connection_lost",
            error_kind=ErrorKind.CONNECTION,
        )
        in seen
    )
    assert _of(Reconnected, seen)[0].lost_response
    await _next_turn_works(realtime_fake, session, events)


async def test_drop_after_a_tool_call(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    """OpenAI replays the call into the new connection, so its result brings the answer;
    Gemini's new connection cannot know the call: it is withdrawn, its result dropped."""
    session, events = await open_session(tools=(TOOL,))
    realtime_fake.say_then_call("One moment.", ("HassTurnOn", {"name": "porch light"}))
    realtime_fake.say("The porch light is on.")
    realtime_fake.drop_after_tool_call()

    await session.send_text("Turn on the porch light")
    seen = await until(events, lambda e: isinstance(e, Reconnected), DEADLINE_S)
    [call] = _of(ToolCall, seen)
    assert _of(AwaitingToolResults, seen) == [AwaitingToolResults((call.call_id,))]
    await session.send_tool_result(call.call_id, call.name, {"success": True})
    second = await realtime_fake.wait_for_connection(2)

    if realtime_fake.name == PROVIDER_OPENAI:
        assert not _of(ToolCallsCancelled, seen)
        await _answers(events, "The porch light is on.")
        assert second.tool_results() == [{"success": True}]
        await _next_turn_works(realtime_fake, session, events)
    else:
        assert _of(ToolCallsCancelled, seen) == [ToolCallsCancelled((call.call_id,))]
        assert session.outstanding_tool_calls == frozenset()
        await _next_turn_works(realtime_fake, session, events, "The porch light is on.")
        assert second.tool_results() == []


async def test_drop_mid_user_speech_loses_no_audio_and_keeps_its_order(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    """Audio spoken before the drop, while reconnecting and while the new connection is
    being restored reaches it after the restore, in order, through a fresh resampler
    (frame by frame, as a satellite sends it); the turn is answered."""
    session, events = await open_session()
    realtime_fake.drop_mid_user_speech()
    realtime_fake.hear("Turn on the porch light.")
    realtime_fake.say("Done.")
    before_drop = silence(0.3, RATE) + speech_like(0.5, RATE)
    while_held = speech_like(0.3, RATE, seed=3)
    while_restoring = speech_like(0.2, RATE, seed=4) + silence(1.0, RATE)

    realtime_fake.hold_new_connections()
    await speak(session, before_drop)
    second = await realtime_fake.wait_for_connection(2)  # reconnecting, setup held
    await speak(session, while_held)
    realtime_fake.admit_connections()
    for start in range(0, len(while_restoring), 640):
        await session.send_audio(while_restoring[start : start + 640])
        await asyncio.sleep(0)  # the next frame comes later: the restore goes on meanwhile
    seen = await _answers(events, "Done.")

    assert [e.text for e in _of(InputTranscript, seen) if e.final] == ["Turn on the porch light."]
    assert _of(Reconnected, seen)
    # Answered: the fake has read every frame sent before the text (it reads in order).
    await _next_turn_works(realtime_fake, session, events)
    spoken = before_drop + while_held + while_restoring
    expected = (
        MicrophoneResampler(RATE, 24000).process(spoken)
        if isinstance(realtime_fake, OpenAIFake)
        else spoken
    )
    assert second.audio_received() == expected


async def test_garbage_from_the_provider_is_reported_and_ignored(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    session, events = await open_session()
    realtime_fake.send_garbage_before_next_reply()
    realtime_fake.say("Still here.")

    await session.send_text("Hello?")
    seen = await _answers(events, "Still here.")

    errors = _of(ProviderError, seen)
    assert errors
    assert {e.kind for e in errors} == {ErrorKind.PROTOCOL}
    assert not any(e.fatal for e in errors)
    await _next_turn_works(realtime_fake, session, events)


async def test_unusable_audio_chunk_is_reported_and_skipped(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    session, events = await open_session()
    realtime_fake.corrupt_next_audio()
    realtime_fake.say("Here is the weather for today.")

    await session.send_text("What is the weather?")
    seen = await _answers(events, "Here is the weather for today.")

    assert [e.kind for e in _of(ProviderError, seen)] == [ErrorKind.PROTOCOL]
    assert audio_of(seen) == realtime_fake.connections[0].reply_pcm(0)
    await _next_turn_works(realtime_fake, session, events)


async def test_rate_limited_reply_is_retried(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    """OpenAI fails the response: the session asks again, after the provider's hint.
    Gemini closes the connection: a RATE_LIMIT error, then the session reconnects."""
    session, events = await open_session()
    realtime_fake.fail_next_reply("rate_limit")
    realtime_fake.say("Here you go.")

    await session.send_text("Hello")

    if realtime_fake.name == PROVIDER_OPENAI:
        seen = await _answers(events, "Here you go.")
        [retrying] = _of(ResponseRetrying, seen)
        assert retrying.delay_s == pytest.approx(0.05)
        assert retrying.response_id is not None
        assert not [e for e in _of(ResponseDone, seen) if e.response_id == retrying.response_id]
        await _next_turn_works(realtime_fake, session, events)
    else:
        seen = await until(events, lambda e: isinstance(e, Reconnected), DEADLINE_S)
        assert [e.kind for e in _of(ProviderError, seen)] == [ErrorKind.RATE_LIMIT]
        await _next_turn_works(realtime_fake, session, events, "Here you go.")


@pytest.mark.parametrize("provider", [PROVIDER_OPENAI])
async def test_rate_limit_retries_end_with_the_failure(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    """Past the retry budget the rate-limited response is reported as it failed."""
    assert isinstance(realtime_fake, OpenAIFake)
    session, events = await open_session()
    for _ in range(4):
        realtime_fake.server.rate_limit_next_response()

    await session.send_text("Hello")
    seen = await until(events, _done, DEADLINE_S)

    assert len(_of(ResponseRetrying, seen)) == FAST.rate_limit_attempts
    done = seen[-1]
    assert isinstance(done, ResponseDone)
    assert (done.status, done.error_kind) == (ResponseStatus.FAILED, ErrorKind.RATE_LIMIT)
    await _next_turn_works(realtime_fake, session, events)


@pytest.mark.parametrize("provider", [PROVIDER_OPENAI])
@pytest.mark.parametrize(
    ("switch", "kind"),
    [
        ("rate_limit_next_response", ErrorKind.RATE_LIMIT),
        ("exhaust_quota_next_response", ErrorKind.QUOTA),
        ("server_error_next_response", ErrorKind.SERVER),
    ],
)
async def test_openai_error_event_refusing_the_response(
    realtime_fake: FakeProvider, open_session: OpenSession, switch: str, kind: ErrorKind
) -> None:
    """An `error` event answering our `response.create`: no response follows; a rate
    limit is asked again, the others are reported with their kind."""
    assert isinstance(realtime_fake, OpenAIFake)
    session, events = await open_session()
    getattr(realtime_fake.server, switch)(in_response=False)

    await session.send_text("Hello")

    if kind is ErrorKind.RATE_LIMIT:
        seen = await until(events, _done, DEADLINE_S)
        assert _of(ResponseRetrying, seen) == [ResponseRetrying(None, pytest.approx(0.05))]
        assert seen[-1].status is ResponseStatus.COMPLETED  # type: ignore[union-attr]
    else:
        seen = await until(events, lambda e: isinstance(e, ProviderError), DEADLINE_S)
        error = seen[-1]
        assert isinstance(error, ProviderError)
        assert (error.kind, error.refused_response, error.fatal) == (kind, True, False)
        assert not _of(ResponseStarted, seen)
    await _next_turn_works(realtime_fake, session, events)


@pytest.mark.parametrize("failure", ["quota", "server"])
async def test_failed_reply_says_why(
    realtime_fake: FakeProvider, open_session: OpenSession, failure: str
) -> None:
    """OpenAI fails the response (billing failures come only this way) and carries on;
    Gemini closes: exhausted quota ends the session, a server error is reconnected."""
    session, events = await open_session()
    realtime_fake.fail_next_reply(failure)  # type: ignore[arg-type]
    realtime_fake.say("Here you go.")
    kind = ErrorKind.QUOTA if failure == "quota" else ErrorKind.SERVER

    await session.send_text("Hello")

    if realtime_fake.name == PROVIDER_OPENAI:
        seen = await until(events, _done, DEADLINE_S)
        done = seen[-1]
        assert isinstance(done, ResponseDone)
        assert (done.status, done.error_kind) == (ResponseStatus.FAILED, kind)
        assert not _of(ResponseRetrying, seen)
        await _next_turn_works(realtime_fake, session, events, "Here you go.")
    elif kind is ErrorKind.QUOTA:
        seen = await until(events, lambda e: isinstance(e, SessionClosed), DEADLINE_S)
        assert seen[-1] == SessionClosed(seen[-1].error, ErrorKind.QUOTA)  # type: ignore[union-attr]
        with pytest.raises(SessionClosedError) as raised:
            await session.send_text("Hello?")
        assert raised.value.kind is ErrorKind.QUOTA
    else:
        seen = await until(events, lambda e: isinstance(e, Reconnected), DEADLINE_S)
        assert [e.kind for e in _of(ProviderError, seen)] == [ErrorKind.SERVER]
        await _next_turn_works(realtime_fake, session, events, "Here you go.")


@pytest.mark.parametrize("provider", [PROVIDER_GEMINI])
async def test_refused_resumption_handle_starts_afresh_with_the_history(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    assert isinstance(realtime_fake, GeminiFake)
    session, events = await open_session()
    realtime_fake.say("Your name is Ada.")
    await session.send_text("My name is Ada.")
    await _answers(events, "Your name is Ada.")
    first = await realtime_fake.server.wait_for_connection(1)
    await first.wait_idle()
    realtime_fake.refuse_resumption_handles()

    await first.close(1011, "Internal error encountered.")
    await until(events, lambda e: isinstance(e, Reconnected), DEADLINE_S)

    fresh = realtime_fake.server.connections[-1]
    await fresh.wait_for_message("clientContent")
    assert fresh.resumed_from is None
    assert [t["role"] for t in fresh.history][:2] == ["user", "model"]
    realtime_fake.say("Ada.")
    await session.send_text("What is my name?")
    await _answers(events, "Ada.")


@pytest.mark.parametrize("provider", [PROVIDER_GEMINI])
async def test_answered_turn_without_a_transcript_is_not_replayed_after_a_drop(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    """Gemini may send no transcription of a spoken turn (and no failure either); once the
    model answered the turn, a new connection does not hear it again."""
    assert isinstance(realtime_fake, GeminiFake)
    session, events = await open_session()
    realtime_fake.never_transcribe_next_turn()
    realtime_fake.say("The light is on.")
    await speak(session, UTTERANCE)
    await _answers(events, "The light is on.")
    first = await realtime_fake.server.wait_for_connection(1)
    await first.wait_idle()

    first.close_abruptly()
    await until(events, lambda e: isinstance(e, Reconnected), DEADLINE_S)
    # Answered: the new connection has read everything sent before the text.
    await _next_turn_works(realtime_fake, session, events)

    assert realtime_fake.connections[1].audio_ms_received == 0


@pytest.mark.parametrize("frame_s", [1.0, 0.1])
async def test_provider_that_stops_reading_is_replaced(
    realtime_fake: FakeProvider,
    open_session: OpenSession,
    monkeypatch: pytest.MonkeyPatch,
    frame_s: float,
) -> None:
    """A send that cannot complete gives the connection up (the session never blocks for
    good); the new connection gets the turn's audio and answers. Small frames, sent
    without a timer while they fit the write buffer, get one once it fills."""
    monkeypatch.setattr(base, "SEND_TIMEOUT_S", 0.5)
    session, events = await open_session()
    realtime_fake.pause_reading()
    frame = silence(frame_s, RATE)

    reconnected = asyncio.ensure_future(until(events, lambda e: isinstance(e, Reconnected), 30))
    while not reconnected.done():
        await session.send_audio(frame)
        await asyncio.sleep(0)
    await reconnected

    realtime_fake.say("I hear you again.")
    await speak(session, UTTERANCE)
    await _answers(events, "I hear you again.")


async def test_gemini_instruction_change_waits_for_the_next_connection(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    """Home Assistant's prompt changes every turn (it carries the time): no reconnect for
    that on Gemini; a new voice does need one (OpenAI changes both live)."""
    session, events = await open_session()
    await session.update(session_config(realtime_fake.name, instructions="It is 10:01."))
    realtime_fake.say("Noted.")
    await session.send_text("Hello")
    await _answers(events, "Noted.")
    assert len(realtime_fake.connections) == 1

    await session.update(
        session_config(realtime_fake.name, instructions="It is 10:02.", voice="Kore")
    )
    if realtime_fake.name == PROVIDER_GEMINI:
        await until(events, lambda e: isinstance(e, Reconnected), DEADLINE_S)
        second = realtime_fake.connections[1]
        assert second.instructions == "It is 10:02."
    await _next_turn_works(realtime_fake, session, events)


@pytest.mark.parametrize("provider", [PROVIDER_GEMINI])
async def test_no_recycle_while_a_tool_call_is_outstanding(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    """A reconfiguration that needs a new connection waits for true idle: the result goes
    to the connection that asked, the model answers there, and only then it is replaced."""
    session, events = await open_session(tools=(TOOL,))
    realtime_fake.say_then_call(None, ("HassTurnOn", {"name": "porch light"}))
    realtime_fake.say("The porch light is on.")
    await session.send_text("Turn on the porch light")
    seen = await until(events, lambda e: isinstance(e, AwaitingToolResults), DEADLINE_S)
    [call] = _of(ToolCall, seen)

    await session.update(session_config(realtime_fake.name, tools=(TOOL,), voice="Kore"))
    await session.send_tool_result(call.call_id, call.name, {"success": True})
    answer = await until(events, lambda e: _done(e) and e.transcript != "", DEADLINE_S)  # type: ignore[union-attr]
    later = await until(events, lambda e: isinstance(e, Reconnected), DEADLINE_S)

    assert not _of(Reconnected, answer)
    assert answer[-1].transcript == "The porch light is on."  # type: ignore[union-attr]
    first = realtime_fake.connections[0]
    assert first.tool_results() == [{"success": True}]
    assert later[-1].lost_response is False  # type: ignore[union-attr]


@pytest.mark.parametrize("provider", [PROVIDER_OPENAI])
async def test_truncation_is_per_audio_item(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    """What was heard of each item: a fully played item is left alone, the next one is
    cut where the listener stopped, one never heard is deleted."""
    assert isinstance(realtime_fake, OpenAIFake)
    server = realtime_fake.server
    session, events = await open_session(tools=(TOOL,))
    realtime_fake.say_then_call("Let me check that for you.", ("HassTurnOn", {}))
    realtime_fake.say(LONG_REPLY)
    await session.send_text("Turn it on")
    first = await until(events, lambda e: isinstance(e, AwaitingToolResults), DEADLINE_S)
    [call] = _of(ToolCall, first)
    first_item = {e.item_id for e in _of(AudioChunk, first)}.pop()
    assert first_item is not None
    first_ms = len(audio_of(first)) // 48

    server.chunk_delay_s = 0.02
    await session.send_tool_result(call.call_id, call.name, {"success": True})
    second = await until(events, lambda e: isinstance(e, AudioChunk), DEADLINE_S)
    second_item = _of(AudioChunk, second)[0].item_id
    assert second_item is not None
    await session.interrupt({first_item: first_ms, second_item: 20})
    await until(events, _done, DEADLINE_S)

    conn = server.connections[0]
    await conn.wait_for_event("conversation.item.truncate")
    assert conn.truncations == [(second_item, 20)]
    assert not [e for e in conn.received if e["type"] == "conversation.item.delete"]


@pytest.mark.parametrize("provider", [PROVIDER_OPENAI])
async def test_speech_after_a_played_reply_truncates_nothing(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    """The listener heard the whole reply: speaking again must not cut it (it used to)."""
    assert isinstance(realtime_fake, OpenAIFake)
    session, events = await open_session()
    realtime_fake.say("Short.")
    await session.send_text("Say something short")
    seen = await _answers(events, "Short.")
    [item] = {e.item_id for e in _of(AudioChunk, seen)}
    assert item is not None
    session.report_played(item, len(audio_of(seen)) // 48)

    realtime_fake.say("Yes?")
    await speak(session, UTTERANCE)
    await _answers(events, "Yes?")

    conn = realtime_fake.server.connections[0]
    assert conn.truncations == []
    assert not [e for e in conn.received if e["type"] == "conversation.item.delete"]
