"""Where the audio of a streamed WAV starts (for the satellites and the probes in HA)."""

from __future__ import annotations


class WavStreamParser:
    """Feed a WAV stream chunk by chunk; `feed` returns the audio bytes each chunk carries.

    Streaming WAVs (ours, ffmpeg's) have unknown sizes, so only the header is
    parsed; everything after the `data` chunk header is audio.
    """

    def __init__(self) -> None:
        self._header = bytearray()
        self.in_audio = False
        self.sample_rate: int | None = None

    def feed(self, chunk: bytes) -> bytes:
        if self.in_audio:
            return chunk
        self._header += chunk
        header = self._header
        if len(header) < 12:
            return b""
        if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            raise ValueError(f"not a WAV stream: {bytes(header[:12])!r}")
        position = 12
        while position + 8 <= len(header):
            chunk_id = bytes(header[position : position + 4])
            size = int.from_bytes(header[position + 4 : position + 8], "little")
            body = position + 8
            if chunk_id == b"fmt " and body + 8 <= len(header):
                self.sample_rate = int.from_bytes(header[body + 4 : body + 8], "little")
            if chunk_id == b"data":
                self.in_audio = True
                audio = bytes(header[body:])
                self._header = bytearray()
                return audio
            position = body + size + (size & 1)
        return b""
