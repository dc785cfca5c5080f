"""Streaming encoders: the model's PCM16 mono in, the format a satellite asks for out.

Home Assistant's TTS manager pipes any format the engine does not produce itself
through ffmpeg, which holds its output until a buffer fills (MP3 and FLAC start
about a second late). These encoders run in-process and hand out each piece the
moment its audio is there: WAV with unknown sizes, FLAC in 20 ms frames.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import functools
import struct
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from .audio import SAMPLE_WIDTH, whole_samples

# Sizes of a WAV whose length is unknown (Home Assistant, Wyoming and ESPHome read it so).
_WAV_UNKNOWN_SIZE = 0xFFFFFFFF


class StreamEncoder(ABC):
    """Encodes PCM16 little-endian mono at `sample_rate`, chunk by chunk.

    `header()` first, then `encode()` per chunk (each returns the output that is
    complete, possibly b""), then `flush()` at the end of the stream. Mono input is
    written to every one of `channels` (1 or 2).
    """

    extension: ClassVar[str]
    content_type: ClassVar[str]
    max_sample_rate: ClassVar[int]

    def __init__(self, sample_rate: int, channels: int = 1) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self._odd_byte = b""

    @abstractmethod
    def header(self) -> bytes:
        """What goes before the first encoded audio."""

    def encode(self, pcm: bytes) -> bytes:
        """Encode a chunk; an odd trailing byte waits for the next one."""
        pcm, self._odd_byte = whole_samples(self._odd_byte, pcm)
        return self._encode(pcm) if pcm else b""

    def flush(self) -> bytes:
        """The end of the stream: what is still held (a half sample is dropped)."""
        self._odd_byte = b""
        return b""

    @abstractmethod
    def _encode(self, pcm: bytes) -> bytes:
        """Encode whole samples."""


class WavEncoder(StreamEncoder):
    """WAV with unknown sizes: readers play the data chunk until the stream ends."""

    extension = "wav"
    content_type = "audio/x-wav"  # what Home Assistant serves for .wav (mimetypes)
    max_sample_rate = _WAV_UNKNOWN_SIZE // (2 * SAMPLE_WIDTH)  # the byte rate must fit

    def header(self) -> bytes:
        frame_bytes = SAMPLE_WIDTH * self.channels
        return struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            b"RIFF",
            _WAV_UNKNOWN_SIZE,
            b"WAVE",
            b"fmt ",
            16,
            1,  # PCM
            self.channels,
            self.sample_rate,
            self.sample_rate * frame_bytes,
            frame_bytes,
            8 * SAMPLE_WIDTH,
            b"data",
            _WAV_UNKNOWN_SIZE,
        )

    def _encode(self, pcm: bytes) -> bytes:
        if self.channels == 1:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        return np.repeat(samples, self.channels).tobytes()


# FLAC (RFC 9639). Frames of 20 ms: the first one is out 20 ms into the audio.
_FLAC_FRAMES_PER_SECOND = 50
_FLAC_MIN_BLOCK = 16  # STREAMINFO's smallest allowed block size
# Frame header fields that do not change within a stream.
_FLAC_SYNC = b"\xff\xf8"  # sync code, fixed block size
_FLAC_SAMPLE_SIZE_16 = 0b100 << 1
_FLAC_MONO = 0b0000 << 4
_FLAC_LEFT_SIDE = 0b1000 << 4
# Subframe headers (zero bit, 6 type bits, no wasted bits).
_FLAC_CONSTANT = b"\x00"
_FLAC_VERBATIM = b"\x02"
# Both channels carry the same samples, so a stereo frame is left/side with the side
# (left - right) a CONSTANT subframe of 17-bit zero: 8 + 17 bits, then 7 bits of
# padding to the byte. Mono frames end on a byte already.
_FLAC_ZERO_SIDE = bytes(4)
_FLAC_SAMPLE_RATE_CODES = {
    88200: 0b0001,
    176400: 0b0010,
    192000: 0b0011,
    8000: 0b0100,
    16000: 0b0101,
    22050: 0b0110,
    24000: 0b0111,
    32000: 0b1000,
    44100: 0b1001,
    48000: 0b1010,
    96000: 0b1011,
}


class FlacEncoder(StreamEncoder):
    """Streaming FLAC: blocks of 20 ms, each written as a frame as soon as it is full.

    Subframes are VERBATIM, or CONSTANT for silence: every field then falls on a
    byte, so frames are assembled from bytes (predictors with Rice codes need
    per-bit packing, which measured several times the CPU in numpy). STREAMINFO
    leaves the length, the MD5 and the frame sizes unknown.
    """

    extension = "flac"
    content_type = "audio/flac"
    max_sample_rate = (1 << 20) - 1  # STREAMINFO's 20 bits

    def __init__(self, sample_rate: int, channels: int = 1) -> None:
        super().__init__(sample_rate, channels)
        self.block_size = max(sample_rate // _FLAC_FRAMES_PER_SECOND, _FLAC_MIN_BLOCK)
        self._pending = b""
        self._frame_number = 0
        rate_code, self._rate_bytes = _flac_sample_rate_code(sample_rate)
        channel_code = _FLAC_MONO if channels == 1 else _FLAC_LEFT_SIDE
        self._codes = (rate_code, channel_code | _FLAC_SAMPLE_SIZE_16)
        self._side = b"" if channels == 1 else _FLAC_ZERO_SIDE

    def header(self) -> bytes:
        fields = (
            self.sample_rate << 44
            | (self.channels - 1) << 41
            | (8 * SAMPLE_WIDTH - 1) << 36  # then total samples (36 bits): 0, unknown
        )
        return (
            b"fLaC"
            + bytes((0x80, 0, 0, 34))  # the last metadata block: STREAMINFO, 34 bytes
            + struct.pack(">HH", self.block_size, self.block_size)
            + bytes(6)  # smallest and largest frame size: unknown
            + fields.to_bytes(8, "big")
            + bytes(16)  # MD5 of the audio: unknown
        )

    def flush(self) -> bytes:
        """The last, shorter block."""
        super().flush()
        pending, self._pending = self._pending, b""
        return self._frames(pending, len(pending) // SAMPLE_WIDTH) if pending else b""

    def _encode(self, pcm: bytes) -> bytes:
        pending = self._pending + pcm
        block_bytes = self.block_size * SAMPLE_WIDTH
        whole = len(pending) - len(pending) % block_bytes
        self._pending = pending[whole:]
        return self._frames(pending[:whole], self.block_size) if whole else b""

    def _frames(self, pcm: bytes, block_size: int) -> bytes:
        """Frames for `pcm`, a whole number of blocks of `block_size` samples."""
        big_endian = np.frombuffer(pcm, dtype="<i2").astype(">i2").tobytes()
        block_bytes = block_size * SAMPLE_WIDTH
        frames = []
        for start in range(0, len(big_endian), block_bytes):
            samples = big_endian[start : start + block_bytes]
            first = samples[:SAMPLE_WIDTH]
            if samples == first * block_size:
                subframe = _FLAC_CONSTANT + first
            else:
                subframe = _FLAC_VERBATIM + samples
            frames.append(self._frame_header(block_size) + subframe + self._side)
        crcs = _crc16_frames(frames)
        return b"".join(
            frame + crc.to_bytes(2, "big") for frame, crc in zip(frames, crcs, strict=True)
        )

    def _frame_header(self, block_size: int) -> bytes:
        size_code, size_bytes = _flac_block_size_code(block_size)
        rate_code, channels_and_size = self._codes
        header = (
            _FLAC_SYNC
            + bytes((size_code << 4 | rate_code, channels_and_size))
            + _flac_utf8(self._frame_number)
            + size_bytes
            + self._rate_bytes
        )
        self._frame_number += 1
        return header + bytes((_crc8(header),))


@functools.cache
def _flac_block_size_code(block_size: int) -> tuple[int, bytes]:
    """The frame header's block size code and the bytes it puts at the end of the header."""
    if block_size == 192:
        return 0b0001, b""
    for code in range(0b0010, 0b0110):
        if block_size == 576 << (code - 0b0010):
            return code, b""
    for code in range(0b1000, 0b10000):
        if block_size == 256 << (code - 0b1000):
            return code, b""
    if block_size <= 256:
        return 0b0110, bytes((block_size - 1,))
    return 0b0111, (block_size - 1).to_bytes(2, "big")


