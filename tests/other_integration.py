"""Another integration's speech-to-text and text-to-speech, for tests that mix engines.

A test integration (config entry and platforms) whose entities record what they
were asked. Tests that set it up need the `other_flow` fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterator
import io
from typing import Any
import wave

from homeassistant.components import stt, tts
from homeassistant.components.stt.models import SpeechAudioProcessing
from homeassistant.config_entries import ConfigEntry, ConfigFlow
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockModule,
    MockPlatform,
    mock_config_flow,
    mock_integration,
    mock_platform,
)

from custom_components.realtime_assist.stt import SatelliteAudioInput
from tests.fakes.audio_samples import tone

TEST_DOMAIN = "mixed_pipeline_test"
OTHER_STT = "stt.other_speech_to_text"
OTHER_TTS = "tts.other_voice"
OTHER_TTS_RATE = 22050


def _other_voice_wav() -> bytes:
    """What the other voice always says: a short WAV, recognisably not the model's."""
    with io.BytesIO() as buffer:
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(OTHER_TTS_RATE)
            wav.writeframes(tone(0.1, OTHER_TTS_RATE, freq=660.0))
        return buffer.getvalue()


OTHER_TTS_AUDIO = _other_voice_wav()


class OtherSpeechToText(SatelliteAudioInput, stt.SpeechToTextEntity):
    """Another integration's speech-to-text: it hears `text` in whatever it is sent."""

    _attr_name = "Other speech to text"

    def __init__(self, text: str) -> None:
        self.text = text
        self.audio_bytes = 0

    @property
    def supported_languages(self) -> list[str]:
        return ["en"]

    @property
    def audio_processing(self) -> SpeechAudioProcessing:
        # The satellite's end of audio ends the turn: no VAD to fool with test audio.
        return SpeechAudioProcessing(
            requires_external_vad=False,
            prefers_auto_gain_enabled=False,
            prefers_noise_reduction_enabled=False,
        )

    async def async_process_audio_stream(
        self, metadata: stt.SpeechMetadata, stream: AsyncIterable[bytes]
    ) -> stt.SpeechResult:
        async for chunk in stream:
            self.audio_bytes += len(chunk)
        return stt.SpeechResult(self.text, stt.SpeechResultState.SUCCESS)


class OtherTextToSpeech(tts.TextToSpeechEntity):
    """Another integration's voice: a fixed clip, and a record of what it was asked to say."""

    _attr_name = "Other voice"
    _attr_default_language = "en"
    _attr_supported_languages = ["en"]  # noqa: RUF012 - Home Assistant's attribute
    # Its own format, so the TTS manager hands its audio over as is (no ffmpeg).
    _attr_default_options = {tts.ATTR_PREFERRED_FORMAT: "wav"}  # noqa: RUF012

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def async_get_tts_audio(
        self, message: str, language: str, options: dict[str, Any]
    ) -> tts.TtsAudioType:
        self.messages.append(message)
        return "wav", OTHER_TTS_AUDIO


class _OtherConfigFlow(ConfigFlow):
    """The test integration's (empty) config flow: config entries need a handler."""


@pytest.fixture
def other_flow(hass: HomeAssistant) -> Iterator[None]:
    """Let the test integration's config entries load."""
    mock_platform(hass, f"{TEST_DOMAIN}.config_flow")
    with mock_config_flow(TEST_DOMAIN, _OtherConfigFlow):
        yield


async def set_up_other_integration(hass: HomeAssistant, entities: dict[Platform, Entity]) -> None:
    """A config entry of a test integration that provides `entities`, one per platform.

    Needs the `other_flow` fixture.
    """

    async def setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
        await hass.config_entries.async_forward_entry_setups(entry, list(entities))
        return True

    async def unload_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
        return await hass.config_entries.async_unload_platforms(entry, list(entities))

    mock_integration(
        hass,
        MockModule(TEST_DOMAIN, async_setup_entry=setup_entry, async_unload_entry=unload_entry),
    )
    for platform, entity in entities.items():

        async def setup_platform(
            hass: HomeAssistant,
            entry: ConfigEntry,
            async_add_entities: AddConfigEntryEntitiesCallback,
            entity: Entity = entity,
        ) -> None:
            async_add_entities([entity])

        mock_platform(
            hass, f"{TEST_DOMAIN}.{platform}", MockPlatform(async_setup_entry=setup_platform)
        )
    entry = MockConfigEntry(domain=TEST_DOMAIN)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
