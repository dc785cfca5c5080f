"""Observe a fake model's pacing (`tests.fakes.loopback.ModelPacing`) by ordering, not by timing.

Shared by the tests of both fake servers: a `Hold` tells the test when the
fake has stopped at it, and `arrival_order` races two replies so that their
relative speed shows as the order their audio chunks arrive in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal


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
