"""What a satellite received, decoded, and checked against what the fake model said.

Used by the in-process satellite tests and the smoke tests alike, always in
the test process: FLAC and MP3 are decoded with the `ffmpeg` binary on PATH
(the smoke tests watch Home Assistant's own ffmpeg processes, not these).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import struct

from homeassistant.const import __version__ as HA_VERSION
import numpy as np
import numpy.typing as npt

from custom_components.realtime_assist.realtime.audio import Resampler
from tests.fakes.audio_samples import SAMPLE_RATE as MODEL_RATE, VAD_RMS_THRESHOLD
from tests.satellites import Player, ReplyFormat, Satellite, SatelliteTurn

VOICE_RMS = 2 * VAD_RMS_THRESHOLD
"""A 10 ms window this loud is the model's voice (the fakes speak at ~5600 RMS, never
under ~2600 in any 20 ms), not silence an implementation fed the stream with."""
QUIET_RMS = 300.0
"""Audio outside the model's replies must stay under this (silence padding, not noise)."""
MIN_CORRELATION = 0.95
"""How alike a reply and its place in what the satellite received must be: resampling by
another filter leaves speech far above this; any other audio far below it."""


def converts_with_ffmpeg(reply_format: ReplyFormat, ha_version: str = HA_VERSION) -> bool:
    """Home Assistant before 2026.11 pipes every reply that asks for a sample rate through
    ffmpeg (`tts/__init__.py`, `_async_generate_tts_audio`), which holds back its output
    until it has read over a second of input: nothing we produce can start sooner."""
    major, minor = (int(part) for part in ha_version.split(".")[:2])
    return (major, minor) < (2026, 11) and reply_format.sample_rate is not None


@dataclass(frozen=True)
class Decoded:
    rate: int
    pcm: bytes
    container: str
    """`pcm` (raw samples as streamed to the device), `wav`, `flac`, `mp3`, ..."""


def container_of(data: bytes) -> str:
    """The file format, by its magic bytes."""
    if data[:4] == b"RIFF":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    return "unknown"


async def decode(player: Player) -> Decoded:
    """The audio the player received so far (a file may be cut short: what decodes of it)."""
    data = player.data
    if player.raw_pcm:
        assert player.sample_rate is not None, "raw PCM of unknown rate"
        return Decoded(player.sample_rate, data[: len(data) - len(data) % 2], "pcm")
    return await decode_file(data)


async def decode_file(data: bytes) -> Decoded:
    container = container_of(data)
    if container == "wav":
        rate, pcm = wav_samples(data)
    elif not data:
        return Decoded(0, b"", "unknown")
    else:
        rate, pcm = wav_samples(await _ffmpeg_to_wav(data))
    return Decoded(rate, pcm[: len(pcm) - len(pcm) % 2], container)


def wav_samples(wav: bytes) -> tuple[int, bytes]:
    """(rate, samples) of a WAV file, streaming or cut short; no samples while the header is
    incomplete."""
    position, rate = 12, 0
    while position + 8 <= len(wav):
        chunk_id, size = struct.unpack_from("<4sI", wav, position)
        body = position + 8
        if chunk_id == b"fmt ":
            if len(wav) < body + 8:
                break
            rate = struct.unpack_from("<I", wav, body + 4)[0]
        elif chunk_id == b"data":
            return rate, wav[body:]  # streaming WAVs have no real size
        position = body + size + (size & 1)
    return rate, b""


