"""PCM16 mono audio: streaming resampling between satellite and provider rates.

Satellites speak 16 kHz (Wyoming plays 22.05 kHz), OpenAI wants 24 kHz in and
out, Gemini takes 16 kHz in and gives 24 kHz out. Audio arrives in small
chunks (10-40 ms), so each resampler keeps its state between chunks: the
output of many small chunks equals the output of one big one.

Two resamplers for two jobs: `Resampler` (a polyphase filter) for the model's
voice on its way to the user's ear, `MicrophoneResampler` (linear, in C) for
the user's voice on its way to the model, 100 times a second per satellite.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from math import gcd

import audioop
import numpy as np
import numpy.typing as npt

SAMPLE_WIDTH = 2  # bytes per 16-bit sample
# Filter taps per polyphase branch: 24 keeps aliasing under -60 dB for speech
# while costing well under a millisecond per second of audio.
TAPS_PER_PHASE = 24
KAISER_BETA = 8.0
# Plans kept per resampler: one per chunk length and starting phase that recurs.
_PLANS_KEPT = 4
# Only chunks of up to this many outputs are planned for again (a frame's size recurs;
# a plan costs 12 bytes per tap); a bigger chunk's planning is small next to its work.
_PLANNED_OUTPUTS = 512

# Gather indices into the history and chunk, filter rows, the phase after the chunk.
type _Plan = tuple[npt.NDArray[np.intp], npt.NDArray[np.float32], int]


def duration_ms(pcm_bytes: int, sample_rate: int) -> float:
    """Milliseconds of PCM16 mono audio in `pcm_bytes` bytes."""
    return pcm_bytes / SAMPLE_WIDTH / sample_rate * 1000.0


def whole_samples(held: bytes, pcm: bytes) -> tuple[bytes, bytes]:
    """`held` (an odd byte from the last chunk) and `pcm` as whole samples, and the odd
    byte to hold for the next chunk (b"" if none)."""
    if held:
        pcm = held + pcm
    if len(pcm) % SAMPLE_WIDTH:
        return pcm[:-1], pcm[-1:]
    return pcm, b""


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


class StreamingResampler(ABC):
    """Whole samples only: an odd trailing byte waits for the next chunk."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in = rate_in
        self.rate_out = rate_out
        self._passthrough = rate_in == rate_out
        self._odd_byte = b""

    def process(self, pcm: bytes) -> bytes:
        """Resample a chunk; an odd trailing byte is held for the next one."""
        pcm, self._odd_byte = whole_samples(self._odd_byte, pcm)
        if self._passthrough or not pcm:
            return pcm
        return self._convert(pcm)

    @abstractmethod
    def _convert(self, pcm: bytes) -> bytes:
        """Resample whole samples."""


class MicrophoneResampler(StreamingResampler):
    """The user's voice to the provider's rate: linear interpolation (`audioop.ratecv`).

    The resampling Home Assistant itself applies to the Assist dialog's microphone
    (and Wyoming to its satellites'): one C call per frame, about a sixth of the
    polyphase filter's cost in place (`scripts/bench --phases micro`). Speech
    loses a little of its top octave (-2 dB at 4 kHz), which the provider's
    recognition does not need; what the user hears goes through `Resampler`.
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        super().__init__(rate_in, rate_out)
        self._state: tuple[int, tuple[tuple[int, int], ...]] | None = None

    def _convert(self, pcm: bytes) -> bytes:
        out, self._state = audioop.ratecv(
            pcm, SAMPLE_WIDTH, 1, self.rate_in, self.rate_out, self._state
        )
        return out


class Resampler(StreamingResampler):
    """Streaming polyphase resampler for PCM16 mono, vectorised with numpy.

    Output lags input by about TAPS_PER_PHASE/2 input samples (under 1 ms);
    `flush` returns that tail at the end of a stream.

    A chunk costs a handful of numpy calls, whatever its size: in place, between
    two 10 ms frames the CPU's caches forget numpy's code, so each call costs
    tens of microseconds however little it computes. The gather indices and
    filter rows depend only on the chunk's length and the filter phase it starts
    at, which repeat (a 10 ms frame at 16 kHz -> 24 kHz always starts at phase
    0), so they are planned once and reused.
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        super().__init__(rate_in, rate_out)
        common = gcd(rate_in, rate_out)
        self._up = rate_out // common
        self._down = rate_in // common
        self._filter = _polyphase_filter(self._up, self._down)
        self._plans: dict[tuple[int, int], _Plan] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the stream so far (a new turn, a new connection)."""
        # Input history: the last TAPS_PER_PHASE-1 samples before the chunk.
        self._history = np.zeros(TAPS_PER_PHASE - 1, dtype=np.float32)
        # Index (in upsampled positions) of the next output sample, relative to
        # the first sample of the next chunk.
        self._next_pos = 0
        self._odd_byte = b""

    def _convert(self, pcm: bytes) -> bytes:
        return self._run(np.frombuffer(pcm, dtype="<i2"))

    def flush(self) -> bytes:
        """Return what the filter still holds, as if silence followed."""
        if self._passthrough:
            return b""
        tail = self._run(np.zeros(TAPS_PER_PHASE // 2, dtype=np.float32))
        self.reset()
        return tail

    def _run(self, samples: npt.NDArray[np.int16] | npt.NDArray[np.float32]) -> bytes:
        index, filters, self._next_pos = self._plan(len(samples))
        extended = np.concatenate((self._history, samples), dtype=np.float32)
        out = np.einsum("ij,ij->i", extended.take(index), filters)
        self._history = extended[-(TAPS_PER_PHASE - 1) :]
        np.rint(out, out=out)
        # Two plain ufuncs: np.clip's Python wrapper costs more than both, in place.
        np.minimum(out, 32767, out=out)
        np.maximum(out, -32768, out=out)
        pcm: bytes = out.astype("<i2").tobytes()
        return pcm

    def _plan(self, count: int) -> _Plan:
        """Where a chunk of `count` samples starting at the current phase reads, and with
        which taps; planned once per (length, phase) for frame-sized chunks, a few kept."""
        key = (count, self._next_pos)
        if (plan := self._plans.get(key)) is not None:
            return plan
        # Output k sits at upsampled position next_pos + k*down; it needs the input
        # sample at floor(position/up) (relative to the chunk start) and those before.
        end = count * self._up
        positions = np.arange(self._next_pos, end, self._down)
        newest = positions // self._up + (TAPS_PER_PHASE - 1)
        index = newest[:, None] - np.arange(TAPS_PER_PHASE)[None, :]
        filters = np.ascontiguousarray(self._filter[positions % self._up])
        # The next chunk's first output is one step of `down` past this chunk's last.
        last = int(positions[-1]) if len(positions) else self._next_pos - self._down
        next_pos = last + self._down - end
        plan = (index, filters, next_pos)
        if len(positions) <= _PLANNED_OUTPUTS:
            if len(self._plans) >= _PLANS_KEPT:
                # Chunks of changing sizes (the model's audio) do not fill memory with plans.
                del self._plans[next(iter(self._plans))]
            self._plans[key] = plan
        return plan
