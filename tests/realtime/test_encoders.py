"""The streaming encoders' output decodes (with ffmpeg) to exactly the PCM that went in."""

from __future__ import annotations

import itertools
import json
import struct
import subprocess

import numpy as np
import pytest

from custom_components.realtime_assist.realtime.encoders import (
    FlacEncoder,
    StreamEncoder,
    WavEncoder,
    _flac_utf8,
    encoder_for,
)
from tests.fakes.audio_samples import speech_like

RATES = [16000, 22050, 24000, 48000]
FORMATS = ["wav", "flac"]
# ffmpeg checks FLAC's CRC-16 only when asked, and stops at the first error. A WAV of
# unknown length always ends in a short read, which these flags would call corrupt.
_STRICT = {"flac": ["-err_detect", "crccheck+bitstream+explode", "-xerror"], "wav": []}


def _run(command: list[str], stream: bytes) -> bytes:
    run = subprocess.run(command, input=stream, capture_output=True, check=False, timeout=30)
    assert (run.returncode, run.stderr.decode()) == (0, "")
    return run.stdout


def _decode(stream: bytes, extension: str) -> bytes:
    """PCM16 little-endian, channels interleaved as the stream has them."""
    command = ["ffmpeg", "-v", "error", *_STRICT[extension], "-f", extension, "-i", "pipe:0"]
    return _run([*command, "-f", "s16le", "pipe:1"], stream)


def _probe(stream: bytes, extension: str) -> tuple[int, int]:
    """(sample rate, channels) as ffmpeg reads them from the stream."""
    command = ["ffprobe", "-v", "error", "-f", extension, "-i", "pipe:0", "-of", "json"]
    out = _run([*command, "-show_entries", "stream=sample_rate,channels"], stream)
    (found,) = json.loads(out)["streams"]
    return int(found["sample_rate"]), int(found["channels"])


def _as_channels(pcm: bytes, channels: int) -> bytes:
    """Mono PCM16 written to every channel, interleaved."""
    return np.repeat(np.frombuffer(pcm, dtype="<i2"), channels).tobytes()


def _full_scale_noise(samples: int, seed: int) -> bytes:
    noise = np.random.default_rng(seed).integers(-32768, 32768, samples, dtype=np.int16)
    noise[:2] = (-32768, 32767)
    return noise.tobytes()