async def _ffmpeg_to_wav(data: bytes) -> bytes:
    process = await asyncio.create_subprocess_exec(
        *("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", "pipe:0"),
        *("-f", "wav", "-acodec", "pcm_s16le", "-ac", "1", "pipe:1"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate(data)
    return out


def _samples(pcm: bytes) -> npt.NDArray[np.float64]:
    return np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)


def window_rms(pcm: bytes, rate: int, window_ms: int = 10) -> npt.NDArray[np.float64]:
    samples = _samples(pcm)
    size = max(1, rate * window_ms // 1000)
    count = len(samples) // size
    if count == 0:
        return np.zeros(0)
    frames = samples[: count * size].reshape(count, size)
    return np.asarray(np.sqrt(np.mean(frames**2, axis=1)))


def has_voice(decoded: Decoded) -> bool:
    return bool(decoded.rate) and bool(np.any(window_rms(decoded.pcm, decoded.rate) >= VOICE_RMS))


async def voice_reached_at(player: Player) -> float | None:
    """When the player had the model's voice: the time of the chunk that completed the first
    10 ms of it (headers and silence before it do not count); None if it never did.

    Found by bisecting on the chunks (a longer prefix has whatever a shorter one has), so
    a file format is decoded only a few times.
    """
    chunks = player.chunks

    async def voiced(count: int) -> bool:
        data = b"".join(chunk for _, chunk in chunks[:count])
        if player.raw_pcm:
            assert player.sample_rate is not None, "raw PCM of unknown rate"
            return has_voice(Decoded(player.sample_rate, data[: len(data) - len(data) % 2], "pcm"))
        return has_voice(await decode_file(data))

    if not chunks or not await voiced(len(chunks)):
        return None
    low, high = 0, len(chunks)  # voiced(high) holds, voiced(low) does not
    while high - low > 1:
        middle = (low + high) // 2
        if await voiced(middle):
            high = middle
        else:
            low = middle
    return chunks[high - 1][0]


async def reply_reached(
    satellite: Satellite,
    turn: SatelliteTurn,
    *,
    held: asyncio.Event,
    only_start: bool = False,
    timeout_s: float = 2.0,
) -> str | None:
    """Why the satellite has no reply audio while the model holds back the rest (None: it has).

    `held` is set once the fake sent its first audio chunk and stopped. Then, within
    `timeout_s`, the player must receive the model's voice in its own format beyond any
    header; `only_start` where Home Assistant converts the format with ffmpeg
    (`converts_with_ffmpeg`): there only the start of playback can be asked for.
    """
    try:
        async with asyncio.timeout(10):
            await held.wait()
    except TimeoutError:
        return f"{turn.kind}: the model never started its reply (pipeline events: {turn.types})"
    player = turn.player
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        seen, ended = len(player.chunks), player.ended
        if player.started_by is not None and (only_start or has_voice(await decode(player))):
            return None
        if ended or loop.time() >= deadline:
            break
        await player.wait_for_change(seen, deadline - loop.time())
    if player.started_by is None:
        what = "playback had not started"
    elif player.error is not None:
        what = f"playback started at {player.started_by} and failed: {player.error}"
    elif not player.chunks:
        what = f"playback started at {player.started_by}, but no bytes arrived"
    else:
        what = (
            f"playback started at {player.started_by}; {len(player.data)} bytes arrived, "
            "none of them the model's voice"
        )
    rule = f"Its rule: {satellite.start_rule}."
    events = f"Pipeline events so far: {turn.types}"
    if only_start:
        return (
            f"{turn.kind}: satellite did not start playing the reply while the model held back "
            f"the rest of it ({what}). {rule} (This Home Assistant converts the format with "
            f"ffmpeg, which holds the first second: only the start is checked here.) {events}"
        )
    return (
        f"{turn.kind}: satellite received no reply audio while the model held back the rest of "
        f"its reply ({what}). {rule} {events}"
    )


def resampled(pcm: bytes, rate: int, source_rate: int = MODEL_RATE) -> bytes:
    """The model's audio at `rate`, by our own resampler."""
    resampler = Resampler(source_rate, rate)
    return resampler.process(pcm) + resampler.flush()


def assert_plays(decoded: Decoded, replies: list[bytes], source_rate: int = MODEL_RATE) -> None:
    """The satellite received each of the model's replies (at its rate), in order, and else
    at most quiet audio (silence fed while the model was busy is fine).

    Compared by content: each reply, resampled by our own resampler, is found in the
    received audio by normalised cross-correlation.
    """
    received = _samples(decoded.pcm)
    covered = np.zeros(len(received), dtype=bool)
    position = 0
    for number, reply in enumerate(replies):
        expected = _samples(resampled(reply, decoded.rate, source_rate))
        found = received[position:]
        assert len(found) >= len(expected), (
            f"reply {number}: {len(expected) / decoded.rate:.2f} s of the model's audio, "
            f"but only {len(found) / decoded.rate:.2f} s left of what the satellite received "
            f"({len(received) / decoded.rate:.2f} s in all)"
        )
        lag, correlation = _best_match(found, expected)
        start = position + lag
        assert correlation >= MIN_CORRELATION, (
            f"reply {number} is not in what the satellite received: best correlation "
            f"{correlation:.3f} at {start / decoded.rate:.3f} s"
        )
        gain = np.sqrt(np.mean(received[start : start + len(expected)] ** 2)) / np.sqrt(
            np.mean(expected**2)
        )
        assert 0.8 < gain < 1.25, f"reply {number} plays at {gain:.2f}x its loudness"
        covered[start : start + len(expected)] = True
        position = start + len(expected) - decoded.rate // 100  # resampler tails may overlap
    # Everything else is quiet: no other audio, no repeats (edges of replies excepted).
    margin = decoded.rate // 100
    edges = np.convolve(covered, np.ones(2 * margin + 1), mode="same") > 0
    rest = received[~edges]
    if rest.size:
        loudest = _loudest_window(rest, decoded.rate)
        assert loudest < QUIET_RMS, (
            f"the satellite received other audio besides the model's replies (a 10 ms window "
            f"at RMS {loudest:.0f})"
        )


def _loudest_window(samples: npt.NDArray[np.float64], rate: int) -> float:
    size = max(1, rate // 100)
    count = len(samples) // size
    if count == 0:
        return float(np.sqrt(np.mean(samples**2)))
    frames = samples[: count * size].reshape(count, size)
    return float(np.max(np.sqrt(np.mean(frames**2, axis=1))))


def _best_match(
    haystack: npt.NDArray[np.float64], needle: npt.NDArray[np.float64]
) -> tuple[int, float]:
    """(offset, normalised correlation) where `needle` fits `haystack` best."""
    size = 1 << int(np.ceil(np.log2(len(haystack) + len(needle))))
    products = np.fft.irfft(np.fft.rfft(haystack, size) * np.conj(np.fft.rfft(needle, size)), size)
    lags = len(haystack) - len(needle) + 1
    energy = np.concatenate(([0.0], np.cumsum(haystack**2)))
    windows = energy[len(needle) : len(needle) + lags] - energy[:lags]
    norm = np.sqrt(np.maximum(windows, 1e-9) * np.sum(needle**2))
    scores = products[:lags] / norm
    best = int(np.argmax(scores))
    return best, float(scores[best])
