"""The conversation agent: each turn goes into the conversation's live realtime session.

The model's words stream into Home Assistant's chat log as they arrive; its
function calls become the chat log's tool calls, which Home Assistant starts at
once, while the model may still be talking; their results go back to the model.
When our text-to-speech plays the reply, the satellite starts playing it at the
model's first audio (see `_async_answer_aloud`). A failed turn answers with
what went wrong, which the satellite then says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
import contextlib
from typing import Literal

from homeassistant.components import conversation
from homeassistant.components.conversation.models import AbstractConversationAgent
from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import CONF_LLM_HASS_API, MATCH_ALL, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import intent, llm
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import RealtimeAssistConfigEntry
from .assist_bridge import (
    PipelineRunInfo,
    current_pipeline_run,
    plays_from_tts_end,
    start_streaming_reply,
)
from .const import DOMAIN, LOGGER
from .entity import RealtimeAssistEntity, async_add_agent_entities
from .notices import async_failure_message
from .realtime.errors import RealtimeError
from .realtime.events import AwaitingToolResults, ResponseStarted, ToolCall, TranscriptDelta
from .realtime.turn import UNHEARD_WORDS, Turn, TurnError
from .tools import own_tool_names, provider_tool_name

PARALLEL_UPDATES = 0
# How Home Assistant tells a question (`ChatLog.continue_conversation`): "?", Greek, Chinese.
QUESTION_MARKS = ("?", ";", "\uff1f")


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
        run = current_pipeline_run(self.hass)
        conversation_id = chat_log.conversation_id
        if (failure := agent.untold_failure(conversation_id)) is not None:
            # Speech-to-text already failed this turn: the user hears why.
            return await self._async_failed(user_input, chat_log, failure)
        try:
            config = agent.adapt_to_run(
                await agent.async_session_config(
                    user_input.as_llm_context(DOMAIN), user_input.extra_system_prompt, chat_log
                ),
                run,
            )
        except conversation.ConverseError as err:
            return err.as_conversation_result()

        turn = agent.spoken_turn(conversation_id, run)
        try:
            if turn is None:
                # Typed, or spoken to another speech-to-text: the text starts the turn.
                turn = await agent.async_begin_turn(
                    conversation_id, config, typed_text=user_input.text
                )
            # Spoken to our speech-to-text: the model is already answering.
            turn.answered = True
        except TurnError as err:
            agent.untold_failure(conversation_id)  # told now
            return await self._async_failed(user_input, chat_log, err)
        if not agent.speaks_in(run):
            turn.discard_audio()
            return await self._async_answer(user_input, chat_log, turn)
        return await self._async_answer_aloud(user_input, chat_log, turn, run)

    async def _async_answer(
        self,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
        turn: Turn,
    ) -> conversation.ConversationResult:
        """The whole reply into the chat log, then the result."""
        await write_reply(self.entity_id, turn, chat_log)
        return await self._async_result(user_input, chat_log, turn)

    async def _async_answer_aloud(
        self,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
        turn: Turn,
        run: PipelineRunInfo | None,
    ) -> conversation.ConversationResult:
        """A reply our text-to-speech plays: the satellite hears it from the model's first audio.

        The model's voice is there before its words, so at its first audio chunk
        the pipeline is told to start streaming (`start_streaming_reply`). A
        satellite that only starts playing at the pipeline's `tts-end` needs the
        conversation stage to end for that: there the result goes back at the first
        audio, with the words so far, and the reply goes on into the chat log.
        """
        writing = asyncio.ensure_future(write_reply(self.entity_id, turn, chat_log))
        speaking = asyncio.ensure_future(turn.speaking.wait())
        try:
            await asyncio.wait({writing, speaking}, return_when=asyncio.FIRST_COMPLETED)
            if not writing.done():
                start_streaming_reply(chat_log)
                if plays_from_tts_end(self.hass, run):
                    return self._hand_back_early(user_input, chat_log, turn, writing)
            await writing
        except asyncio.CancelledError:
            writing.cancel()
            raise
        finally:
            speaking.cancel()
        return await self._async_result(user_input, chat_log, turn)

    def _hand_back_early(
        self,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
        turn: Turn,
        writing: asyncio.Future[None],
    ) -> conversation.ConversationResult:
        """End the conversation stage now; the reply keeps going into the chat log.

        The log must hold an answer when the stage ends (Home Assistant keeps or
        drops a conversation's log by it): a placeholder, replaced by the model's
        words once they are complete.
        """
        placeholder = conversation.AssistantContent(agent_id=self.entity_id, content="")
        chat_log.async_add_assistant_content_without_tools(placeholder)

        async def finish() -> None:
            try:
                await writing
            finally:
                if any(
                    isinstance(content, conversation.AssistantContent)
                    and content is not placeholder
                    for content in chat_log.content[chat_log.content.index(placeholder) :]
                ):
                    chat_log.content.remove(placeholder)
                if turn.failure is not None:
                    add_error(chat_log, self.entity_id, failure_error(turn.failure))

        self.agent.keep_replying(
            turn, self.hass.async_create_background_task(finish(), "realtime_assist_reply")
        )
        result = _spoken_result(user_input, chat_log, turn.words_so_far() or UNHEARD_WORDS)
        # Decided before the model has finished: a question it announced (follow_up.py).
        result.continue_conversation |= turn.expects_answer
        return result

    async def _async_result(
        self,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
        turn: Turn,
    ) -> conversation.ConversationResult:
        if turn.failure is not None:
            return await self._async_failed(user_input, chat_log, turn.failure)
        if not isinstance(chat_log.content[-1], conversation.AssistantContent):
            # Cut off between a tool round and the model's words about it (the user spoke).
            return _spoken_result(user_input, chat_log, turn.words_so_far())
        return conversation.async_get_result_from_chat_log(user_input, chat_log)

    async def _async_failed(
        self,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
        failure: TurnError,
    ) -> conversation.ConversationResult:
        """The turn failed: the user hears (or reads) why, in their language."""
        error = failure_error(failure)
        message = await async_failure_message(self.hass, user_input.language, failure)
        add_error(chat_log, self.entity_id, error)
        response = intent.IntentResponse(language=user_input.language)
        response.async_set_error(intent.IntentResponseErrorCode.UNKNOWN, message)
        return conversation.ConversationResult(
            response=response, conversation_id=chat_log.conversation_id
        )


def _spoken_result(
    user_input: conversation.ConversationInput, chat_log: conversation.ChatLog, said: str
) -> conversation.ConversationResult:
    response = intent.IntentResponse(language=user_input.language)
    response.async_set_speech(said)
    return conversation.ConversationResult(
        response=response,
        conversation_id=chat_log.conversation_id,
        continue_conversation=said.rstrip().endswith(QUESTION_MARKS),
    )


async def write_reply(agent_id: str, turn: Turn, chat_log: conversation.ChatLog) -> None:
    """Stream the model's reply into the chat log; its tool results go back to the model.

    Home Assistant starts each tool call the moment it is in the log, while the
    model may still be talking. The reply ends with the turn; a failed turn ends
    it early, with what the model said so far kept in the log.
    """
    deltas = _chat_log_deltas(turn, own_tool_names(chat_log.llm_api))
    async for content in chat_log.async_add_delta_content_stream(agent_id, deltas):
        if isinstance(content, conversation.ToolResultContent) and not turn.ended.is_set():
            try:
                await turn.session.send_tool_result(
                    content.tool_call_id,
                    provider_tool_name(content.tool_name),
                    dict(content.result.data),
                )
            except RealtimeError as err:
                LOGGER.debug("Tool result for %s not delivered: %s", content.tool_name, err)


async def _chat_log_deltas(
    turn: Turn, own_names: Mapping[str, str]
) -> AsyncIterator[conversation.AssistantContentDeltaDict]:
    """The model's answer as chat log deltas, until the turn ends.

    `own_names`: the tools' own names by the names the model was given for them.

    A batch of tool calls closes the assistant message (the chat log then waits
    for the calls, already running, and hands us their results); each response of
    the model opens a message of its own (Gemini's background calls leave the
    model talking after a batch, and its answer to the results is a new response).
    """
    yield {"role": "assistant"}
    with contextlib.suppress(TurnError):  # the caller looks at turn.failure
        async for event in turn.replies():
            match event:
                case ResponseStarted():
                    yield {"role": "assistant"}
                case TranscriptDelta(text=text):
                    yield {"content": text}
                case ToolCall() if turn.withdrawn(event.call_id):
                    # Withdrawn before we got to it (the user spoke): never start it.
                    LOGGER.debug("Not starting withdrawn tool call %s", event.name)
                case ToolCall():
                    tool_input = llm.ToolInput(
                        id=event.call_id,
                        tool_name=own_names.get(event.name, event.name),
                        tool_args=event.arguments,
                    )
                    yield {"tool_calls": [tool_input]}
                case AwaitingToolResults():
                    yield {"role": "assistant"}


def failure_error(failure: TurnError) -> HomeAssistantError:
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key=f"turn_failed_{failure.reason}",
        translation_placeholders={"error": failure.detail, **failure.placeholders},
    )


def add_error(chat_log: conversation.ChatLog, agent_id: str, error: HomeAssistantError) -> None:
    """Record the error that ended the turn, as Home Assistant 2026.11 does itself."""
    if (record := getattr(chat_log, "async_add_error", None)) is not None:
        record(agent_id, error)
        return
    chat_log.async_add_assistant_content_without_tools(
        conversation.AssistantContent(agent_id=agent_id, content=f"Error: {error}")
    )
