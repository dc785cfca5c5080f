"""Observe a fake model's pacing (`tests.fakes.loopback.ModelPacing`) by ordering, not by timing.

Shared by the tests of both fake servers: a `Hold` tells the test when the
fake has stopped at it, and `arrival_order` races two replies so that their
relative speed shows as the order their audio chunks arrive in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from typing import Literal, Protocol

from tests.fakes.loopback import ModelPacing

HELD_CHUNK_MS = 200
"""The first chunk a held fake sends: longer than Home Assistant's ESPHome speaker streaming
waits for before it sends anything (a 512-sample chunk once the next one is in: 64 ms at
16 kHz), so every satellite's rule can be met while the fake holds."""


class PacedServer(Protocol):
    """Either fake server."""

    pacing: ModelPacing
    audio_chunk_ms: int


class Hold(asyncio.Event):
    """A `ModelPacing.hold` that also tells when the fake started waiting on it.

    Once `reached` is set, the fake has sent everything it will send before
    the release (each send is awaited before the fake waits here).
    """

    def __init__(self) -> None:
        super().__init__()
        self.reached = asyncio.Event()

    async def wait(self) -> Literal[True]:
        self.reached.set()
        return await super().wait()

    async def wait_reached(self, timeout_s: float = 5.0) -> None:
        """Until the fake stops at the hold (fails the test after `timeout_s`)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.reached.wait()
        except TimeoutError:
            raise AssertionError(f"the fake did not reach its hold within {timeout_s}s") from None


def hold_like_a_real_model(server: PacedServer) -> Hold:
    """Pace the fake like a real model (first audio after 300 ms, then twice real time) and
    hold back everything after each reply's first audio chunk until `release`."""
    hold = Hold()
    server.pacing = ModelPacing(first_audio_delay_s=0.3, speed=2.0, hold=hold)
    server.audio_chunk_ms = HELD_CHUNK_MS
    return hold


def release(pacing: ModelPacing) -> None:
    """Let the model go on; nothing after a release is about timing, so it goes at once."""
    pacing.first_audio_delay_s = 0.0
    pacing.speed = None
    if pacing.hold is not None:
        pacing.hold.set()


async def arrival_order(replies: dict[str, AsyncIterator[None]]) -> list[str]:
    """Read the replies concurrently; the name of each one's next audio chunk, in arrival order.

    Each reply is an iterator that yields once per audio chunk its client receives.
    """
    order: list[str] = []

    async def read(name: str, chunks: AsyncIterator[None]) -> None:
        async for _ in chunks:
            order.append(name)  # noqa: PERF401 - appended as each arrives

    async with asyncio.timeout(10), asyncio.TaskGroup() as group:
        for name, chunks in replies.items():
            group.create_task(read(name, chunks))
    return order


def count_before(order: list[str], name: str, other: str, nth: int) -> int:
    """How many of `name`'s chunks arrived before `other`'s `nth` chunk (1-based)."""
    seen = 0
    for arrived in order:
        if arrived == other:
            nth -= 1
            if nth == 0:
                return seen
        elif arrived == name:
            seen += 1
    raise AssertionError(f"{other} sent fewer chunks than that: {order}")


RACED_CHUNKS = 25
"""Audio chunks in the one-second reply each raced fake sends (40 ms chunks)."""


class Racing(Protocol):
    """One fake server per pacing, each asked at once for the same one-second reply."""

    def __call__(
        self, **pacing: ModelPacing
    ) -> contextlib.AbstractAsyncContextManager[dict[str, AsyncIterator[None]]]: ...


async def check_speed_is_relative_to_real_time(racing: Racing) -> None:
    """8x real time sends the second in 1/8 s, while real time sends about 3 chunks."""
    async with racing(fast=ModelPacing(speed=8.0), slow=ModelPacing(speed=1.0)) as replies:
        order = await arrival_order(replies)
    assert order.count("fast") == order.count("slow") == RACED_CHUNKS
    # Up to 12 leaves room for a loaded machine.
    assert count_before(order, "slow", "fast", RACED_CHUNKS) <= 12


async def check_first_audio_waits_for_the_models_latency(racing: Racing) -> None:
    """A model's first audio comes after its latency, the rest unpaced after it."""
    async with racing(
        delayed=ModelPacing(first_audio_delay_s=0.5), reference=ModelPacing(speed=1.0)
    ) as replies:
        order = await arrival_order(replies)
    # The reference sends a chunk every 40 ms: about 12 before the delayed model's first.
    first = count_before(order, "reference", "delayed", 1)
    assert first >= 4
    # Unpaced after its latency, the delayed model sends the rest of its reply at once.
    assert count_before(order, "reference", "delayed", RACED_CHUNKS) <= first + 3
