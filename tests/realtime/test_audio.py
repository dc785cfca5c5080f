"""The resampler keeps speech intact across the rates satellites and providers use."""

import itertools

import numpy as np
import pytest

from custom_components.realtime_assist.realtime.audio import (
    TAPS_PER_PHASE,
    MicrophoneResampler,
    Resampler,
    _polyphase_filter,
    duration_ms,
)
from tests.fakes.audio_samples import speech_like


def _tone(freq: float, rate: int, seconds: float = 0.5, amplitude: float = 10000.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def _peak_frequency(pcm: bytes, rate: int) -> float:
    samples = _samples(pcm)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def _rms(pcm: bytes) -> float:
    samples = _samples(pcm)
    # Skip the filter's settling at both ends.
    return float(np.sqrt(np.mean(samples[200:-200] ** 2)))


@pytest.mark.parametrize(
    ("rate_in", "rate_out"), [(16000, 24000), (24000, 16000), (24000, 22050), (22050, 16000)]
)
def test_tone_keeps_pitch_loudness_and_duration(rate_in: int, rate_out: int) -> None:
    resampler = Resampler(rate_in, rate_out)
    source = _tone(440.0, rate_in)
    out = resampler.process(source) + resampler.flush()

    assert _peak_frequency(out, rate_out) == pytest.approx(440.0, abs=3.0)
    assert _rms(out) == pytest.approx(_rms(source), rel=0.02)
    assert duration_ms(len(out), rate_out) == pytest.approx(
        duration_ms(len(source), rate_in), abs=2.0
    )


def test_chunked_stream_equals_one_block() -> None:
    """10 ms satellite chunks (and odd byte splits) give exactly the one-shot result."""
    source = _tone(300.0, 16000, seconds=1.0) + _tone(1200.0, 16000, seconds=0.3)
    whole = Resampler(16000, 24000)
    expected = whole.process(source) + whole.flush()

    chunked = Resampler(16000, 24000)
    pieces = []
    cuts = [0, 320, 641, 963, 1600, 1601, 5000, 9999, len(source)]
    for start, end in itertools.pairwise(cuts):
        pieces.append(chunked.process(source[start:end]))
    pieces.append(chunked.flush())

    assert b"".join(pieces) == expected


def _reference(pcm: bytes, rate_in: int, rate_out: int) -> np.ndarray:
    """The polyphase filter by its definition, one output at a time in float64, with the
    flush's silence appended: output k sits at upsampled position k*down."""
    common = np.gcd(rate_in, rate_out)
    up, down = rate_out // common, rate_in // common
    taps = _polyphase_filter(up, down).astype(np.float64)
    x = np.concatenate((_samples(pcm), np.zeros(TAPS_PER_PHASE // 2)))
    out = []
    for position in range(0, len(x) * up, down):
        newest, phase = divmod(position, up)
        window = [x[newest - j] if newest >= j else 0.0 for j in range(TAPS_PER_PHASE)]
        out.append(np.dot(taps[phase], window))
    return np.clip(np.rint(out), -32768, 32767)


@pytest.mark.parametrize(("rate_in", "rate_out"), [(16000, 24000), (24000, 16000), (24000, 22050)])
def test_stream_of_any_chunks_matches_the_filter_definition(rate_in: int, rate_out: int) -> None:
    """Chunks of changing sizes (planned once per size and phase, a few plans kept), odd
    byte splits and clipping loud speech: within float32 rounding of the definition."""
    speech = _samples(speech_like(0.3, rate_in, seed=7)) * 6  # loud enough to clip
    source = np.clip(speech, -32768, 32767).astype("<i2").tobytes()
    resampler = Resampler(rate_in, rate_out)
    sizes = itertools.cycle([320, 320, 320, 641, 1, 960, 0, 2000, 37])
    pieces, start = [], 0
    while start < len(source):
        size = next(sizes)
        pieces.append(resampler.process(source[start : start + size]))
        start += size
    pieces.append(resampler.flush())

    out = np.frombuffer(b"".join(pieces), dtype="<i2")
    expected = _reference(source, rate_in, rate_out)
    assert len(out) == len(expected)
    assert np.max(np.abs(out - expected)) <= 1


def test_downsampling_removes_what_the_lower_rate_cannot_carry() -> None:
    """A 10 kHz tone at 24 kHz would alias to 6 kHz at 16 kHz; the filter stops it."""
    resampler = Resampler(24000, 16000)
    out = resampler.process(_tone(10000.0, 24000))
    assert _rms(out) < _rms(_tone(10000.0, 24000)) * 0.01  # at least -40 dB


@pytest.mark.parametrize("kind", [Resampler, MicrophoneResampler])
def test_same_rate_passes_bytes_through(kind: type[Resampler | MicrophoneResampler]) -> None:
    resampler = kind(16000, 16000)
    source = _tone(440.0, 16000, seconds=0.05)
    assert resampler.process(source) is source  # not even a copy


def test_the_microphone_reaches_the_provider_as_speech() -> None:
    """16 kHz frames to OpenAI's 24 kHz: pitch, loudness and length kept, frame by frame as
    one block (a reconnect replays the turn in one-second messages)."""
    speech = speech_like(1.0, 16000, seed=3)
    whole = MicrophoneResampler(16000, 24000).process(speech)
    framed = MicrophoneResampler(16000, 24000)
    cuts = [*range(0, 6400, 320), 6401, 9999, len(speech)]
    pieces = [framed.process(speech[start:end]) for start, end in itertools.pairwise(cuts)]
    assert b"".join(pieces) == whole
    assert len(framed.process(bytes(320))) == 480  # a 10 ms frame stays 10 ms

    tone = _tone(440.0, 16000)
    out = MicrophoneResampler(16000, 24000).process(tone)
    assert _peak_frequency(out, 24000) == pytest.approx(440.0, abs=3.0)
    assert _rms(out) == pytest.approx(_rms(tone), rel=0.02)
    assert duration_ms(len(out), 24000) == pytest.approx(duration_ms(len(tone), 16000), abs=0.1)
    # Speech's top octave loses a little (linear interpolation), not more.
    high = _tone(4000.0, 16000)
    assert _rms(MicrophoneResampler(16000, 24000).process(high)) > _rms(high) * 0.75
