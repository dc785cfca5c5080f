"""Deterministic PCM16 test audio that drives the fake servers' energy VAD.

Every helper returns mono signed 16-bit little-endian PCM (`bytes`), the wire
format of OpenAI Realtime (24 kHz) and Gemini Live input (16 kHz).

The fake OpenAI server (`tests.fakes.openai_realtime`) classifies each 20 ms
frame by its RMS: a frame is speech when its RMS is at least
`VAD_RMS_THRESHOLD` (500, about -36 dBFS) scaled by the session's
`turn_detection.threshold` / 0.5. The levels here leave wide margins on both
sides so tests never depend on where a frame boundary falls:

- `speech_like`: RMS about 5600 overall and never under about 2600 in any
  20 ms frame, even in the dips between syllables.
- `silence`: RMS about 30 (faint noise, not digital zero, like a real mic).
- `tone`: RMS about 7000 at the default amplitude.
"""

import numpy as np

SAMPLE_RATE = 24_000
"""OpenAI Realtime's only PCM rate, and Gemini Live's output rate."""

VAD_RMS_THRESHOLD = 500.0
"""RMS (int16 units) at or above which the fake's VAD calls a frame speech
when the session's VAD threshold is the default 0.5."""

_FULL_SCALE = 32767.0


def _to_pcm16(signal: np.ndarray) -> bytes:
    """Float samples in [-1, 1] to PCM16 little-endian bytes."""
    clipped = np.clip(signal, -1.0, 1.0) * _FULL_SCALE
    return np.round(clipped).astype("<i2").tobytes()


def _times(duration_s: float, rate: int) -> np.ndarray:
    return np.arange(round(duration_s * rate)) / rate


def speech_like(duration_s: float, rate: int = SAMPLE_RATE, *, seed: int = 0) -> bytes:
    """A voiced-speech-like signal: a gliding pitch with harmonics, amplitude
    modulated at a syllable rate (~4 Hz), so VAD and resamplers see something
    closer to a voice than a pure tone."""
    rng = np.random.default_rng(seed)
    t = _times(duration_s, rate)
    # Pitch wanders between ~110 and ~150 Hz like intonation does.
    f0 = 130.0 + 20.0 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, np.pi))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 7))
    # Syllables: the envelope dips to 0.35 of its peak, never to silence.
    envelope = 0.675 + 0.325 * np.sin(2 * np.pi * 4.0 * t)
    signal = 0.28 * voiced * envelope + rng.normal(0.0, 0.002, t.size)
    return _to_pcm16(signal)


def silence(duration_s: float, rate: int = SAMPLE_RATE, *, seed: int = 1) -> bytes:
    """Faint noise (RMS ~30): what a microphone hears in a quiet room."""
    rng = np.random.default_rng(seed)
    return _to_pcm16(rng.normal(0.0, 30.0 / _FULL_SCALE, round(duration_s * rate)))


def utterance(
    speech_s: float,
    rate: int = SAMPLE_RATE,
    lead_silence_s: float = 0.3,
    tail_silence_s: float = 0.8,
) -> bytes:
    """Silence, speech, silence: one user turn. The default 0.8 s tail is
    longer than server VAD's default 500 ms silence, so it ends the turn."""
    return (
        silence(lead_silence_s, rate) + speech_like(speech_s, rate) + silence(tail_silence_s, rate)
    )


def tone(
    duration_s: float, rate: int = SAMPLE_RATE, freq: float = 440.0, amplitude: float = 0.3
) -> bytes:
    """A pure sine: easy to recognise after resampling or format conversion."""
    return _to_pcm16(amplitude * np.sin(2 * np.pi * freq * _times(duration_s, rate)))


def rms(pcm: bytes) -> float:
    """Root mean square of PCM16 samples, in int16 units (0 for no samples)."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def duration_ms(pcm: bytes, rate: int = SAMPLE_RATE) -> float:
    """How long PCM16 mono audio plays, in milliseconds."""
    return len(pcm) / 2 / rate * 1000
