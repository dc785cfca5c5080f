"""What a turn cost: the providers' usage reports, per turn, per session and per pool.

OpenAI reports a response's usage in its `response.done`. Gemini reports a model
turn's with `turnComplete`, which its server sends only after the playback it
waits for: after our turn has ended. Either way the report must end up with the
turn it belongs to, and the next turn must not inherit it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from google.genai import types
from openai.types.realtime.realtime_response_usage import RealtimeResponseUsage
import pytest

from custom_components.realtime_assist.realtime.config import (
    Endpoint,
    OutputModality,
    SessionConfig,
    ToolSpec,
)
from custom_components.realtime_assist.realtime.events import (
    Reconnected,
    ToolCall,
    Usage,
    UsageReported,
)
from custom_components.realtime_assist.realtime.pool import SessionPool
from custom_components.realtime_assist.realtime.providers import gemini, openai
from custom_components.realtime_assist.realtime.providers.gemini import GeminiLiveProvider
from custom_components.realtime_assist.realtime.providers.openai import OpenAIRealtimeProvider
from custom_components.realtime_assist.realtime.session import RealtimeSession, ReconnectPolicy
from custom_components.realtime_assist.realtime.turn import Turn
from tests.fakes.gemini_live import FakeGeminiLiveServer, ScriptedTurn, SpeechPart
from tests.fakes.openai_realtime import (
    FakeOpenAIRealtimeServer,
    FunctionCallItem,
    ScriptedResponse,
    SpeechItem,
)
from tests.fakes.providers import GeminiSession, OpenAISession, usage_kinds
from tests.realtime.events import until

GEMINI_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
PORCH_LIGHT = ToolSpec("HassTurnOn", "Turn a device on", {"type": "object", "properties": {}})


async def _typed_turn(session: RealtimeSession, text: str) -> Turn:
    """A typed turn read to its end, its tool calls answered."""
    turn = Turn(session, typed=True)
    turn.discard_audio()
    await turn.send_text(text)
    async for event in turn.replies():
        if isinstance(event, ToolCall):
            await session.send_tool_result(event.call_id, event.name, {"success": True})
    return turn


@pytest.fixture
async def gemini_server(socket_enabled: None) -> AsyncIterator[FakeGeminiLiveServer]:
    async with FakeGeminiLiveServer() as server:
        yield server


@pytest.fixture
async def gemini_session(
    gemini_server: FakeGeminiLiveServer,
) -> AsyncIterator[RealtimeSession]:
    provider = GeminiLiveProvider(Endpoint(api_key=gemini_server.api_key, url=gemini_server.url))
    session = RealtimeSession(
        provider,
        SessionConfig(model=GEMINI_MODEL),
        reconnect=ReconnectPolicy(attempts=3, first_delay_s=0.01, max_delay_s=0.05),
    )
    yield session
    await session.close()
    assert gemini_server.protocol_errors == []


async def test_a_turn_adds_up_its_responses_and_the_next_starts_afresh(
    fake_server: FakeOpenAIRealtimeServer,
) -> None:
    fake_server.add_response(
        ScriptedResponse(
            SpeechItem("One moment."), FunctionCallItem("HassTurnOn", {"name": "porch light"})
        )
    )
    fake_server.add_response(ScriptedResponse(SpeechItem("The porch light is on.")))
    fake_server.add_response(ScriptedResponse(SpeechItem("You're welcome.")))
    provider = OpenAIRealtimeProvider(Endpoint(fake_server.api_key, fake_server.url))
    reports: list[Usage] = []
    config = SessionConfig(model="gpt-realtime", tools=(PORCH_LIGHT,))

    async with RealtimeSession(provider, config, on_usage=reports.append) as session:
        first = await _typed_turn(session, "Turn on the porch light")
        first_reported = OpenAISession(fake_server.connections[0]).reported_usage()
        second = await _typed_turn(session, "Thank you")

    assert first.done_ok
    assert second.done_ok
    assert len(fake_server.connections[0].responses) == 3
    # The tool round's two responses are the first turn's.
    assert usage_kinds(first.usage) == first_reported
    assert (
        usage_kinds(first.usage) + usage_kinds(second.usage)
        == OpenAISession(fake_server.connections[0]).reported_usage()
    )
    # What the previous response read came from the prompt cache.
    assert second.usage.cached_tokens > 0
    assert not first.usage_pending
    assert not second.usage_pending
    # The owner heard of every report, as it came.
    assert len(reports) == 3
    assert sum(reports, Usage()) == first.usage + second.usage
    assert fake_server.protocol_errors == []


async def test_gemini_usage_that_comes_after_the_turn_ended_is_that_turns(
    gemini_server: FakeGeminiLiveServer, gemini_session: RealtimeSession
) -> None:
    gemini_server.turn_complete_hold = asyncio.Event()
    gemini_server.add_response(ScriptedTurn(SpeechPart("It is sunny.")))
    gemini_server.add_response(ScriptedTurn(SpeechPart("Tomorrow it rains.")))
    events = gemini_session.subscribe()
    await gemini_session.start()

    first = await _typed_turn(gemini_session, "How is the weather?")
    # The reply is over; the server reports its usage only after the playback.
    assert first.done_ok
    assert first.usage_pending
    assert first.usage == Usage()

    gemini_server.turn_complete_hold.set()
    await until(events, lambda event: isinstance(event, UsageReported))
    assert not first.usage_pending
    conn = GeminiSession(gemini_server.connections[0])
    assert usage_kinds(first.usage) == conn.reported_usage()
    reported_first = conn.reported_usage()

    second = await _typed_turn(gemini_session, "And tomorrow?")
    await until(events, lambda event: isinstance(event, UsageReported))
    assert usage_kinds(second.usage) == conn.reported_usage() - reported_first
    # The whole conversation is each turn's prompt.
    assert second.usage.input_text > first.usage.input_text


async def test_gemini_usage_owed_by_a_lost_connection_is_not_waited_for(
    gemini_server: FakeGeminiLiveServer, gemini_session: RealtimeSession
) -> None:
    gemini_server.turn_complete_hold = asyncio.Event()
    gemini_server.add_response(ScriptedTurn(SpeechPart("It is sunny.")))
    events = gemini_session.subscribe()
    await gemini_session.start()
    turn = await _typed_turn(gemini_session, "How is the weather?")
    assert turn.usage_pending

    gemini_server.connections[0].close_abruptly()
    await until(events, lambda event: isinstance(event, Reconnected))

    assert not turn.usage_pending
    assert turn.usage == Usage()


async def test_connected_time_counts_open_connections_spare_included(
    fake_server: FakeOpenAIRealtimeServer,
) -> None:
    provider = OpenAIRealtimeProvider(Endpoint(fake_server.api_key, fake_server.url))
    pool = SessionPool(provider, idle_timeout_s=60)
    config = SessionConfig(model="gpt-realtime")
    pool.keep_warm(config)
    await pool.settle()
    async with pool.lease("kitchen", config) as session:
        assert session.connected_s > 0
    kitchen = session.connected_s
    spare_and_kitchen = pool.connected_s()
    assert spare_and_kitchen > kitchen

    await pool.close_all()

    closed = pool.connected_s()
    assert closed >= spare_and_kitchen
    kitchen = session.connected_s
    # Nothing is connected any more: the times stand still.
    assert pool.connected_s() == closed
    assert session.connected_s == kitchen
    assert fake_server.protocol_errors == []


def _gemini_wire(metadata: dict[str, Any]) -> dict[str, Any]:
    """`metadata` as a valid `usageMetadata` of the SDK (camelCase on the wire)."""
    types.UsageMetadata.model_validate(metadata, by_alias=True, by_name=False)
    return metadata


def test_gemini_usage_metadata_by_billed_modality() -> None:
    """Video frames bill as images, thinking as output text; what the details leave
    out is the prompt's text and the reply's own modality."""
    metadata = _gemini_wire(
        {
            "promptTokenCount": 600,
            "cachedContentTokenCount": 100,
            "responseTokenCount": 60,
            "toolUsePromptTokenCount": 30,
            "thoughtsTokenCount": 12,
            "totalTokenCount": 702,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 300},
                {"modality": "AUDIO", "tokenCount": 200},
                {"modality": "VIDEO", "tokenCount": 75},
            ],
            "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 100}],
            "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 50}],
        }
    )

    usage = gemini.usage_of(metadata, OutputModality.AUDIO)

    assert usage == Usage(
        input_text=300 + 25 + 30,
        input_audio=200,
        input_image=75,
        cached_text=100,
        output_text=12,
        output_audio=50 + 10,
    )
    assert usage.total_tokens == 702


def test_openai_usage_by_modality_with_cached_input() -> None:
    wire = {
        "total_tokens": 821,
        "input_tokens": 789,
        "output_tokens": 32,
        "input_token_details": {
            "text_tokens": 313,
            "audio_tokens": 476,
            "cached_tokens": 640,
            "cached_tokens_details": {"text_tokens": 256, "audio_tokens": 384},
        },
        "output_token_details": {"text_tokens": 9, "audio_tokens": 23},
    }
    RealtimeResponseUsage.model_validate(wire)

    assert openai.usage_of(wire) == Usage(
        input_text=313,
        input_audio=476,
        cached_text=256,
        cached_audio=384,
        output_text=9,
        output_audio=23,
    )
    # Without details, every token counts as text.
    assert openai.usage_of({"input_tokens": 40, "output_tokens": 7}) == Usage(
        input_text=40, output_text=7
    )
    assert openai.usage_of(None) is None
