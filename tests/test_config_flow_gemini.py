"""Adding Gemini Live in the UI: the key is checked against a real Live session."""

from __future__ import annotations

from collections.abc import AsyncIterator

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_API_KEY
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.realtime_assist.const import (
    CONF_MODEL,
    CONF_PROVIDER,
    CONF_TURN_DETECTION,
    CONF_VAD_EAGERNESS,
    CONF_VOICE,
    DOMAIN,
    SECTION_ADVANCED,
    SUBENTRY_CONVERSATION,
)
from tests.fakes.gemini_live import FakeGeminiLiveServer

pytestmark = pytest.mark.usefixtures("ha_core")


@pytest.fixture
async def gemini(socket_enabled: None) -> AsyncIterator[FakeGeminiLiveServer]:
    async with FakeGeminiLiveServer() as server:
        yield server


def _form(gemini: FakeGeminiLiveServer, api_key: str) -> dict[str, object]:
    return {CONF_PROVIDER: "gemini", CONF_API_KEY: api_key, SECTION_ADVANCED: {"url": gemini.url}}


async def test_gemini_key_is_checked_and_the_entry_created(
    hass: HomeAssistant, gemini: FakeGeminiLiveServer
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _form(gemini, "AIza-not-a-key")
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _form(gemini, gemini.api_key)
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Gemini Live"
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    (subentry,) = entry.subentries.values()
    assert subentry.subentry_type == SUBENTRY_CONVERSATION
    assert subentry.data[CONF_MODEL].startswith("gemini-")
    assert subentry.data[CONF_VOICE] == "Puck"
    assert gemini.protocol_errors == []


async def test_gemini_agent_form_hides_what_gemini_lacks(
    hass: HomeAssistant, gemini: FakeGeminiLiveServer
) -> None:
    """No semantic turn detection and no eagerness for Gemini; its own voices."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _form(gemini, gemini.api_key)
    )
    await hass.async_block_till_done()
    entry = result["result"]

    form = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONVERSATION), context={"source": SOURCE_USER}
    )

    fields = {str(marker): validator for marker, validator in form["data_schema"].schema.items()}
    assert CONF_VAD_EAGERNESS not in fields
    modes = fields[CONF_TURN_DETECTION].config["options"]
    assert "semantic_vad" not in modes
    assert "Puck" in fields[CONF_VOICE].config["options"]
