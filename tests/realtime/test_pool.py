"""The session pool: leases a turn holds, idle expiry after the last, one-off sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from custom_components.realtime_assist.realtime.config import Endpoint, SessionConfig
from custom_components.realtime_assist.realtime.events import SessionClosed
from custom_components.realtime_assist.realtime.pool import SessionPool
from custom_components.realtime_assist.realtime.providers.openai import OpenAIRealtimeProvider
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.realtime.events import until

CONFIG = SessionConfig(model="gpt-realtime", instructions="You run a home.")


@pytest.fixture
async def pool(fake_server: FakeOpenAIRealtimeServer) -> AsyncIterator[SessionPool]:
    provider = OpenAIRealtimeProvider(Endpoint(fake_server.api_key, fake_server.url))
    pool = SessionPool(provider, idle_timeout_s=0.05)
    yield pool
    await pool.close_all()
    assert fake_server.protocol_errors == []


async def test_idle_timer_starts_when_the_last_lease_is_released(pool: SessionPool) -> None:
    """Speech-to-text is done but text-to-speech still reads: the session stays open."""
    stt = await pool.acquire("conversation", CONFIG)
    tts = await pool.acquire("conversation", CONFIG)
    assert tts.session is stt.session
    events = stt.session.subscribe()

    stt.release()
    stt.release()  # idempotent
    assert pool.diagnostics()["session_0"]["leased"] is True
    assert not stt.session.closed

    tts.release()
    assert pool.diagnostics()["session_0"]["leased"] is False
    closed = await until(events, lambda e: isinstance(e, SessionClosed))
    assert closed[-1] == SessionClosed()
    assert pool.get("conversation") is None


async def test_one_off_sessions_never_take_the_warm_spare(
    pool: SessionPool, fake_server: FakeOpenAIRealtimeServer
) -> None:
    pool.keep_warm(CONFIG)
    await pool.settle()
    spare = fake_server.connections[0]

    async with pool.one_off(SessionConfig(model="gpt-realtime")) as reader:
        await reader.send_text("Read this aloud", respond=False)
    assert reader.closed
    assert spare.ws.close_code is None
    assert not [e for e in spare.received if e["type"] != "session.update"]

    lease = await pool.acquire("conversation", CONFIG)
    await lease.session.send_text("Hello", respond=False)
    await spare.wait_for_event("conversation.item.create")  # the turn got the spare
    lease.release()


async def test_a_lease_may_skip_the_spare(
    pool: SessionPool, fake_server: FakeOpenAIRealtimeServer
) -> None:
    pool.keep_warm(CONFIG)
    await pool.settle()
    spare = fake_server.connections[0]

    lease = await pool.acquire("conversation", CONFIG, use_spare=False)
    await lease.session.send_text("Hello", respond=False)

    await fake_server.connections[1].wait_for_event("conversation.item.create")
    assert not [e for e in spare.received if e["type"] != "session.update"]
    lease.release()
