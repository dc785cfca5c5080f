"""Where the audio of a streamed file starts (for the satellites and the probes in HA).

Timing "the first reply byte" means the first byte of audio, not of the file's
header: ours goes out before the model has said anything.
"""

from __future__ import annotations


class AudioStreamParser:
    """Feed a WAV or FLAC stream chunk by chunk; `feed` returns the audio bytes each carries.

    Streaming files (ours, ffmpeg's) have unknown sizes, so only the header is
    parsed: everything after WAV's `data` chunk header, or after FLAC's last
    metadata block, is audio (FLAC frames are not decoded).
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
        if header[:4] == b"fLaC":
            start = self._flac_audio_start(header)
        elif header[:4] == b"RIFF" and header[8:12] == b"WAVE":
            start = self._wav_audio_start(header)
        else:
            raise ValueError(f"neither WAV nor FLAC: {bytes(header[:12])!r}")
        if start is None:
            return b""
        self.in_audio = True
        audio = bytes(header[start:])
        self._header = bytearray()
        return audio

    def _wav_audio_start(self, header: bytearray) -> int | None:
        position = 12
        while position + 8 <= len(header):
            chunk_id = bytes(header[position : position + 4])
            size = int.from_bytes(header[position + 4 : position + 8], "little")
            body = position + 8
            if chunk_id == b"fmt " and body + 8 <= len(header):
                self.sample_rate = int.from_bytes(header[body + 4 : body + 8], "little")
            if chunk_id == b"data":
                return body
            position = body + size + (size & 1)
        return None

    def _flac_audio_start(self, header: bytearray) -> int | None:
        position = 4
        while position + 4 <= len(header):
            last = header[position] & 0x80
            kind = header[position] & 0x7F
            size = int.from_bytes(header[position + 1 : position + 4], "big")
            body = position + 4
            if kind == 0 and body + 13 <= len(header):  # STREAMINFO: 20-bit rate at byte 10
                self.sample_rate = int.from_bytes(header[body + 10 : body + 13], "big") >> 4
            if body + size > len(header):
                return None
            position = body + size
            if last:
                return position
        return None
