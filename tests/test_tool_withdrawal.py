"""A tool call the provider withdraws (Gemini's toolCallCancellation) before the agent
reaches it is never started; one it reaches first runs, and its late result is
dropped by the provider (tests/realtime/test_session_gemini.py)."""

from __future__ import annotations

from homeassistant.components import conversation
from homeassistant.core import HomeAssistant
from homeassistant.helpers import llm
import probatio
import pytest

from custom_components.realtime_assist.conversation import _chat_log_deltas
from custom_components.realtime_assist.realtime.config import Endpoint, SessionConfig
from custom_components.realtime_assist.realtime.events import (
    AwaitingToolResults,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    ResponseStatus,
    SessionEvent,
    ToolCall,
    ToolCallsCancelled,
)
from custom_components.realtime_assist.realtime.providers.gemini import GeminiLiveProvider
from custom_components.realtime_assist.realtime.session import RealtimeSession
from custom_components.realtime_assist.realtime.turn import Turn


class _RecordingTool(llm.Tool):
    name = "open_garage"
    description = "Opens the garage door"
    parameters = probatio.Schema({})

    def __init__(self) -> None:
        self.calls = 0

    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> llm.ToolResult:
        self.calls += 1
        return llm.ToolResult(data={"opened": True})


class _API(llm.API):
    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        raise NotImplementedError


@pytest.mark.parametrize(("withdrawn", "expected_calls"), [(True, 0), (False, 1)])
async def test_withdrawn_call_is_never_started(
    hass: HomeAssistant, withdrawn: bool, expected_calls: int
) -> None:
    tool = _RecordingTool()
    chat_log = conversation.ChatLog(hass, "withdrawal")
    llm_context = llm.LLMContext("test", None, "en", "conversation", None)
    chat_log.llm_api = llm.APIInstance(
        api=_API(hass=hass, id="test", name="Test"),
        api_prompt="",
        llm_context=llm_context,
        tools=[tool],
    )
    # A turn on a real (unstarted) session, holding what the provider said while
    # the agent was not reading yet.
    session = RealtimeSession(GeminiLiveProvider(Endpoint("key")), SessionConfig(model="m"))
    turn = Turn(session, typed=True)
    buffered: list[SessionEvent] = [
        ResponseStarted("r1"),
        ToolCall("r1", "call-1", "open_garage", {}),
        AwaitingToolResults(("call-1",)),
        ResponseDone("r1", ResponseStatus.COMPLETED),
    ]
    if withdrawn:
        buffered.append(ToolCallsCancelled(("call-1",)))
    buffered.append(Interrupted("r1"))
    for event in buffered:
        turn._events.put(event)
    await turn.wait_ended()

    contents = [
        content
        async for content in chat_log.async_add_delta_content_stream(
            "agent", _chat_log_deltas(turn, {})
        )
    ]

    assert tool.calls == expected_calls
    results = [c for c in contents if isinstance(c, conversation.ToolResultContent)]
    assert len(results) == expected_calls
