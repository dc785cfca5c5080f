"""Text-to-speech that plays the model's own voice.

For a realtime turn, the audio is what the model said, streamed as it
arrives (not a synthesis of its text), resampled in-process to the rate the
satellite asks for. Asked to speak text that is not a realtime turn (an
announcement, another agent's answer), the agent's voice reads it verbatim.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
import dataclasses
import struct
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
from .const import CONF_PROVIDER, PROVIDER_PROFILES
from .entity import RealtimeSpeechEntity, async_add_agent_entities
from .languages import SUPPORTED_LANGUAGES
from .realtime.config import OutputModality, TurnDetection, TurnDetectionMode
from .realtime.errors import RealtimeError
from .realtime.turn import VoiceTurn

PARALLEL_UPDATES = 0
# The model's own rate; what we produce when nobody asks for another.
DEFAULT_SAMPLE_RATE = 24000
# The pool key of the session that reads texts aloud.
READER_SESSION = "text_to_speech"
READER_INSTRUCTIONS = (
    "You are a text-to-speech voice. Read each message you receive aloud, word for word, "
    "in its own language. Do not answer it, comment on it, or add anything."
)
# Marks a pipeline run's stream as one realtime turn (see `default_options`).
OPTION_REALTIME_TURN = "realtime_turn"
# A streaming WAV header: sizes unknown (Home Assistant's TTS manager reads this).
_STREAMING_SIZE = 0xFFFFFFFF


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
        sample_rate = int(
            request.options.get(tts.ATTR_PREFERRED_SAMPLE_RATE) or DEFAULT_SAMPLE_RATE
        )
        turn = self.agent.turn(current_conversation_id())
        if turn is not None and turn.session.config.output_modality is OutputModality.AUDIO:
            # The pipeline streams the agent's text to us too; the voice already has it.
            self.hass.async_create_background_task(
                _drain(request.message_gen), "realtime_assist_tts_text"
            )
            audio = turn.reply_audio(sample_rate)
        else:
            # Not a realtime turn, or one the model answered in text (the run's
            # engines could not be read): the agent's voice reads the text.
            message = "".join([chunk async for chunk in request.message_gen])
            audio = self._read_aloud(message, request.options.get(tts.ATTR_VOICE), sample_rate)
        return tts.TTSAudioResponse("wav", _wav_stream(audio, sample_rate))

    async def _read_aloud(
        self, message: str, voice: str | None, sample_rate: int
    ) -> AsyncIterator[bytes]:
        """The agent's voice reads `message` verbatim (announcements, other agents' answers)."""
        agent = self.agent
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
            async with agent.pool.lease(READER_SESSION, config) as session:
                turn = VoiceTurn(session)
                try:
                    await session.send_text(message)
                    async for pcm in turn.reply_audio(sample_rate):
                        read = True
                        yield pcm
                finally:
                    turn.close()
        except RealtimeError as err:
            raise HomeAssistantError(f"Could not read the message aloud: {err}") from err
        if not read:
            # Fail rather than end quietly: Home Assistant caches a TTS engine's audio
            # by its text, and would play this silence for the same message from now on.
            raise HomeAssistantError("The realtime model read nothing aloud")


async def _wav_stream(audio: AsyncIterator[bytes], sample_rate: int) -> AsyncGenerator[bytes]:
    """PCM16 mono as a streaming WAV (unknown length, so playback starts at once)."""
    yield struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        _STREAMING_SIZE,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        1,  # mono
        sample_rate,
        sample_rate * 2,
        2,
        16,
        b"data",
        _STREAMING_SIZE,
    )
    async for pcm in audio:
        yield pcm


async def _drain(message_gen: AsyncGenerator[str]) -> None:
    async for _chunk in message_gen:
        pass
