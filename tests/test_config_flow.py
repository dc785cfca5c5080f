"""The config flow as a user goes through it, against the fake OpenAI server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntryState,
)
from homeassistant.const import CONF_API_KEY, CONF_LLM_HASS_API, CONF_NAME, CONF_PROMPT, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.helpers import llm
from homeassistant.helpers.translation import async_get_translations
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

import custom_components.realtime_assist
from custom_components.realtime_assist.config_flow import _flatten
from custom_components.realtime_assist.const import (
    CONF_CAMERA_FPS,
    CONF_CAMERA_LONG_SIDE,
    CONF_IDLE_TIMEOUT,
    CONF_KEEP_WARM,
    CONF_MODEL,
    CONF_PAIR_CAMERAS,
    CONF_PROVIDER,
    CONF_SERVICE_DOMAINS,
    CONF_SILENCE_DURATION_MS,
    CONF_TOOL_TIMEOUT,
    CONF_TURN_DETECTION,
    CONF_VAD_EAGERNESS,
    CONF_VOICE,
    DEFAULT_AGENT_NAME,
    DOMAIN,
    SECTION_ADVANCED,
    SUBENTRY_CONVERSATION,
)
from custom_components.realtime_assist.realtime.providers.openai import OpenAIRealtimeProvider
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.helpers import REVOKED_KEY, VALID_KEY, entry_data

pytestmark = pytest.mark.usefixtures("ha_core")


def reconfigure_input(url: str, api_key: str = VALID_KEY) -> dict[str, Any]:
    """What the reconfigure form submits."""
    return {CONF_API_KEY: api_key, SECTION_ADVANCED: {CONF_URL: url}}


def user_input(url: str, api_key: str = VALID_KEY) -> dict[str, Any]:
    """What the user form submits: the reconfigure fields plus the provider."""
    return {CONF_PROVIDER: "openai", **reconfigure_input(url, api_key)}


async def test_user_flow_creates_entry_with_default_agent(
    hass: HomeAssistant, fake_server: FakeOpenAIRealtimeServer
) -> None:
    """A valid key creates the entry and one agent with the recommended settings."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(fake_server.url)
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "OpenAI Realtime"
    assert result["data"] == entry_data(fake_server.url)
    # The flow opened a real session, the entry's setup another, and the new
    # agent keeps a third one ready for its first conversation.
    await fake_server.wait_for_connection(3)
    assert len(fake_server.connections) == 3
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    (subentry,) = entry.subentries.values()
    assert subentry.subentry_type == SUBENTRY_CONVERSATION
    assert subentry.title == DEFAULT_AGENT_NAME
    assert subentry.data == {
        CONF_MODEL: "gpt-realtime",
        CONF_VOICE: "marin",
        CONF_PROMPT: llm.DEFAULT_INSTRUCTIONS_PROMPT,
        CONF_LLM_HASS_API: [llm.LLM_API_ASSIST],
        CONF_TURN_DETECTION: "server_vad",
        CONF_VAD_EAGERNESS: "auto",
        CONF_SILENCE_DURATION_MS: 500,
        CONF_IDLE_TIMEOUT: 300,
        CONF_TOOL_TIMEOUT: 10,
        CONF_KEEP_WARM: True,
        CONF_PAIR_CAMERAS: False,
        CONF_CAMERA_FPS: 1.0,
        CONF_CAMERA_LONG_SIDE: 1024,
    }


def test_empty_url_override_is_stored_as_none() -> None:
    """An empty endpoint field means the provider's own endpoint, stored as None."""
    form = {CONF_PROVIDER: "openai", CONF_API_KEY: VALID_KEY, SECTION_ADVANCED: {}}
    assert _flatten(form) == {CONF_PROVIDER: "openai", CONF_API_KEY: VALID_KEY, CONF_URL: None}
    form[SECTION_ADVANCED] = {CONF_URL: ""}
    assert _flatten(form)[CONF_URL] is None


async def test_user_flow_invalid_key_shows_invalid_auth(
    hass: HomeAssistant, fake_server: FakeOpenAIRealtimeServer
) -> None:
    """A key the endpoint rejects keeps the form open with `invalid_auth`; a good one then works."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(fake_server.url, REVOKED_KEY)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(fake_server.url)
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_unreachable_shows_cannot_connect(
    hass: HomeAssistant, unreachable_url: str
) -> None:
    """An endpoint nobody answers on shows `cannot_connect`."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(unreachable_url)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}


