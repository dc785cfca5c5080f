"""Continued conversation when the reply starts before the model has finished.

Home Assistant keeps a satellite listening after a reply that asks a question
(`continue_conversation`) and tells the satellite so when the conversation
stage ends. A satellite that starts playing only at the end of that stage
(ESPHome devices without a media player) gets the stage ended at the model's
first audio (conversation.py), before the model has finished: so on those
satellites the model is offered a tool to say up front that it will ask.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses

from homeassistant.core import HomeAssistant
from homeassistant.helpers import llm
import probatio

from .assist_bridge import current_conversation_id
from .const import DOMAIN
from .realtime.config import SessionConfig
from .realtime.turn import Turn

EXPECT_ANSWER_TOOL = f"{DOMAIN}__expect_answer"


class ExpectAnswerTool(llm.Tool):
    """The model will end its reply with a question: the satellite listens again after it."""

    name = EXPECT_ANSWER_TOOL
    description = (
        "Call this first, before you say anything, whenever your reply will ask the user a "
        "question they should answer out loud: the device then keeps listening after your "
        "reply. Do not call it for other replies."
    )
    parameters = probatio.Schema({})
    annotations = llm.ToolAnnotations(read_only=True, destructive=False, idempotent=True)

    def __init__(self, current_turn: Callable[[str | None], Turn | None]) -> None:
        self.integration = DOMAIN
        self._current_turn = current_turn

    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> llm.ToolResult:
        if (turn := self._current_turn(current_conversation_id())) is not None:
            turn.expects_answer = True
        return llm.ToolResult(
            data={"success": True, "note": "The device will listen after your reply: ask now."}
        )


def without_expect_answer(config: SessionConfig) -> SessionConfig:
    """The configuration without the tool (satellites that learn it in time anyway)."""
    tools = tuple(tool for tool in config.tools if tool.name != EXPECT_ANSWER_TOOL)
    return config if len(tools) == len(config.tools) else dataclasses.replace(config, tools=tools)
