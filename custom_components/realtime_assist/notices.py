"""What a voice user hears when a turn fails, instead of silence.

The realtime model's own voice cannot say that the realtime model is
unreachable. The sentence (translated, short, without the provider's details)
is read by a fallback voice the owner picks in the agent's options (any Home
Assistant text-to-speech engine: Piper, Home Assistant Cloud); without one, a
short two-tone sound made here plays instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
import math

from homeassistant.components import tts
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import translation
import numpy as np

from .const import DOMAIN, LOGGER
from .realtime.turn import TurnError

# The failure sound: two falling tones (Hz, seconds), quiet enough not to startle.
FAILURE_TONES = ((660.0, 0.15), (440.0, 0.3))
FAILURE_TONE_LEVEL = 0.25
FADE_S = 0.01
_PCM_FORMAT = {
    tts.ATTR_PREFERRED_FORMAT: "wav",
    tts.ATTR_PREFERRED_SAMPLE_CHANNELS: 1,
    tts.ATTR_PREFERRED_SAMPLE_BYTES: 2,
}


async def async_failure_message(hass: HomeAssistant, language: str, failure: TurnError) -> str:
    """The sentence that tells the user why their turn failed, in their language."""
    strings = await translation.async_get_translations(hass, language, "exceptions", {DOMAIN})
    prefix = f"component.{DOMAIN}.exceptions"
    message = (
        strings.get(f"{prefix}.turn_failed_{failure.reason}.message")
        or strings.get(f"{prefix}.turn_failed.message")
        or "The assistant could not answer."
    )
    return message.format_map(failure.placeholders) if failure.placeholders else message


async def async_failure_audio(
    hass: HomeAssistant, fallback_engine: str | None, language: str, message: str, sample_rate: int
) -> AsyncIterator[bytes]:
    """`message` read by the fallback voice (PCM16 mono at `sample_rate`), else the sound."""
    if fallback_engine:
        try:
            async for pcm in _read_by(hass, fallback_engine, language, message, sample_rate):
                yield pcm
        except HomeAssistantError as err:
            LOGGER.warning("The fallback voice %s could not read: %s", fallback_engine, err)
        else:
            return
    yield failure_tone(sample_rate)


async def _read_by(
    hass: HomeAssistant, engine: str, language: str, message: str, sample_rate: int
) -> AsyncIterator[bytes]:
    stream = tts.async_create_stream(
        hass,
        engine,
        language=language,
        options={**_PCM_FORMAT, tts.ATTR_PREFERRED_SAMPLE_RATE: sample_rate},
    )
    stream.async_set_message(message)
    wav = b"".join([chunk async for chunk in stream.async_stream_result()])
    yield _wav_data(wav)


def _wav_data(wav: bytes) -> bytes:
    """The samples of a PCM WAV file, whatever chunks precede them."""
    position = 12
    while position + 8 <= len(wav):
        size = int.from_bytes(wav[position + 4 : position + 8], "little")
        if wav[position : position + 4] == b"data":
            data = wav[position + 8 :]
            return data[: len(data) & ~1]
        position += 8 + size + (size & 1)
    raise HomeAssistantError("the fallback voice returned no WAV audio")


def failure_tone(sample_rate: int) -> bytes:
    """The failure sound as PCM16 mono at `sample_rate`."""
    parts = []
    for frequency, seconds in FAILURE_TONES:
        t = np.arange(int(sample_rate * seconds)) / sample_rate
        tone = np.sin(2 * math.pi * frequency * t)
        fade = np.minimum(1.0, np.minimum(t, seconds - t) / FADE_S)
        parts.append(tone * fade * FAILURE_TONE_LEVEL)
    samples = np.concatenate(parts) * 32767
    return bytes(np.rint(samples).astype("<i2").tobytes())