async def test_user_flow_unexpected_error_shows_unknown(
    hass: HomeAssistant, fake_server: FakeOpenAIRealtimeServer
) -> None:
    """A bug while checking shows `unknown` instead of a broken dialog."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    with patch.object(OpenAIRealtimeProvider, "connect", side_effect=RuntimeError("boom")):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], user_input(fake_server.url)
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "unknown"}


async def test_user_flow_already_configured(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, fake_server: FakeOpenAIRealtimeServer
) -> None:
    """The same key and endpoint a second time aborts."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(fake_server.url)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reauth_after_revoked_key_updates_key_and_reloads(
    hass: HomeAssistant, fake_server: FakeOpenAIRealtimeServer
) -> None:
    """A revoked key fails setup, starts reauth; a new key fixes the entry."""
    entry = MockConfigEntry(
        domain=DOMAIN, title="OpenAI Realtime", data=entry_data(fake_server.url, REVOKED_KEY)
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR

    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["step_id"] == "reauth_confirm"

    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_API_KEY: "sk-also-revoked"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_API_KEY: VALID_KEY}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_API_KEY] == VALID_KEY
    assert entry.state is ConfigEntryState.LOADED


async def test_reauth_of_loaded_entry(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """Reauth started on a working entry stores the key and keeps it loaded."""
    result = await loaded_entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_API_KEY: VALID_KEY}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert loaded_entry.state is ConfigEntryState.LOADED


async def test_reconfigure_moves_entry_to_new_endpoint(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, unreachable_url: str
) -> None:
    """Reconfigure checks the new endpoint, then stores it and reloads onto it."""
    result = await loaded_entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], reconfigure_input(unreachable_url)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}

    async with FakeOpenAIRealtimeServer() as other_server:
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], reconfigure_input(other_server.url)
        )
        await hass.async_block_till_done()
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        assert loaded_entry.data == entry_data(other_server.url)
        assert loaded_entry.state is ConfigEntryState.LOADED
        # The flow's check and the reload both used the new endpoint.
        assert len(other_server.connections) == 2


async def test_reconfigure_to_existing_entry_aborts(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, fake_server: FakeOpenAIRealtimeServer
) -> None:
    """Reconfiguring onto another entry's key and endpoint aborts."""
    other = MockConfigEntry(domain=DOMAIN, data=entry_data("ws://127.0.0.1:1/v1"))
    other.add_to_hass(hass)
    result = await other.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], reconfigure_input(fake_server.url)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


AGENT_INPUT = {
    CONF_MODEL: "gpt-realtime-mini",
    CONF_VOICE: "cedar",
    CONF_PROMPT: "Answer in one sentence.",
    CONF_LLM_HASS_API: [llm.LLM_API_ASSIST],
    CONF_TURN_DETECTION: "semantic_vad",
    CONF_VAD_EAGERNESS: "high",
    CONF_SILENCE_DURATION_MS: 700,
    CONF_IDLE_TIMEOUT: 120,
    CONF_SERVICE_DOMAINS: ["climate", "media_player"],
    CONF_TOOL_TIMEOUT: 15,
    CONF_KEEP_WARM: False,
    CONF_PAIR_CAMERAS: True,
    CONF_CAMERA_LONG_SIDE: 768,
}


def form_field(result: Any, key: str) -> tuple[Any, Any]:
    """The schema marker and validator of one field of a shown form."""
    for marker, validator in result["data_schema"].schema.items():
        if marker == key:
            return marker, validator
    raise AssertionError(f"{key} is not on the form")


async def test_subentry_create(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """A second agent is added with its own settings and the entry reloads."""
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, SUBENTRY_CONVERSATION), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: "Kitchen", **AGENT_INPUT}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Kitchen"
    assert result["data"] == AGENT_INPUT
    assert len(loaded_entry.subentries) == 2
    assert loaded_entry.state is ConfigEntryState.LOADED