def _flac_sample_rate_code(sample_rate: int) -> tuple[int, bytes]:
    """The frame header's sample rate code and the bytes it puts at the end of the header."""
    if sample_rate in _FLAC_SAMPLE_RATE_CODES:
        return _FLAC_SAMPLE_RATE_CODES[sample_rate], b""
    if sample_rate % 1000 == 0 and sample_rate // 1000 <= 0xFF:
        return 0b1100, bytes((sample_rate // 1000,))
    if sample_rate <= 0xFFFF:
        return 0b1101, sample_rate.to_bytes(2, "big")
    if sample_rate % 10 == 0 and sample_rate // 10 <= 0xFFFF:
        return 0b1110, (sample_rate // 10).to_bytes(2, "big")
    return 0b0000, b""  # only STREAMINFO can say


def _flac_utf8(number: int) -> bytes:
    """A frame number as FLAC codes it: UTF-8's scheme, extended to 31 bits."""
    if number < 0x80:
        return bytes((number,))
    length = 2
    while number >= 1 << (5 * length + 1):
        length += 1
    lead = (0xFF << (8 - length)) & 0xFF | number >> (6 * (length - 1))
    tail = (0x80 | (number >> (6 * shift)) & 0x3F for shift in range(length - 2, -1, -1))
    return bytes((lead, *tail))


def _crc_table(poly: int, width: int) -> list[int]:
    """MSB-first CRC of each single byte (no reflection, initial value 0)."""
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly if crc & top else crc << 1) & mask
        table.append(crc)
    return table


_CRC8_TABLE = _crc_table(0x07, 8)


def _crc8(data: bytes) -> int:
    """FLAC's frame header CRC (x^8 + x^2 + x + 1)."""
    crc = 0
    for byte in data:
        crc = _CRC8_TABLE[crc ^ byte]
    return crc


# CRC-16 (x^16 + x^15 + x^2 + 1) of whole frames, with no Python loop over the bytes.
# A CRC is linear: each byte adds (byte * x^(8 * its distance from the end + 16)) mod
# the polynomial, and zero bytes in front add nothing. So frames are right-aligned in
# rows of segments: a table per position within a segment sums each segment, then a
# table per position of those sums' bytes sums the segments.
_CRC16_SEGMENT = 256


@functools.cache
def _crc16_near() -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.intp]]:
    """What each byte adds at each position of a segment: flat table, offset per position."""
    near = np.empty((_CRC16_SEGMENT, 256), dtype=np.uint16)  # [distance from the end, byte]
    near[0] = _crc_table(0x8005, 16)
    for distance in range(1, _CRC16_SEGMENT):
        previous = near[distance - 1]
        near[distance] = (previous << 8) ^ near[0][previous >> 8]  # times x^8
    offsets = np.arange(_CRC16_SEGMENT, dtype=np.intp) * 256
    return near[::-1].ravel(), offsets


