"""Text-to-speech that plays the model's own voice.

For a realtime turn, the audio is what the model said, streamed as it
arrives (not a synthesis of its text), resampled and encoded in-process to
exactly the format the satellite asks for, so Home Assistant passes it through
without an ffmpeg process in the way. If the turn fails, the satellite then
says why (notices.py). Asked to speak text that is not a realtime turn (an
announcement, another agent's answer), the agent's voice reads it verbatim.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
import dataclasses
from typing import Any

from homeassistant.components import tts
from homeassistant.components.tts.entity import TTSAudioRequest
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import ulid

from . import RealtimeAssistConfigEntry
from .assist_bridge import current_conversation_id
from .const import CONF_FALLBACK_TTS, CONF_PROVIDER, DOMAIN, PROVIDER_PROFILES
from .entity import RealtimeSpeechEntity, async_add_agent_entities
from .languages import SUPPORTED_LANGUAGES
from .notices import async_failure_audio, async_failure_message
from .realtime.config import OutputModality, TurnDetection, TurnDetectionMode
from .realtime.encoders import StreamEncoder, WavEncoder, encoder_for
from .realtime.errors import RealtimeError
from .realtime.turn import Turn, TurnError

PARALLEL_UPDATES = 0
# The model's own rate; what we produce when nobody asks for another.
DEFAULT_SAMPLE_RATE = 24000
READER_INSTRUCTIONS = (
    "You are a text-to-speech voice. Read each message you receive aloud, word for word, "
    "in its own language. Do not answer it, comment on it, or add anything."
)
# Marks a pipeline run's stream as one realtime turn (see `default_options`).
OPTION_REALTIME_TURN = "realtime_turn"


async def async_setup_entry(
    hass: HomeAssistant,
    entry: RealtimeAssistConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One text-to-speech entity per realtime agent."""
    async_add_agent_entities(entry, async_add_entities, RealtimeTextToSpeechEntity)