async def test_subentry_numbers_are_stored_as_int(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Number selectors hand over floats; the agent keeps whole numbers."""
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, SUBENTRY_CONVERSATION), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "Hall",
            **AGENT_INPUT,
            CONF_SILENCE_DURATION_MS: 650.0,
            CONF_IDLE_TIMEOUT: 60.0,
            CONF_TOOL_TIMEOUT: 30.0,
        },
    )
    assert result["data"][CONF_SILENCE_DURATION_MS] == 650
    assert isinstance(result["data"][CONF_SILENCE_DURATION_MS], int)
    assert isinstance(result["data"][CONF_IDLE_TIMEOUT], int)
    assert result["data"][CONF_TOOL_TIMEOUT] == 30
    assert isinstance(result["data"][CONF_TOOL_TIMEOUT], int)


@pytest.mark.usefixtures("kitchen_light", "thermostat")
async def test_subentry_service_domains_and_tool_timeout(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The form offers the exposed entities' action domains; leaving them empty stores nothing."""
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, SUBENTRY_CONVERSATION), context={"source": SOURCE_USER}
    )
    _, domains = form_field(result, CONF_SERVICE_DOMAINS)
    assert domains.config["options"] == ["climate", "light"]
    assert domains.config["multiple"] is True
    assert domains.config["custom_value"] is True
    marker, timeout = form_field(result, CONF_TOOL_TIMEOUT)
    assert marker.default() == 10
    number = timeout.validators[0].config
    assert (number["min"], number["max"], number["unit_of_measurement"]) == (1, 120, "s")

    # Without a choice the tool follows the exposed entities: nothing is stored.
    agent = {
        k: v for k, v in AGENT_INPUT.items() if k not in (CONF_SERVICE_DOMAINS, CONF_TOOL_TIMEOUT)
    }
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: "Den", **agent}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_SERVICE_DOMAINS not in result["data"]
    assert result["data"][CONF_TOOL_TIMEOUT] == 10

    # A typed domain that is not offered is kept, and offered when the agent is edited.
    await hass.async_block_till_done()
    (subentry_id,) = (s.subentry_id for s in loaded_entry.subentries.values() if s.title == "Den")
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, SUBENTRY_CONVERSATION),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**agent, CONF_SERVICE_DOMAINS: ["light", "vacuum"]}
    )
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert loaded_entry.subentries[subentry_id].data[CONF_SERVICE_DOMAINS] == ["light", "vacuum"]
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, SUBENTRY_CONVERSATION),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    marker, domains = form_field(result, CONF_SERVICE_DOMAINS)
    assert domains.config["options"] == ["climate", "light", "vacuum"]
    assert marker.description["suggested_value"] == ["light", "vacuum"]

    # A tool timeout outside 1-120 s is refused.
    with pytest.raises(InvalidData):
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {**agent, CONF_TOOL_TIMEOUT: 0}
        )


async def test_subentry_service_domains_without_exposed_entities(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """With nothing exposed, every domain with entity actions is offered, never system ones."""
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, SUBENTRY_CONVERSATION), context={"source": SOURCE_USER}
    )
    _, domains = form_field(result, CONF_SERVICE_DOMAINS)
    assert domains.config["options"]
    assert "homeassistant" not in domains.config["options"]


async def test_subentry_reconfigure(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """Editing the default agent replaces its settings and reloads the entry."""
    subentry = next(iter(loaded_entry.subentries.values()))
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, SUBENTRY_CONVERSATION),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"

    # Leaving the prompt and tools empty removes them.
    changed = {k: v for k, v in AGENT_INPUT.items() if k not in (CONF_PROMPT, CONF_LLM_HASS_API)}
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], changed)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert loaded_entry.subentries[subentry.subentry_id].data == changed
    assert loaded_entry.state is ConfigEntryState.LOADED


async def test_subentry_flow_aborts_when_entry_not_loaded(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """Agents cannot be added while the entry is not loaded."""
    result = await hass.config_entries.subentries.async_init(
        (mock_config_entry.entry_id, SUBENTRY_CONVERSATION), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_not_loaded"


@pytest.mark.parametrize("category", ["config", "config_subentries", "selector", "exceptions"])
async def test_shown_texts_are_translated(hass: HomeAssistant, category: str) -> None:
    """Every error, abort and step the flows show has an English text."""
    translations = await async_get_translations(hass, "en", category, [DOMAIN])
    prefix = f"component.{DOMAIN}.{category}."
    expected = {
        "config": [
            "error.invalid_auth",
            "error.cannot_connect",
            "error.unknown",
            "abort.already_configured",
            "step.user.data.api_key",
            "step.user.sections.advanced.data.url",
            "step.reauth_confirm.description",
            "step.reconfigure.sections.advanced.data.url",
        ],
        "config_subentries": [
            "conversation.abort.entry_not_loaded",
            "conversation.initiate_flow.user",
            "conversation.step.init.data.idle_timeout",
            "conversation.step.init.data.service_domains",
            "conversation.step.init.data_description.service_domains",
            "conversation.step.init.data.tool_timeout",
            "conversation.step.init.data_description.tool_timeout",
        ],
        "selector": [
            "provider.options.openai",
            "turn_detection.options.semantic_vad",
            "vad_eagerness.options.auto",
        ],
        "exceptions": ["invalid_auth.message", "cannot_connect.message"],
    }[category]
    for key in expected:
        assert translations.get(prefix + key), prefix + key


def test_english_translation_is_strings_json() -> None:
    """Custom integrations ship translations/en.json; it must not drift from strings.json."""
    package = Path(custom_components.realtime_assist.__file__).parent
    strings = json.loads((package / "strings.json").read_text())
    assert json.loads((package / "translations" / "en.json").read_text()) == strings
