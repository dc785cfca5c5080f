"""One realtime agent (a config subentry) at runtime: its sessions, its turns, its prompt.

The agent's conversation, speech-to-text and text-to-speech entities meet
here. Sessions are keyed by conversation; a turn (`VoiceTurn`) is registered
under its conversation so the stage that comes next in the pipeline finds it.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from typing import Any

from homeassistant.components import conversation
from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import CONF_LLM_HASS_API, CONF_PROMPT, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import llm

from .agent_config import session_config_from_options
from .assist_bridge import PipelineRunInfo
from .const import (
    CONF_IDLE_TIMEOUT,
    CONF_KEEP_WARM,
    CONF_SERVICE_DOMAINS,
    CONF_TOOL_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_KEEP_WARM,
    DEFAULT_TOOL_TIMEOUT,
    DOMAIN,
)
from .realtime.config import OutputModality, SessionConfig
from .realtime.pool import SessionPool
from .realtime.providers.base import Provider
from .realtime.turn import VoiceTurn
from .service_tool import CallServiceTool
from .tools import guard_chat_log_tools, tool_specs


class RealtimeAgent:
    """Sessions, live turns and configuration of one realtime agent."""

    def __init__(
        self, hass: HomeAssistant, provider_name: str, provider: Provider, subentry: ConfigSubentry
    ) -> None:
        self.hass = hass
        self.options: Mapping[str, Any] = subentry.data
        self._provider_name = provider_name
        self.pool = SessionPool(
            provider,
            idle_timeout_s=float(self.options.get(CONF_IDLE_TIMEOUT, DEFAULT_IDLE_TIMEOUT)),
        )
        # The turn each conversation is in, for the pipeline stage that comes next.
        self._turns: dict[str, VoiceTurn] = {}
        # The last voice turn of each satellite, to cut it off when a new one starts.
        self._device_turns: dict[str, VoiceTurn] = {}
        # Entity ids of the agent's entities, set as they are added.
        self.entity_ids: dict[str, str] = {}
        if self.options.get(CONF_KEEP_WARM, DEFAULT_KEEP_WARM):
            self.pool.keep_warm(self.base_config)

    @property
    def base_config(self) -> SessionConfig:
        """The agent's settings alone, without Home Assistant's prompt and tools."""
        return session_config_from_options(self.options, self._provider_name)

    def adapt_to_run(self, config: SessionConfig, run: PipelineRunInfo | None) -> SessionConfig:
        """Fit a turn's configuration to who else takes part in it.

        Another agent answers (our speech-to-text only): the model transcribes
        and does not respond. Nobody plays our voice (another text-to-speech,
        or no pipeline at all): the model answers in text, no audio is made.
        """
        ours_answers = run is None or run.conversation_engine == self.entity_ids.get(
            Platform.CONVERSATION
        )
        ours_speaks = run is not None and run.tts_engine == self.entity_ids.get(Platform.TTS)
        return dataclasses.replace(
            config,
            turn_detection=dataclasses.replace(config.turn_detection, create_response=ours_answers),
            output_modality=OutputModality.AUDIO if ours_speaks else OutputModality.TEXT,
        )

    async def async_session_config(
        self,
        llm_context: llm.LLMContext,
        extra_system_prompt: str | None = None,
        chat_log: conversation.ChatLog | None = None,
    ) -> SessionConfig:
        """Instructions and tools exactly as Home Assistant builds them for this agent.

        With no chat log (speech-to-text runs before the conversation stage,
        yet the model answers the moment the user stops speaking) a scratch
        chat log builds the same prompt.
        """
        log = chat_log or conversation.ChatLog(self.hass, f"{DOMAIN}_prompt")
        await log.async_provide_llm_data(
            llm_context,
            self.options.get(CONF_LLM_HASS_API),
            self.options.get(CONF_PROMPT),
            extra_system_prompt,
        )
        if log.llm_api is not None:
            service_tool = await CallServiceTool.async_create(
                self.hass, self.options.get(CONF_SERVICE_DOMAINS), llm_context.language
            )
            guard_chat_log_tools(
                log,
                [service_tool] if service_tool.services else [],
                float(self.options.get(CONF_TOOL_TIMEOUT, DEFAULT_TOOL_TIMEOUT)),
            )
        system = log.content[0]
        return dataclasses.replace(
            self.base_config,
            instructions=system.content if isinstance(system, conversation.SystemContent) else "",
            tools=tool_specs(log.llm_api),
            language=llm_context.language,
        )

    def start_turn(
        self, conversation_id: str, turn: VoiceTurn, device_id: str | None = None
    ) -> None:
        """Make `turn` the conversation's (and the satellite's) current turn."""
        if (previous := self._turns.get(conversation_id)) is not None and previous is not turn:
            previous.close()
        self._turns[conversation_id] = turn
        if device_id is not None:
            self._device_turns[device_id] = turn

    def turn(self, conversation_id: str | None) -> VoiceTurn | None:
        """The conversation's current turn."""
        return self._turns.get(conversation_id) if conversation_id else None

    def end_turn(self, conversation_id: str, turn: VoiceTurn) -> None:
        if self._turns.get(conversation_id) is turn:
            del self._turns[conversation_id]
        turn.close()

    def playing_turn(self, device_id: str | None) -> VoiceTurn | None:
        """The satellite's turn whose reply is still playing, if any."""
        turn = self._device_turns.get(device_id) if device_id else None
        return turn if turn is not None and turn.still_playing() else None

    async def async_close(self) -> None:
        for turn in self._turns.values():
            turn.close()
        self._turns.clear()
        self._device_turns.clear()
        await self.pool.close_all()