@functools.cache
def _crc16_far(segments: int) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.intp]]:
    """What each byte of each segment's sum adds (big-endian, `segments` in a row)."""
    near = _crc16_near()[0].reshape(_CRC16_SEGMENT, 256)[::-1]
    far = np.empty((segments, 2, 256), dtype=np.uint16)  # [segments after it, hi/lo, byte]
    far[0, 0] = np.arange(256, dtype=np.uint16) << 8
    far[0, 1] = np.arange(256, dtype=np.uint16)
    for distance in range(1, segments):
        # Times x^(8 * _CRC16_SEGMENT): hi * x^(8 * (SEGMENT + 1)) + lo * x^(8 * SEGMENT).
        previous = far[distance - 1]
        far[distance] = near[-1][previous >> 8] ^ near[-2][previous & 0xFF]
    offsets = np.arange(2 * segments, dtype=np.intp) * 256
    return far[::-1].ravel(), offsets


def _crc16_frames(frames: list[bytes]) -> list[int]:
    """FLAC's CRC-16 of each frame."""
    segments = -(-max(map(len, frames)) // _CRC16_SEGMENT)
    width = segments * _CRC16_SEGMENT
    aligned = b"".join(bytes(width - len(frame)) + frame for frame in frames)
    rows = np.frombuffer(aligned, dtype=np.uint8).reshape(len(frames), segments, -1)
    sums = _xor_lookup(*_crc16_near(), rows)
    crcs: list[int] = _xor_lookup(*_crc16_far(segments), sums.astype(">u2").view(np.uint8)).tolist()
    return crcs


def _xor_lookup(
    table: npt.NDArray[np.uint16], offsets: npt.NDArray[np.intp], data: npt.NDArray[np.uint8]
) -> npt.NDArray[np.uint16]:
    """XOR over the last axis of table[offset of the position + byte]."""
    found: npt.NDArray[np.uint16] = np.bitwise_xor.reduce(table.take(data + offsets), axis=-1)
    return found


_ENCODERS: dict[str, type[StreamEncoder]] = {
    encoder.extension: encoder for encoder in (WavEncoder, FlacEncoder)
}


def encoder_for(
    extension: str, sample_rate: int, channels: int = 1, sample_bytes: int = SAMPLE_WIDTH
) -> StreamEncoder | None:
    """An encoder producing exactly this format, or None (the caller falls back)."""
    encoder = _ENCODERS.get(extension)
    if (
        encoder is None
        or channels not in (1, 2)
        or sample_bytes != SAMPLE_WIDTH
        or not 1 <= sample_rate <= encoder.max_sample_rate
    ):
        return None
    return encoder(sample_rate, channels)
