"""The conversation agent: each turn goes into the conversation's live realtime session.

The model's words stream into Home Assistant's chat log as they arrive (so the
Assist dialog and the pipeline's streaming TTS start early); its function
calls become the chat log's tool calls, which Home Assistant starts at once,
while the model may still be talking; their results go back to the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

from homeassistant.components import conversation
from homeassistant.components.conversation.models import AbstractConversationAgent
from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import CONF_LLM_HASS_API, MATCH_ALL, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import chat_session, llm
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import RealtimeAssistConfigEntry
from .assist_bridge import current_pipeline_run
from .const import DOMAIN, LOGGER
from .entity import RealtimeAssistEntity, async_add_agent_entities
from .realtime.config import OutputModality
from .realtime.errors import RealtimeError
from .realtime.events import (
    AwaitingToolResults,
    ProviderError,
    ResponseDone,
    ResponseStarted,
    ResponseStatus,
    SessionClosed,
    ToolCall,
    ToolCallsCancelled,
    TranscriptDelta,
)
from .realtime.session import Subscription
from .realtime.turn import TurnTracker, VoiceTurn

PARALLEL_UPDATES = 0
# Longest the model may stay silent within a turn before we give up on it.
RESPONSE_TIMEOUT_S = 60.0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: RealtimeAssistConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One conversation agent per realtime agent (subentry)."""
    async_add_agent_entities(entry, async_add_entities, RealtimeConversationEntity)


class RealtimeConversationEntity(
    conversation.ConversationEntity,
    AbstractConversationAgent,
    RealtimeAssistEntity,
):
    """A conversation agent backed by a long-lived realtime session per conversation."""

    _agent_platform = Platform.CONVERSATION
    _attr_supports_streaming = True

    def __init__(self, entry: RealtimeAssistConfigEntry, subentry: ConfigSubentry) -> None:
        super().__init__(entry, subentry)
        if subentry.data.get(CONF_LLM_HASS_API):
            self._attr_supported_features = conversation.ConversationEntityFeature.CONTROL

    @property
    def supported_languages(self) -> list[str] | Literal["*"]:
        return MATCH_ALL

    async def async_will_remove_from_hass(self) -> None:
        conversation.async_unset_agent(self.hass, self.entry)
        await super().async_will_remove_from_hass()

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        conversation.async_set_agent(self.hass, self.entry, self)

    async def _async_handle_message(
        self,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
    ) -> conversation.ConversationResult:
        agent = self.agent
        try:
            config = agent.adapt_to_run(
                await agent.async_session_config(
                    user_input.as_llm_context(DOMAIN), user_input.extra_system_prompt, chat_log
                ),
                current_pipeline_run(self.hass),
            )
        except conversation.ConverseError as err:
            return err.as_conversation_result()

        conversation_id = chat_log.conversation_id
        new_conversation = agent.pool.get(conversation_id) is None
        try:
            async with agent.pool.lease(conversation_id, config) as session:
                if new_conversation and (current := chat_session.current_session.get()):
                    # Home Assistant forgets the conversation after 5 idle minutes.
                    current.async_on_cleanup(agent.pool.discard_later(conversation_id))
                turn = agent.turn(conversation_id)
                if turn is None or turn.session is not session or turn.agent_done:
                    # Typed, or spoken to another speech-to-text: send the text.
                    turn = VoiceTurn(session)
                    agent.start_turn(conversation_id, turn)
                    await session.send_text(user_input.text)
                # Spoken to our speech-to-text: the model is already answering.
                await self._async_stream_answer(turn, chat_log)
        except RealtimeError as err:
            LOGGER.warning("Realtime session failed: %s", err)
            raise HomeAssistantError(f"The realtime model is unavailable: {err}") from err
        if config.output_modality is OutputModality.TEXT:
            turn.discard_audio()
        return conversation.async_get_result_from_chat_log(user_input, chat_log)

    async def _async_stream_answer(self, turn: VoiceTurn, chat_log: conversation.ChatLog) -> None:
        """Stream the model's answer into the chat log; its tool results go back to the model."""
        async for content in chat_log.async_add_delta_content_stream(
            self.entity_id, _chat_log_deltas(turn.agent_events)
        ):
            if isinstance(content, conversation.ToolResultContent):
                await turn.session.send_tool_result(
                    content.tool_call_id, content.tool_name, dict(content.result.data)
                )
        turn.agent_done = True


def _withdrawn(events: Subscription, call_id: str) -> bool:
    """Whether the provider already withdrew the call (the news waits in the buffer)."""
    return any(
        isinstance(event, ToolCallsCancelled) and call_id in event.call_ids
        for event in events.peek()
    )


async def _chat_log_deltas(
    events: Subscription,
) -> AsyncIterator[conversation.AssistantContentDeltaDict]:
    """The model's answer as chat log deltas, until its last response of the turn ends.

    A batch of tool calls closes the assistant message (the chat log then waits
    for the calls, already running, and hands us their results); the model's
    follow-up response opens the next message.
    """
    yield {"role": "assistant"}
    tracker = TurnTracker()
    responding = False
    while True:
        try:
            async with asyncio.timeout(RESPONSE_TIMEOUT_S):
                event = await anext(events)
        except StopAsyncIteration:
            raise HomeAssistantError("The realtime session ended during the turn") from None
        except TimeoutError:
            raise HomeAssistantError("The realtime model did not answer in time") from None
        if not tracker.belongs(event):
            continue  # the late end of an earlier reply
        match event:
            case ResponseStarted():
                responding = True
            case TranscriptDelta(text=text):
                yield {"content": text}
            case ToolCall() if _withdrawn(events, event.call_id):
                # Withdrawn before we got to it (the user spoke): never start it.
                LOGGER.debug("Not starting withdrawn tool call %s", event.name)
            case ToolCall():
                tool_input = llm.ToolInput(
                    id=event.call_id, tool_name=event.name, tool_args=event.arguments
                )
                yield {"tool_calls": [tool_input]}
            case AwaitingToolResults():
                yield {"role": "assistant"}
            case ResponseDone(status=ResponseStatus.FAILED):
                raise HomeAssistantError(f"The realtime model's answer failed ({event.reason})")
            case ProviderError() if not responding:
                raise HomeAssistantError(f"The realtime model refused the turn: {event.message}")
            case SessionClosed(error=error):
                raise HomeAssistantError(f"The realtime session ended: {error or 'closed'}")
        if tracker.ends_turn(event):
            return