def _mixed(rate: int) -> bytes:
    """Speech, digital silence, full-scale noise and a tail that fills no whole block."""
    return (
        speech_like(0.25, rate)
        + bytes(2 * (rate // 10))
        + _full_scale_noise(rate // 10, seed=rate)
        + speech_like(0.013, rate, seed=2)
    )


def _uneven_chunks(pcm: bytes, seed: int) -> list[bytes]:
    """Chunks of 1 to 3000 bytes, many of odd length (half samples across calls)."""
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(rng.integers(1, 3000, len(pcm) // 500 + 1))
    edges = [0, *(int(cut) for cut in cuts if cut < len(pcm)), len(pcm)]
    return [pcm[start:end] for start, end in itertools.pairwise(edges)]


def _stream(encoder: StreamEncoder, chunks: list[bytes]) -> bytes:
    return encoder.header() + b"".join(map(encoder.encode, chunks)) + encoder.flush()


def _encoder(extension: str, rate: int, channels: int = 1) -> StreamEncoder:
    encoder = encoder_for(extension, rate, channels)
    assert encoder is not None
    return encoder


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("extension", FORMATS)
def test_decodes_bit_exactly(extension: str, rate: int, channels: int) -> None:
    """Chunks of any size, odd lengths included, decode to the input in every channel."""
    pcm = _mixed(rate)
    stream = _stream(_encoder(extension, rate, channels), _uneven_chunks(pcm, seed=rate))

    assert _probe(stream, extension) == (rate, channels)
    assert _decode(stream, extension) == _as_channels(pcm, channels)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", [16000, 48000])
@pytest.mark.parametrize("extension", FORMATS)
def test_first_20_ms_decode_on_their_own(extension: str, rate: int, channels: int) -> None:
    """Fed 10 ms at a time, the encoder has handed out the first 20 ms of audio: those
    bytes alone (after the header) are a stream that decodes to them."""
    pcm = speech_like(0.02, rate)
    encoder = _encoder(extension, rate, channels)
    half = len(pcm) // 2
    out = encoder.encode(pcm[:half]) + encoder.encode(pcm[half:])

    assert _decode(encoder.header() + out, extension) == _as_channels(pcm, channels)


@pytest.mark.parametrize("extension", FORMATS)
def test_byte_by_byte_equals_one_call(extension: str) -> None:
    """A half sample waits for its other half; output does not depend on chunking."""
    pcm = speech_like(0.05, 16000) + b"\x01"  # and a dangling half sample at the end
    whole = _encoder(extension, 16000, 2)
    expected = whole.encode(pcm) + whole.flush()
    bytewise = _encoder(extension, 16000, 2)
    pieces = [bytewise.encode(pcm[index : index + 1]) for index in range(len(pcm))]

    assert b"".join(pieces) + bytewise.flush() == expected
    if extension == "wav":
        assert all(len(piece) % 4 == 0 for piece in pieces)  # whole stereo samples only
    assert _decode(whole.header() + expected, extension) == _as_channels(pcm[:-1], 2)


@pytest.mark.parametrize("extension", FORMATS)
def test_empty_stream(extension: str) -> None:
    encoder = _encoder(extension, 48000)

    assert encoder.encode(b"") == b""
    assert encoder.flush() == b""
    assert _decode(encoder.header(), extension) == b""


def test_flush_writes_the_partial_block_only() -> None:
    encoder = FlacEncoder(48000)
    whole_blocks = speech_like(0.04, 48000)  # two blocks of 20 ms
    assert len(whole_blocks) == 2 * 2 * encoder.block_size
    stream = encoder.header() + encoder.encode(whole_blocks)
    assert encoder.flush() == b""
    assert _decode(stream, "flac") == whole_blocks

    encoder = FlacEncoder(48000)
    tail = speech_like(0.001, 48000, seed=3)  # 48 samples after the two blocks
    stream = encoder.header() + encoder.encode(whole_blocks + tail)
    last = encoder.flush()
    assert last != b""
    assert _decode(stream, "flac") == whole_blocks
    assert _decode(stream + last, "flac") == whole_blocks + tail


@pytest.mark.parametrize("channels", [1, 2])
def test_flac_silence_is_tiny(channels: int) -> None:
    """Silent and constant blocks are CONSTANT subframes: a few bytes per 20 ms frame."""
    rate = 48000
    dc = struct.pack("<h", -1234) * (rate // 50)
    pcm = bytes(2 * rate) + dc + bytes(2 * 7)  # 1 s silence, a constant block, a short tail
    encoder = FlacEncoder(rate, channels)
    stream = _stream(encoder, [pcm])

    assert len(stream) < len(pcm) // 100
    assert _decode(stream, "flac") == _as_channels(pcm, channels)


@pytest.mark.parametrize("extension", FORMATS)
def test_full_scale_noise(extension: str) -> None:
    pcm = _full_scale_noise(48000, seed=7)
    assert _decode(_stream(_encoder(extension, 48000), [pcm]), extension) == pcm


def test_flac_frames_are_numbered_in_order() -> None:
    """Frame numbers count up (ffmpeg times each frame by its number), past 127 where
    they take two bytes; the last, partial frame is as long as the audio left."""
    pcm = speech_like(3.01, 16000)  # 150 frames of 320 samples, then 160 samples
    stream = _stream(FlacEncoder(16000), [pcm])
    command = ["ffprobe", "-v", "error", "-f", "flac", "-i", "pipe:0", "-of", "csv=p=0"]
    packets = _run([*command, "-show_entries", "packet=pts,duration"], stream).split()

    assert packets == [f"{320 * index},320".encode() for index in range(150)] + [b"48000,160"]
    assert _decode(stream, "flac") == pcm


@pytest.mark.parametrize("number", [0, 0x7F, 0x80, 0x7FF, 0x800, 0xD800, 0xFFFF, 0x10000, 0x10FFFF])
def test_flac_frame_number_coding_is_utf8(number: int) -> None:
    assert _flac_utf8(number) == chr(number).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize(
    ("number", "coded"),
    [
        (0x1FFFFF, b"\xf7\xbf\xbf\xbf"),
        (0x200000, b"\xf8\x88\x80\x80\x80"),
        (0x3FFFFFF, b"\xfb\xbf\xbf\xbf\xbf"),
        (0x4000000, b"\xfc\x84\x80\x80\x80\x80"),
        (0x7FFFFFFF, b"\xfd\xbf\xbf\xbf\xbf\xbf"),
    ],
)
def test_flac_frame_number_coding_beyond_unicode(number: int, coded: bytes) -> None:
    """FLAC extends UTF-8's scheme to 31 bits (5 and 6 byte forms)."""
    assert _flac_utf8(number) == coded


@pytest.mark.parametrize("rate", [1000, 12345, 70001, 100000])
def test_flac_uncommon_sample_rates(rate: int) -> None:
    """Rates without a code of their own: in kHz, Hz or tens of Hz, or from STREAMINFO."""
    pcm = speech_like(0.05, rate)
    stream = _stream(FlacEncoder(rate), [pcm])
    assert _probe(stream, "flac") == (rate, 1)
    assert _decode(stream, "flac") == pcm


@pytest.mark.parametrize("channels", [1, 2])
def test_wav_header_has_unknown_sizes(channels: int) -> None:
    """Home Assistant unwraps a streaming WAV only when its sizes read 0xFFFFFFFF."""
    header = WavEncoder(22050, channels).header()
    fields = struct.unpack("<4sI4s4sIHHIIHH4sI", header)
    assert fields == (
        b"RIFF",
        0xFFFFFFFF,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        22050,
        22050 * 2 * channels,
        2 * channels,
        16,
        b"data",
        0xFFFFFFFF,
    )


@pytest.mark.parametrize("channels", [1, 2])
def test_flac_streaminfo_leaves_the_length_unknown(channels: int) -> None:
    header = FlacEncoder(48000, channels).header()
    assert header[:8] == b"fLaC\x80\x00\x00\x22"  # the only, last metadata block: STREAMINFO
    min_block, max_block = struct.unpack(">HH", header[8:12])
    assert (min_block, max_block) == (960, 960)  # 20 ms
    assert header[12:18] == bytes(6)  # frame sizes unknown
    fields = int.from_bytes(header[18:26], "big")
    assert fields >> 44 == 48000
    assert (fields >> 41) & 0b111 == channels - 1
    assert (fields >> 36) & 0b11111 == 15  # 16 bits per sample
    assert fields & (2**36 - 1) == 0  # total samples unknown
    assert header[26:] == bytes(16)  # no MD5


@pytest.mark.parametrize(
    ("extension", "encoder_class", "content_type"),
    [("wav", WavEncoder, "audio/x-wav"), ("flac", FlacEncoder, "audio/flac")],
)
def test_encoder_for_a_format_we_produce(
    extension: str, encoder_class: type[StreamEncoder], content_type: str
) -> None:
    encoder = encoder_for(extension, 44100, 2, 2)
    assert isinstance(encoder, encoder_class)
    assert (encoder.extension, encoder.content_type) == (extension, content_type)
    assert (encoder.sample_rate, encoder.channels) == (44100, 2)


@pytest.mark.parametrize(
    ("extension", "rate", "channels", "sample_bytes"),
    [
        ("mp3", 48000, 1, 2),
        ("opus", 48000, 1, 2),
        ("flac", 48000, 3, 2),
        ("wav", 48000, 0, 2),
        ("flac", 48000, 1, 3),
        ("wav", 16000, 1, 0),
        ("flac", 0, 1, 2),
        ("flac", 1 << 20, 1, 2),
    ],
)
def test_no_encoder_for_what_we_cannot_produce_exactly(
    extension: str, rate: int, channels: int, sample_bytes: int
) -> None:
    assert encoder_for(extension, rate, channels, sample_bytes) is None
