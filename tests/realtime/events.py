"""Reading a session's events in tests, the same way for every provider."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from custom_components.realtime_assist.realtime.events import AudioChunk, SessionEvent
from custom_components.realtime_assist.realtime.session import RealtimeSession, Subscription


async def until(
    subscription: Subscription,
    predicate: Callable[[SessionEvent], bool],
    within_s: float = 5.0,
) -> list[SessionEvent]:
    """Events up to and including the first that matches."""
    events: list[SessionEvent] = []
    async with asyncio.timeout(within_s):
        async for event in subscription:
            events.append(event)
            if predicate(event):
                return events
    raise AssertionError(f"the session ended before the expected event: {events}")


def audio_of(events: list[SessionEvent], response_id: str | None = None) -> bytes:
    """The model audio among `events` (of one response, if given)."""
    return b"".join(
        e.pcm for e in events if isinstance(e, AudioChunk) and response_id in (None, e.response_id)
    )


async def speak(session: RealtimeSession, pcm: bytes, chunk_bytes: int = 640) -> None:
    """Stream satellite audio (16 kHz) in chunks (20 ms by default), as a satellite does."""
    for start in range(0, len(pcm), chunk_bytes):
        await session.send_audio(pcm[start : start + chunk_bytes])
