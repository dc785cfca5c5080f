"""The do-nothing floor: speech-to-text, agent and text-to-speech that do no work of their own.

The floor phase (`python -m bench --phases floor`) runs the same satellites
through a pipeline of these entities and through ours, so what Home
Assistant's pipeline costs by itself (websocket, microVAD, pipeline events,
chat log, TTS stream and HTTP) is measured apart from what we add. They keep
the shape of a realtime turn, with no per-frame work beyond counting bytes:

- `FloorSpeechToText` takes the audio frame by frame with our entity's audio
  processing (so Home Assistant treats the frames the same way) and returns a
  fixed text once it has read as much audio as the fake provider's voice
  detection needs to hear the end of speech (`FloorScript.end_after_bytes`);
- `FloorAgent` streams a fixed reply into the chat log, as ours streams the
  model's words;
- `FloorTextToSpeech` streams a fixed 24 kHz WAV (the model's own format) of
  the turn's reply length, paced by the fake's own `ModelPacing`.

They live in the benchmark's Home Assistant process (bench/ha_process.py);
the driver sets the script before each floor run (`floor` command).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
import io
from typing import Any, Literal
import wave

from homeassistant.components import assist_pipeline, conversation, stt, tts
from homeassistant.components.stt.models import SpeechAudioProcessing
from homeassistant.components.tts.entity import TTSAudioRequest
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.util import ulid

from bench.satellite import PROVIDER_RATE as REPLY_RATE, REPLY_TEXT
from custom_components.realtime_assist.stt import SatelliteAudioInput
from tests.fakes.audio_samples import speech_like
from tests.fakes.loopback import ModelPacing
from tests.satellites import _add_entities

NAME = "Bench floor"
PLATFORM = "bench_floor"
TRANSCRIPT = "Turn on the kitchen light."
# A per-run option, as our TTS sets one: Home Assistant caches TTS by message and
# options, and a fixed reply would otherwise come from the cache after the first turn.
OPTION_RUN = "bench_floor_run"


@dataclass
class FloorScript:
    """What one floor run does: when speech-to-text returns, how the reply streams."""

    end_after_bytes: int = 0
    chunk_ms: int = 40
    pacing: ModelPacing = field(default_factory=ModelPacing)
    wav: bytes = b""

    @classmethod
    def make(
        cls,
        *,
        end_after_bytes: int,
        reply_s: float,
        chunk_ms: int,
        first_audio_ms: float,
        speed: float,
    ) -> FloorScript:
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(REPLY_RATE)
            wav.writeframes(speech_like(reply_s, REPLY_RATE, seed=7))
        return cls(
            end_after_bytes,
            chunk_ms,
            ModelPacing(first_audio_ms / 1000, speed or None),
            buffer.getvalue(),
        )


@dataclass
class Floor:
    """The floor's pipeline and the script its entities follow (set by the driver per run)."""

    pipeline_id: str
    script: FloorScript


class FloorSpeechToText(SatelliteAudioInput, stt.SpeechToTextEntity):
    """Reads the stream frame by frame; a fixed text where the provider would hear the end."""

    _attr_name = NAME

    def __init__(self, floor: Floor) -> None:
        self.floor = floor

    @property
    def supported_languages(self) -> list[str]:
        return ["en"]

    @property
    def audio_processing(self) -> SpeechAudioProcessing:
        """Ours with the provider's turn detection: Home Assistant does the same per frame."""
        return SpeechAudioProcessing(
            requires_external_vad=False,
            prefers_auto_gain_enabled=True,
            prefers_noise_reduction_enabled=True,
        )

    async def async_process_audio_stream(
        self, metadata: stt.SpeechMetadata, stream: AsyncIterable[bytes]
    ) -> stt.SpeechResult:
        received = 0
        async for chunk in stream:
            received += len(chunk)
            if received >= self.floor.script.end_after_bytes:
                break
        return stt.SpeechResult(TRANSCRIPT, stt.SpeechResultState.SUCCESS)


class FloorAgent(conversation.ConversationEntity):
    """Streams a fixed reply into the chat log."""

    _attr_name = NAME
    _attr_supports_streaming = True

    @property
    def supported_languages(self) -> Literal["*"]:
        return "*"

    async def _async_handle_message(
        self, user_input: conversation.ConversationInput, chat_log: conversation.ChatLog
    ) -> conversation.ConversationResult:
        async for _ in chat_log.async_add_delta_content_stream(self.entity_id, _reply()):
            pass
        return conversation.async_get_result_from_chat_log(user_input, chat_log)


async def _reply() -> AsyncGenerator[conversation.AssistantContentDeltaDict]:
    yield {"role": "assistant"}
    yield {"content": REPLY_TEXT}


class FloorTextToSpeech(tts.TextToSpeechEntity):
    """Streams a fixed WAV of the turn's reply length, paced like the fake model."""

    _attr_name = NAME
    _attr_supported_languages = ["en"]  # noqa: RUF012 - Home Assistant's attribute
    _attr_default_language = "en"
    # As ours: the WAV it makes is what the satellite gets (else Home Assistant converts
    # it to its default MP3 with ffmpeg).
    _attr_supported_options = [tts.ATTR_PREFERRED_FORMAT]  # noqa: RUF012 - Home Assistant's

    def __init__(self, floor: Floor) -> None:
        self.floor = floor

    @property
    def default_options(self) -> dict[str, Any]:
        return {tts.ATTR_PREFERRED_FORMAT: "wav", OPTION_RUN: ulid.ulid_now()}

    async def async_stream_tts_audio(self, request: TTSAudioRequest) -> tts.TTSAudioResponse:
        self.hass.async_create_background_task(_drain(request.message_gen), "bench_floor_text")
        return tts.TTSAudioResponse("wav", _paced(self.floor.script))


async def _drain(message: AsyncIterator[str]) -> None:
    async for _ in message:
        pass


async def _paced(script: FloorScript) -> AsyncGenerator[bytes]:
    """The header at once, then the audio in the fake's chunks at the fake's pace."""
    header, pcm = script.wav[:44], script.wav[44:]
    yield header
    chunk_bytes = script.chunk_ms * REPLY_RATE // 1000 * 2
    never = asyncio.Event()
    await script.pacing.before_first_chunk(never)
    for number, start in enumerate(range(0, len(pcm), chunk_bytes), 1):
        chunk = pcm[start : start + chunk_bytes]
        yield chunk
        await script.pacing.after_chunk(number, len(chunk) / 2 / REPLY_RATE * 1000, 0.0, never)


async def async_add_floor(hass: HomeAssistant, entry: ConfigEntry) -> Floor:
    """The floor's three entities and a pipeline of them."""
    floor = Floor("", FloorScript())
    speech_to_text, agent, text_to_speech = (
        FloorSpeechToText(floor),
        FloorAgent(),
        FloorTextToSpeech(floor),
    )
    for domain, entity in (
        ("stt", speech_to_text),
        ("conversation", agent),
        ("tts", text_to_speech),
    ):
        await _add_entities(hass, entry, domain, PLATFORM, entity)
    pipeline = await assist_pipeline.async_create_default_pipeline(
        hass,
        stt_engine_id=speech_to_text.entity_id,
        tts_engine_id=text_to_speech.entity_id,
        pipeline_name=NAME,
    )
    assert pipeline is not None, "Home Assistant made no pipeline of the floor's entities"
    await assist_pipeline.async_update_pipeline(hass, pipeline, conversation_engine=agent.entity_id)
    floor.pipeline_id = pipeline.id
    return floor
