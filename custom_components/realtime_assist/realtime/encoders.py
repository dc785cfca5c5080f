"""Audio in the format a listener asks for, encoded in-process as it streams.

(Placeholder: WAV only; the streaming FLAC encoder lands separately.)
"""

from __future__ import annotations

import struct
from typing import Protocol

import numpy as np


class StreamEncoder(Protocol):
    """Encodes PCM16 mono at `sample_rate` as it streams."""

    extension: str
    content_type: str
    sample_rate: int
    channels: int

    def header(self) -> bytes: ...
    def encode(self, pcm: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


# A streaming WAV header: sizes unknown (Home Assistant's TTS manager reads this).
_STREAMING_SIZE = 0xFFFFFFFF


class WavEncoder:
    """PCM16 as a streaming WAV of unknown length, so playback starts at once."""

    extension = "wav"
    content_type = "audio/wav"

    def __init__(self, sample_rate: int, channels: int = 1) -> None:
        self.sample_rate = sample_rate
        self.channels = channels

    def header(self) -> bytes:
        block = 2 * self.channels
        return struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            b"RIFF",
            _STREAMING_SIZE,
            b"WAVE",
            b"fmt ",
            16,
            1,  # PCM
            self.channels,
            self.sample_rate,
            self.sample_rate * block,
            block,
            16,
            b"data",
            _STREAMING_SIZE,
        )

    def encode(self, pcm: bytes) -> bytes:
        if self.channels == 1:
            return pcm
        return bytes(np.repeat(np.frombuffer(pcm, "<i2"), self.channels).tobytes())

    def flush(self) -> bytes:
        return b""


def encoder_for(
    extension: str, sample_rate: int, channels: int = 1, sample_bytes: int = 2
) -> StreamEncoder | None:
    if extension != "wav" or sample_bytes != 2 or channels not in (1, 2):
        return None
    return WavEncoder(sample_rate, channels)
