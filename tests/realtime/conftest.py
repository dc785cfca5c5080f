"""The `open_session` fixture: sessions on a fake provider, checked for leftovers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from homeassistant.const import CONF_API_KEY, CONF_URL
import pytest

from custom_components.realtime_assist.realtime.config import Endpoint
from custom_components.realtime_assist.realtime.providers import create_provider
from custom_components.realtime_assist.realtime.session import RealtimeSession, Subscription
from tests.fakes.providers import FakeProvider
from tests.realtime.sessions import FAST, RATE, OpenSession, session_config


@pytest.fixture
async def open_session(
    realtime_fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[OpenSession]:
    """Sessions on the fake; afterwards: closed, no leaked task or socket, no traceback."""
    before = set(asyncio.all_tasks())
    sessions: list[RealtimeSession] = []

    async def open_(**changes: Any) -> tuple[RealtimeSession, Subscription]:
        data = realtime_fake.entry_data()
        endpoint = Endpoint(api_key=data[CONF_API_KEY], url=data[CONF_URL])
        session = RealtimeSession(
            create_provider(realtime_fake.name, endpoint),
            session_config(realtime_fake.name, **changes),
            input_sample_rate=RATE,
            reconnect=FAST,
        )
        events = session.subscribe()
        await session.start()
        sessions.append(session)
        return session, events

    yield open_
    for session in sessions:
        await session.close()
    realtime_fake.resume_reading()
    realtime_fake.admit_connections()
    async with asyncio.timeout(5):
        for conn in realtime_fake.connections:
            await conn.wait_closed()
    leftover = asyncio.all_tasks() - before - {asyncio.current_task()}
    if leftover:
        await asyncio.wait(leftover, timeout=5)
    assert [task for task in leftover if not task.done()] == []
    assert realtime_fake.protocol_errors == []
    assert not [record for record in caplog.records if record.exc_info], "a traceback was logged"
