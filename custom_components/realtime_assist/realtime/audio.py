"""PCM16 mono audio: streaming resampling between satellite and provider rates.

Satellites speak 16 kHz (Wyoming plays 22.05 kHz), OpenAI wants 24 kHz in and
out, Gemini takes 16 kHz in and gives 24 kHz out. Audio arrives in small
chunks (10-40 ms), so the resampler keeps its filter state between chunks:
the output of many small chunks equals the output of one big one.
"""

from __future__ import annotations

from math import gcd

import numpy as np
import numpy.typing as npt

SAMPLE_WIDTH = 2  # bytes per 16-bit sample
# Filter taps per polyphase branch: 24 keeps aliasing under -60 dB for speech
# while costing well under a millisecond per second of audio.
TAPS_PER_PHASE = 24
KAISER_BETA = 8.0


def duration_ms(pcm_bytes: int, sample_rate: int) -> float:
    """Milliseconds of PCM16 mono audio in `pcm_bytes` bytes."""
    return pcm_bytes / SAMPLE_WIDTH / sample_rate * 1000.0


def _polyphase_filter(up: int, down: int) -> npt.NDArray[np.float32]:
    """Kaiser-windowed sinc low-pass, split into `up` branches of TAPS_PER_PHASE taps.

    Row p holds the taps that produce outputs whose upsampled position is
    p (mod up), in the order they multiply the newest input sample first.
    """
    length = up * TAPS_PER_PHASE
    cutoff = 1.0 / max(up, down)  # of the upsampled Nyquist
    n = np.arange(length) - (length - 1) / 2.0
    taps = cutoff * np.sinc(cutoff * n) * np.kaiser(length, KAISER_BETA)
    taps *= up / taps.sum()  # unity gain after zero-stuffing by `up`
    return np.ascontiguousarray(taps.reshape(TAPS_PER_PHASE, up).T, dtype=np.float32)


class Resampler:
    """Streaming polyphase resampler for PCM16 mono, vectorised with numpy.

    Output lags input by about TAPS_PER_PHASE/2 input samples (under 1 ms);
    `flush` returns that tail at the end of a stream.
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in = rate_in
        self.rate_out = rate_out
        common = gcd(rate_in, rate_out)
        self._up = rate_out // common
        self._down = rate_in // common
        self._passthrough = rate_in == rate_out
        self._filter = _polyphase_filter(self._up, self._down)
        self._taps_back = np.arange(TAPS_PER_PHASE)
        self.reset()

    def reset(self) -> None:
        """Forget the stream so far (a new turn, a new connection)."""
        # Input history: the last TAPS_PER_PHASE-1 samples before the chunk.
        self._history = np.zeros(TAPS_PER_PHASE - 1, dtype=np.float32)
        # Index (in upsampled positions) of the next output sample, relative to
        # the first sample of the next chunk.
        self._next_pos = 0
        self._odd_byte = b""

    def process(self, pcm: bytes) -> bytes:
        """Resample a chunk; an odd trailing byte is held for the next one."""
        if self._odd_byte:
            pcm = self._odd_byte + pcm
            self._odd_byte = b""
        if len(pcm) % SAMPLE_WIDTH:
            pcm, self._odd_byte = pcm[:-1], pcm[-1:]
        if self._passthrough or not pcm:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        return self._run(samples)

    def flush(self) -> bytes:
        """Return what the filter still holds, as if silence followed."""
        if self._passthrough:
            return b""
        tail = self._run(np.zeros(TAPS_PER_PHASE // 2, dtype=np.float32))
        self.reset()
        return tail

    def _run(self, samples: npt.NDArray[np.float32]) -> bytes:
        extended = np.concatenate((self._history, samples))
        count = len(samples)
        # Output k sits at upsampled position next_pos + k*down; it needs the
        # input sample at floor(position/up) (relative to the chunk start).
        end = count * self._up
        positions = np.arange(self._next_pos, end, self._down)
        base = positions // self._up + (TAPS_PER_PHASE - 1)
        phases = positions % self._up
        window = extended[base[:, None] - self._taps_back[None, :]]
        out = np.einsum("ij,ij->i", window, self._filter[phases])
        if len(positions):
            self._next_pos = int(positions[-1]) + self._down - end
        else:
            self._next_pos -= end
        self._history = extended[-(TAPS_PER_PHASE - 1) :]
        pcm: bytes = np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()
        return pcm
