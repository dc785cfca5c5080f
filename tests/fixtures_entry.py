"""Fixtures for a Realtime Assist config entry against a fake realtime server.

A pytest plugin (loaded by tests/conftest.py), so the entry always talks to a
real websocket server over loopback.

Which provider: the entry fixtures follow the `provider` fixture, OpenAI by
default. A module whose tests run against every provider overrides it with a
parametrised one (`provider = every_provider`, see tests/test_conversation.py),
and a test of one provider's behaviour in such a module pins it with
`@pytest.mark.parametrize("provider", [PROVIDER_…])` and a reason.
`realtime_fake` is that provider's fake behind a provider-neutral adapter
(tests/fakes/providers.py); `fake_server` and `gemini_server` are the raw fakes
behind it, for tests of one protocol.
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
    PROVIDER_PROFILES,
    SUBENTRY_CONVERSATION,
)
from custom_components.realtime_assist.realtime.providers import PROVIDER_GEMINI, PROVIDER_OPENAI
from tests.fakes.gemini_live import FakeGeminiLiveServer
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.fakes.providers import FakeProvider, GeminiFake, OpenAIFake

ALL_PROVIDERS = (PROVIDER_OPENAI, PROVIDER_GEMINI)
# How long the fake Gemini server waits between `generationComplete` and `turnComplete`.
GEMINI_PLAYBACK_WAIT_S = 1.0


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
def provider() -> str:
    """The provider of the entry and of `realtime_fake`: OpenAI unless overridden."""
    return PROVIDER_OPENAI


@pytest.fixture(params=ALL_PROVIDERS)
def every_provider(request: pytest.FixtureRequest) -> str:
    """Each provider in turn: a module runs on all of them with `provider = every_provider`."""
    return str(request.param)


@pytest.fixture
async def realtime_fake(socket_enabled: None, provider: str) -> AsyncIterator[FakeProvider]:
    """The fake server of `provider` on loopback, behind the provider-neutral adapter."""
    if provider == PROVIDER_GEMINI:
        async with FakeGeminiLiveServer() as gemini:
            # As the real server does, end the turn only after the reply could have been
            # played: a new turn started meanwhile interrupts the finished one.
            gemini.turn_complete_delay_s = GEMINI_PLAYBACK_WAIT_S
            yield GeminiFake(gemini)
    else:
        async with FakeOpenAIRealtimeServer() as openai:
            yield OpenAIFake(openai)


@pytest.fixture
def fake_server(realtime_fake: FakeProvider) -> FakeOpenAIRealtimeServer:
    """The fake OpenAI Realtime server (the provider is OpenAI)."""
    assert isinstance(realtime_fake, OpenAIFake), "fake_server is the OpenAI fake"
    return realtime_fake.server


@pytest.fixture
async def gemini(socket_enabled: None) -> AsyncIterator[FakeGeminiLiveServer]:
    """A fake Gemini Live server of its own, for tests of the Gemini provider alone."""
    async with FakeGeminiLiveServer() as server:
        yield server


@pytest.fixture
def gemini_server(realtime_fake: FakeProvider) -> FakeGeminiLiveServer:
    """The fake Gemini Live server (the provider is Gemini)."""
    assert isinstance(realtime_fake, GeminiFake), "gemini_server is the Gemini fake"
    return realtime_fake.server


@pytest.fixture
def unreachable_url(socket_enabled: None) -> str:
    """A base URL on a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/v1"


@pytest.fixture
def mock_config_entry(
    hass: HomeAssistant, provider: str, realtime_fake: FakeProvider
) -> MockConfigEntry:
    """An entry as the config flow creates it for `provider`, pointed at its fake server."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=PROVIDER_PROFILES[provider].title,
        data=realtime_fake.entry_data(),
        version=1,
        minor_version=1,
        subentries_data=[
            ConfigSubentryData(
                # No spare session, so each test sees only the connections its turns open
                # (tests/test_warm_sessions.py covers keep_warm).
                data=recommended_agent_options(provider) | {CONF_KEEP_WARM: False},
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
