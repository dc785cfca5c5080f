"""Fixtures for a Realtime Assist config entry against the fake OpenAI server.

A pytest plugin (loaded by tests/conftest.py), so the entry
always talks to a real websocket server over loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
import socket

from homeassistant.components.tts.const import DATA_TTS_MANAGER
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.realtime_assist.agent_config import recommended_agent_options
from custom_components.realtime_assist.const import (
    CONF_KEEP_WARM,
    DEFAULT_AGENT_NAME,
    DOMAIN,
    SUBENTRY_CONVERSATION,
)
from custom_components.realtime_assist.realtime.providers import PROVIDER_OPENAI
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.helpers import entry_data


@pytest.fixture
async def ha_core(hass: HomeAssistant, tmp_path: Path) -> None:
    """Set up the `homeassistant` integration, which `conversation` (our dependency) needs.

    Also give text-to-speech an empty file cache of its own: Home Assistant caches
    TTS audio on disk by (message, language, options, engine), under pytest in the
    plugin's shared testing config, which outlives test runs; a reply would
    otherwise be served from an earlier run without our entity (or the fake) running.
    """
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "tts", {})
    manager = hass.data[DATA_TTS_MANAGER]
    manager.cache_dir = str(tmp_path)
    manager.file_cache.clear()


@pytest.fixture
async def fake_server(socket_enabled: None) -> AsyncIterator[FakeOpenAIRealtimeServer]:
    """A fake OpenAI Realtime server on loopback."""
    async with FakeOpenAIRealtimeServer() as server:
        yield server


@pytest.fixture
def unreachable_url(socket_enabled: None) -> str:
    """A base URL on a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/v1"


@pytest.fixture
def mock_config_entry(
    hass: HomeAssistant, fake_server: FakeOpenAIRealtimeServer
) -> MockConfigEntry:
    """An entry as the config flow creates it, pointed at the fake server."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="OpenAI Realtime",
        data=entry_data(fake_server.url),
        version=1,
        minor_version=1,
        subentries_data=[
            ConfigSubentryData(
                # No spare session, so each test sees only the connections its turns open
                # (tests/test_warm_sessions.py covers keep_warm).
                data=recommended_agent_options(PROVIDER_OPENAI) | {CONF_KEEP_WARM: False},
                subentry_type=SUBENTRY_CONVERSATION,
                title=DEFAULT_AGENT_NAME,
                unique_id=None,
            )
        ],
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
async def loaded_entry(
    hass: HomeAssistant, ha_core: None, mock_config_entry: MockConfigEntry
) -> MockConfigEntry:
    """The entry, set up."""
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    return mock_config_entry