class RealtimeTextToSpeechEntity(RealtimeSpeechEntity, tts.TextToSpeechEntity):
    """Plays the realtime model's voice."""

    _agent_platform = Platform.TTS

    _attr_supported_languages = SUPPORTED_LANGUAGES
    # Declared so the TTS manager hands them to us: we produce the satellite's
    # exact WAV format ourselves instead of an ffmpeg process converting it.
    _attr_supported_options: list[str] | None = [  # noqa: RUF012 - Home Assistant's attribute
        tts.ATTR_VOICE,
        tts.ATTR_PREFERRED_FORMAT,
        tts.ATTR_PREFERRED_SAMPLE_RATE,
        tts.ATTR_PREFERRED_SAMPLE_CHANNELS,
        tts.ATTR_PREFERRED_SAMPLE_BYTES,
    ]

    @property
    def default_options(self) -> dict[str, Any]:
        """Without a satellite's wish: the model's own WAV, nothing to encode or convert.

        Only the format is named: Home Assistant 2026.10 runs ffmpeg whenever a
        sample rate is given, even one the engine produces itself.
        """
        options: dict[str, Any] = {tts.ATTR_PREFERRED_FORMAT: "wav"}
        if current_conversation_id() is not None:
            # A realtime reply is this turn's recording, not a function of its text:
            # a key of its own keeps Home Assistant's TTS cache from replaying an
            # earlier turn that said the same words.
            options[OPTION_REALTIME_TURN] = ulid.ulid_now()
        return options

    @property
    def default_language(self) -> str:
        return self.hass.config.language

    def async_get_supported_voices(self, language: str) -> list[tts.Voice]:
        profile = PROVIDER_PROFILES[self.entry.data[CONF_PROVIDER]]
        return [tts.Voice(voice.voice_id, voice.label) for voice in profile.voices]

    async def async_stream_tts_audio(self, request: TTSAudioRequest) -> tts.TTSAudioResponse:
        encoder = _encoder_for(request.options)
        agent = self.agent
        conversation_id = current_conversation_id()
        turn = agent.turn(conversation_id)
        failure = agent.failure(conversation_id)
        if turn is not None and not turn.answered:
            # Home Assistant answered the run itself (a sentence trigger, a local
            # intent): its words are read, and the model's reply to the same audio,
            # cut off, keeps nothing the user did not hear.
            await turn.cancel("Home Assistant answered the run itself")
        if turn is not None and turn.answered and turn.plays_audio:
            # The pipeline streams the agent's text to us too; the voice already has it.
            self.hass.async_create_background_task(
                _drain(request.message_gen), "realtime_assist_tts_text"
            )
            audio = self._turn_audio(turn, request.language, encoder.sample_rate)
        elif failure is not None:
            # The turn failed before the model said anything: say why.
            self.hass.async_create_background_task(
                _drain(request.message_gen), "realtime_assist_tts_text"
            )
            audio = self._failure_audio(failure, request.language, encoder.sample_rate)
        else:
            # Not a realtime turn, or one the model answered in text (the run's
            # engines could not be read): the agent's voice reads the text.
            message = "".join([chunk async for chunk in request.message_gen])
            voice = request.options.get(tts.ATTR_VOICE)
            audio = self._read_aloud(message, voice, encoder.sample_rate)
        return tts.TTSAudioResponse(encoder.extension, _encoded(encoder, audio))

    async def _turn_audio(
        self, turn: Turn, language: str, sample_rate: int
    ) -> AsyncIterator[bytes]:
        """The model's voice of the turn; if the turn fails, then why."""
        async for pcm in turn.reply_audio(sample_rate):
            yield pcm
        if turn.failure is not None:
            async for pcm in self._failure_audio(turn.failure, language, sample_rate):
                yield pcm

    async def _failure_audio(
        self, failure: TurnError, language: str, sample_rate: int
    ) -> AsyncIterator[bytes]:
        message = await async_failure_message(self.hass, language, failure)
        async for pcm in async_failure_audio(
            self.hass, self.agent.options.get(CONF_FALLBACK_TTS), language, message, sample_rate
        ):
            yield pcm

    async def _read_aloud(
        self, message: str, voice: str | None, sample_rate: int
    ) -> AsyncIterator[bytes]:
        """The agent's voice reads `message` verbatim (announcements, other agents' answers)."""
        agent = self.agent
        if (refused := agent.usage.refusal()) is not None:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key=f"turn_failed_{refused.reason}",
                translation_placeholders=refused.placeholders,
            )
        config = dataclasses.replace(
            agent.base_config,
            instructions=READER_INSTRUCTIONS,
            voice=voice or agent.base_config.voice,
            turn_detection=TurnDetection(mode=TurnDetectionMode.OFF),
            output_modality=OutputModality.AUDIO,
            input_transcription_model=None,
        )
        read = False
        try:
            async with agent.pool.one_off(config) as session:
                turn = Turn(session, deadlines=agent.deadlines, typed=True)
                try:
                    await turn.send_text(message)
                    async for pcm in turn.reply_audio(sample_rate):
                        read = True
                        yield pcm
                finally:
                    await turn.cancel()
        except RealtimeError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="read_aloud_failed",
                translation_placeholders={"error": str(err)},
            ) from err
        if not read or turn.failure is not None:
            # Fail rather than end quietly: Home Assistant caches a TTS engine's audio
            # by its text, and would play this silence for the same message from now on.
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="read_aloud_empty")


def _encoder_for(options: Mapping[str, Any]) -> StreamEncoder:
    """What the listener asked for, if we can make it; else our WAV (Home Assistant converts)."""
    rate = int(options.get(tts.ATTR_PREFERRED_SAMPLE_RATE) or DEFAULT_SAMPLE_RATE)
    channels = int(options.get(tts.ATTR_PREFERRED_SAMPLE_CHANNELS) or 1)
    sample_bytes = int(options.get(tts.ATTR_PREFERRED_SAMPLE_BYTES) or 2)
    extension = str(options.get(tts.ATTR_PREFERRED_FORMAT) or "wav")
    return encoder_for(extension, rate, channels, sample_bytes) or WavEncoder(rate)


async def _encoded(encoder: StreamEncoder, audio: AsyncIterator[bytes]) -> AsyncGenerator[bytes]:
    yield encoder.header()
    async for pcm in audio:
        if data := encoder.encode(pcm):
            yield data
    if tail := encoder.flush():
        yield tail


async def _drain(message_gen: AsyncGenerator[str]) -> None:
    async for _chunk in message_gen:
        pass
