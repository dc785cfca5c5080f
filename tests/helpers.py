"""Shared test data for a Realtime Assist config entry against the fake OpenAI server."""

from __future__ import annotations

from typing import Any

from homeassistant.const import CONF_API_KEY, CONF_URL

from custom_components.realtime_assist.const import CONF_PROVIDER
from custom_components.realtime_assist.realtime.providers import PROVIDER_OPENAI
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer

VALID_KEY = FakeOpenAIRealtimeServer.API_KEY
REVOKED_KEY = "sk-test-revoked"


def entry_data(url: str, api_key: str = VALID_KEY) -> dict[str, Any]:
    """Parent entry data as the config flow stores it."""
    return {CONF_PROVIDER: PROVIDER_OPENAI, CONF_API_KEY: api_key, CONF_URL: url}
