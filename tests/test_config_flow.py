"""The config flow as a user goes through it, against the fake OpenAI server.

Every form is also checked the way the frontend shows it (tests/flow_texts.py):
each field labelled, each text formatted with the placeholders the form gives.
"""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

from homeassistant.components import tts
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntryState,
)
from homeassistant.const import (
    CONF_API_KEY,
    CONF_LLM_HASS_API,
    CONF_NAME,
    CONF_PROMPT,
    CONF_URL,
    Platform,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData, section
from homeassistant.helpers import llm
from homeassistant.helpers.translation import async_get_translations
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.realtime_assist.agent_config import recommended_agent_options
from custom_components.realtime_assist.config_flow import _flatten, entry_title, unused_agent_name
from custom_components.realtime_assist.const import (
    CONF_CAMERA_FPS,
    CONF_CAMERA_LONG_SIDE,
    CONF_IDLE_TIMEOUT,
    CONF_IMAGE_DETAIL,
    CONF_KEEP_WARM,
    CONF_MAKE_PREFERRED,
    CONF_MODEL,
    CONF_NOISE_REDUCTION,
    CONF_PAIR_CAMERAS,
    CONF_PROVIDER,
    CONF_SERVICE_DOMAINS,
    CONF_SILENCE_DURATION_MS,
    CONF_TOOL_TIMEOUT,
    CONF_TRANSCRIPTION_MODEL,
    CONF_TURN_DETECTION,
    CONF_VAD_EAGERNESS,
    CONF_VOICE,
    DEFAULT_AGENT_NAME,
    DOMAIN,
    SECTION_ADVANCED,
    SECTION_BEHAVIOUR,
    SECTION_CAMERA,
    SECTION_COSTS,
    SECTION_LISTENING,
    SUBENTRY_CONVERSATION,
)
from custom_components.realtime_assist.realtime.providers import PROVIDER_OPENAI
from custom_components.realtime_assist.realtime.providers.openai import OpenAIRealtimeProvider
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.flow_texts import assert_form_texts, form_fields
from tests.helpers import REVOKED_KEY, VALID_KEY, entry_data

pytestmark = pytest.mark.usefixtures("ha_core")


def reconfigure_input(url: str, api_key: str = VALID_KEY) -> dict[str, Any]:
    """What the reconfigure form submits."""
    return {CONF_API_KEY: api_key, SECTION_ADVANCED: {CONF_URL: url}}


def user_input(url: str, api_key: str = VALID_KEY, **extra: Any) -> dict[str, Any]:
    """What the user form submits: the reconfigure fields plus the provider."""
    return {CONF_PROVIDER: "openai", **reconfigure_input(url, api_key), **extra}


def form_field(result: Any, key: str) -> tuple[Any, Any]:
    """The schema marker and validator of one field of a shown form (in any section)."""
    for path, validator in form_fields(result["data_schema"]):
        if path[-1] == key:
            section_schema = result["data_schema"]
            for name in path[:-1]:
                section_schema = section_schema.schema[name].schema
            marker = next(m for m in section_schema.schema if m == key)
            return marker, validator
    raise AssertionError(f"{key} is not on the form")


def sections(result: Any) -> dict[str, section]:
    """The sections of a shown form, in order."""
    return {
        str(marker): validator
        for marker, validator in result["data_schema"].schema.items()
        if isinstance(validator, section)
    }


async def test_user_flow_creates_entry_with_default_agent(
    hass: HomeAssistant, fake_server: FakeOpenAIRealtimeServer
) -> None:
    """A valid key creates the entry and one agent with the recommended settings."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    await assert_form_texts(hass, result)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(fake_server.url)
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    # The endpoint is not OpenAI's own: the title says where it is.
    assert result["title"] == f"OpenAI Realtime ({fake_server.url.split('/')[2]})"
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
        CONF_MODEL: "gpt-realtime-2.1",
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


async def test_setup_form_says_where_keys_come_from(hass: HomeAssistant) -> None:
    """The first form links to where each provider's keys are made and says billing is needed."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    translations = await async_get_translations(hass, "en", "config", [DOMAIN])
    description = translations[f"component.{DOMAIN}.config.step.user.description"]
    links = result["description_placeholders"]

    assert links["openai_key_url"] == "https://platform.openai.com/api-keys"
    assert links["gemini_key_url"] == "https://aistudio.google.com/apikey"
    for placeholder in ("openai_key_url", "openai_billing_url", "gemini_key_url", "docs_url"):
        assert f"({{{placeholder}}})" in description  # a Markdown link to it
    assert "billing" in description
    # The endpoint is rarely needed: its section starts collapsed.
    assert sections(result)[SECTION_ADVANCED].options["collapsed"] is True


@pytest.mark.parametrize(
    ("data", "title"),
    [
        ({CONF_PROVIDER: "openai", CONF_URL: None}, "OpenAI Realtime"),
        (
            {CONF_PROVIDER: "openai", CONF_URL: "https://contoso.openai.azure.com/openai/v1"},
            "Azure OpenAI (contoso)",
        ),
        (
            {CONF_PROVIDER: "openai", CONF_URL: "https://fabrikam.cognitiveservices.azure.com"},
            "Azure OpenAI (fabrikam)",
        ),
        (
            {CONF_PROVIDER: "openai", CONF_URL: "http://127.0.0.1:8000/v1"},
            "OpenAI Realtime (127.0.0.1:8000)",
        ),
        ({CONF_PROVIDER: "gemini", CONF_URL: None}, "Gemini Live"),
    ],
)
def test_entry_title_tells_the_services_apart(data: dict[str, Any], title: str) -> None:
    assert entry_title(data) == title


def test_empty_url_override_is_stored_as_none() -> None:
    """An empty endpoint field means the provider's own endpoint, stored as None."""
    form = {CONF_PROVIDER: "openai", CONF_API_KEY: VALID_KEY, SECTION_ADVANCED: {}}
    assert _flatten(form) == {CONF_PROVIDER: "openai", CONF_API_KEY: VALID_KEY, CONF_URL: None}
    form[SECTION_ADVANCED] = {CONF_URL: ""}
    assert _flatten(form)[CONF_URL] is None


async def test_user_flow_invalid_key_names_the_endpoint_and_reason(
    hass: HomeAssistant, fake_server: FakeOpenAIRealtimeServer
) -> None:
    """A rejected key shows `invalid_auth` with the endpoint and the provider's reason.

    The section with the endpoint the user typed is open; the key is in no text.
    """
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(fake_server.url, REVOKED_KEY)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    placeholders = result["description_placeholders"]
    assert placeholders["url"] == fake_server.url
    assert "Incorrect API key" in placeholders["reason"]
    assert REVOKED_KEY not in str(placeholders)
    assert sections(result)[SECTION_ADVANCED].options["collapsed"] is False
    # What was typed is shown again, except the key.
    marker, _ = form_field(result, CONF_URL)
    assert marker.description == {"suggested_value": fake_server.url}
    assert "suggested_value" not in (form_field(result, CONF_API_KEY)[0].description or {})
    await assert_form_texts(hass, result)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(fake_server.url)
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_unreachable_names_the_endpoint_and_reason(
    hass: HomeAssistant, unreachable_url: str
) -> None:
    """An endpoint nobody answers on shows `cannot_connect`: which URL, and why."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(unreachable_url)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}
    placeholders = result["description_placeholders"]
    assert placeholders["url"] == unreachable_url
    assert "Connect call failed" in placeholders["reason"]
    await assert_form_texts(hass, result)


async def test_azure_deployment_of_another_name_is_set_up(
    hass: HomeAssistant, fake_server: FakeOpenAIRealtimeServer
) -> None:
    """An Azure resource answers a model it has no deployment of with HTTP 404: the key
    works all the same (its models are listed), and the entry is set up."""
    fake_server.models = {"contoso-realtime"}
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(fake_server.azure_url)
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    assert result["result"].state is ConfigEntryState.LOADED


async def test_azure_bad_key_is_still_a_bad_key(
    hass: HomeAssistant, fake_server: FakeOpenAIRealtimeServer
) -> None:
    fake_server.models = {"contoso-realtime"}
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(fake_server.azure_url, REVOKED_KEY)
    )
    assert result["errors"] == {"base": "invalid_auth"}


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
    await assert_form_texts(hass, result)


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
    assert result["description_placeholders"]["key_url"] == "https://platform.openai.com/api-keys"
    await assert_form_texts(hass, result)

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
    await assert_form_texts(hass, result)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_API_KEY: VALID_KEY}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert loaded_entry.state is ConfigEntryState.LOADED


async def _entry_through_the_flow(hass: HomeAssistant, url: str) -> Any:
    """An entry created by the user flow (titled by it)."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input(url))
    await hass.async_block_till_done()
    return result["result"]


async def test_reconfigure_moves_entry_to_new_endpoint(
    hass: HomeAssistant, fake_server: FakeOpenAIRealtimeServer, unreachable_url: str
) -> None:
    """Reconfigure checks the new endpoint, then stores it and reloads onto it.

    The form shows the current endpoint (its section open), never the key; the
    title follows the endpoint.
    """
    entry = await _entry_through_the_flow(hass, fake_server.url)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    assert form_field(result, CONF_URL)[0].description == {"suggested_value": fake_server.url}
    assert "suggested_value" not in (form_field(result, CONF_API_KEY)[0].description or {})
    assert sections(result)[SECTION_ADVANCED].options["collapsed"] is False
    await assert_form_texts(hass, result)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], reconfigure_input(unreachable_url)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}
    assert result["description_placeholders"]["url"] == unreachable_url

    async with FakeOpenAIRealtimeServer() as other_server:
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], reconfigure_input(other_server.url)
        )
        await hass.async_block_till_done()
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        assert entry.data == entry_data(other_server.url)
        assert entry.title == f"OpenAI Realtime ({other_server.url.split('/')[2]})"
        assert entry.state is ConfigEntryState.LOADED
        # The flow's check and the reload both used the new endpoint.
        assert other_server.connections
        # Its spare session goes before its server does.
        assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("typed_key", [None, ""])
async def test_reconfigure_keeps_the_key_when_left_empty(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, typed_key: str | None
) -> None:
    """Changing only the endpoint needs no key; a user-chosen title stays."""
    hass.config_entries.async_update_entry(loaded_entry, title="Upstairs")
    result = await loaded_entry.start_reconfigure_flow(hass)
    async with FakeOpenAIRealtimeServer() as other_server:
        form: dict[str, Any] = {SECTION_ADVANCED: {CONF_URL: other_server.url}}
        if typed_key is not None:
            form[CONF_API_KEY] = typed_key
        result = await hass.config_entries.flow.async_configure(result["flow_id"], form)
        await hass.async_block_till_done()
        assert result["reason"] == "reconfigure_successful"
        assert loaded_entry.data == entry_data(other_server.url, VALID_KEY)
        assert loaded_entry.title == "Upstairs"


async def test_reconfigure_without_changes_is_no_duplicate(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, fake_server: FakeOpenAIRealtimeServer
) -> None:
    """Saving the form as it is works: the entry does not clash with itself."""
    result = await loaded_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {SECTION_ADVANCED: {CONF_URL: fake_server.url}}
    )
    await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"


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


# What the agent form submits, section by section (no camera: this home has none).
AGENT_INPUT: dict[str, dict[str, Any]] = {
    SECTION_BEHAVIOUR: {
        CONF_MODEL: "gpt-realtime-mini",
        CONF_VOICE: "cedar",
        CONF_PROMPT: "Answer in one sentence.",
        CONF_LLM_HASS_API: [llm.LLM_API_ASSIST],
        CONF_SERVICE_DOMAINS: ["climate", "media_player"],
    },
    SECTION_LISTENING: {
        CONF_TURN_DETECTION: "semantic_vad",
        CONF_VAD_EAGERNESS: "high",
        CONF_SILENCE_DURATION_MS: 700,
    },
    # Nothing set: no limit, the list prices (tests/test_config_flow_costs.py sets them).
    SECTION_COSTS: {},
    SECTION_ADVANCED: {CONF_IDLE_TIMEOUT: 120, CONF_TOOL_TIMEOUT: 15, CONF_KEEP_WARM: False},
}
# The same, as the subentry stores it.
AGENT_DATA = {key: value for fields in AGENT_INPUT.values() for key, value in fields.items()}


def agent_input(**changes: dict[str, Any]) -> dict[str, Any]:
    """AGENT_INPUT with some sections' fields replaced (a field set to None is left out)."""
    form = {name: dict(fields) for name, fields in AGENT_INPUT.items()}
    for name, fields in changes.items():
        form[name] = {k: v for k, v in {**form[name], **fields}.items() if v is not None}
    return form


async def _add_agent_form(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONVERSATION), context={"source": SOURCE_USER}
    )


async def _edit_agent_form(hass: HomeAssistant, entry: MockConfigEntry, subentry_id: str) -> Any:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONVERSATION),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )


async def test_agent_form_has_sections_in_order(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Voice and behaviour, then listening, open; costs and the rarely used advanced
    settings collapsed."""
    result = await _add_agent_form(hass, loaded_entry)
    assert result["step_id"] == "init"
    assert [str(marker) for marker in result["data_schema"].schema] == [
        CONF_NAME,
        CONF_MAKE_PREFERRED,
        SECTION_BEHAVIOUR,
        SECTION_LISTENING,
        SECTION_COSTS,
        SECTION_ADVANCED,
    ]
    collapsed = {name: s.options["collapsed"] for name, s in sections(result).items()}
    assert collapsed == {
        SECTION_BEHAVIOUR: False,
        SECTION_LISTENING: False,
        SECTION_COSTS: True,
        SECTION_ADVANCED: True,
    }
    listening = [str(m) for m in sections(result)[SECTION_LISTENING].schema.schema]
    # Eagerness sits with turn detection, after it; then what OpenAI does with the audio.
    assert listening == [
        CONF_TURN_DETECTION,
        CONF_SILENCE_DURATION_MS,
        CONF_VAD_EAGERNESS,
        CONF_NOISE_REDUCTION,
        CONF_TRANSCRIPTION_MODEL,
    ]
    await assert_form_texts(hass, result, SUBENTRY_CONVERSATION)


@pytest.mark.usefixtures("front_door_camera")
async def test_agent_form_camera_section_with_a_camera(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """With a camera in the home, a collapsed Camera section (no video frame rate on OpenAI)."""
    result = await _add_agent_form(hass, loaded_entry)
    camera = sections(result)[SECTION_CAMERA]
    assert camera.options["collapsed"] is True
    assert [str(m) for m in camera.schema.schema] == [
        CONF_PAIR_CAMERAS,
        CONF_CAMERA_LONG_SIDE,
        CONF_IMAGE_DETAIL,
    ]
    await assert_form_texts(hass, result, SUBENTRY_CONVERSATION)

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "Porch",
            **AGENT_INPUT,
            SECTION_CAMERA: {CONF_PAIR_CAMERAS: True, CONF_CAMERA_LONG_SIDE: 768},
        },
    )
    assert result["data"][CONF_PAIR_CAMERAS] is True
    assert result["data"][CONF_CAMERA_LONG_SIDE] == 768


async def test_agent_voices_have_labels(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """All OpenAI realtime voices, by name; the text-to-speech voice picker says the same."""
    result = await _add_agent_form(hass, loaded_entry)
    _, voices = form_field(result, CONF_VOICE)
    options = voices.config["options"]
    assert [o["value"] for o in options] == [
        "marin",
        "cedar",
        "alloy",
        "ash",
        "ballad",
        "coral",
        "echo",
        "sage",
        "shimmer",
        "verse",
    ]
    assert options[0] == {"value": "marin", "label": "Marin"}
    # A dropdown that takes typed values would show the value instead of the label.
    assert voices.config["custom_value"] is False
    [agent] = loaded_entry.runtime_data.agents.values()
    tts_entity = tts.get_engine_instance(hass, agent.entity_ids[Platform.TTS])
    assert isinstance(tts_entity, tts.TextToSpeechEntity)
    picker = tts_entity.async_get_supported_voices("en") or []
    assert [(v.voice_id, v.name) for v in picker] == [(o["value"], o["label"]) for o in options]


async def test_subentry_create(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """A second agent is added with its own settings, stored flat, and the entry reloads."""
    result = await _add_agent_form(hass, loaded_entry)
    assert result["type"] is FlowResultType.FORM

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: "Kitchen", CONF_MAKE_PREFERRED: False, **AGENT_INPUT}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Kitchen"
    # What the form did not ask (no camera here) starts at the recommended values.
    assert result["data"] == recommended_agent_options(PROVIDER_OPENAI) | AGENT_DATA
    assert len(loaded_entry.subentries) == 2
    assert loaded_entry.state is ConfigEntryState.LOADED


async def test_second_agent_gets_a_name_of_its_own(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The first agent is "Realtime Assist": the form suggests "Realtime Assist 2"."""
    result = await _add_agent_form(hass, loaded_entry)
    marker, _ = form_field(result, CONF_NAME)
    assert marker.default() == "Realtime Assist 2"
    assert unused_agent_name({"Realtime Assist", "Realtime Assist 2"}) == "Realtime Assist 3"
    assert unused_agent_name(set()) == "Realtime Assist"


async def test_subentry_numbers_are_stored_as_int(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Number selectors hand over floats; the agent keeps whole numbers."""
    result = await _add_agent_form(hass, loaded_entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "Hall",
            **agent_input(
                **{
                    SECTION_LISTENING: {CONF_SILENCE_DURATION_MS: 650.0},
                    SECTION_ADVANCED: {CONF_IDLE_TIMEOUT: 60.0, CONF_TOOL_TIMEOUT: 30.0},
                }
            ),
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
    """Action domains are offered by their integrations' names; left empty, nothing is stored."""
    result = await _add_agent_form(hass, loaded_entry)
    _, domains = form_field(result, CONF_SERVICE_DOMAINS)
    assert domains.config["options"] == [
        {"value": "climate", "label": "Climate"},
        {"value": "light", "label": "Light"},
    ]
    assert domains.config["multiple"] is True
    assert domains.config["custom_value"] is True
    marker, timeout = form_field(result, CONF_TOOL_TIMEOUT)
    assert marker.default() == 10
    number = timeout.validators[0].config
    assert (number["min"], number["max"], number["unit_of_measurement"]) == (1, 120, "s")

    # Without a choice the tool follows the exposed entities: nothing is stored.
    form = agent_input(
        **{
            SECTION_BEHAVIOUR: {CONF_SERVICE_DOMAINS: None},
            SECTION_ADVANCED: {CONF_TOOL_TIMEOUT: None},
        }
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: "Den", **form}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_SERVICE_DOMAINS not in result["data"]
    assert result["data"][CONF_TOOL_TIMEOUT] == 10

    # A typed domain that is not offered is kept, and offered when the agent is edited.
    await hass.async_block_till_done()
    (subentry_id,) = (s.subentry_id for s in loaded_entry.subentries.values() if s.title == "Den")
    result = await _edit_agent_form(hass, loaded_entry, subentry_id)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        agent_input(**{SECTION_BEHAVIOUR: {CONF_SERVICE_DOMAINS: ["light", "vacuum"]}}),
    )
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert loaded_entry.subentries[subentry_id].data[CONF_SERVICE_DOMAINS] == ["light", "vacuum"]
    result = await _edit_agent_form(hass, loaded_entry, subentry_id)
    marker, domains = form_field(result, CONF_SERVICE_DOMAINS)
    assert [o["value"] for o in domains.config["options"]] == ["climate", "light", "vacuum"]
    assert marker.description["suggested_value"] == ["light", "vacuum"]

    # A tool timeout outside 1-120 s is refused.
    with pytest.raises(InvalidData):
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], agent_input(**{SECTION_ADVANCED: {CONF_TOOL_TIMEOUT: 0}})
        )


async def test_subentry_service_domains_without_exposed_entities(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """With nothing exposed, every domain with entity actions is offered, never system ones."""
    result = await _add_agent_form(hass, loaded_entry)
    _, domains = form_field(result, CONF_SERVICE_DOMAINS)
    offered = {option["value"] for option in domains.config["options"]}
    assert offered
    assert "homeassistant" not in offered


async def test_subentry_reconfigure(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """Editing the default agent replaces what the form holds and reloads the entry.

    Emptied optional fields are removed; a field not submitted (hidden, such as
    eagerness under server voice detection) keeps its value.
    """
    subentry = next(iter(loaded_entry.subentries.values()))
    before = dict(subentry.data)
    result = await _edit_agent_form(hass, loaded_entry, subentry.subentry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    assert CONF_NAME not in [str(m) for m in result["data_schema"].schema]
    await assert_form_texts(hass, result, SUBENTRY_CONVERSATION)

    form = agent_input(
        **{
            SECTION_BEHAVIOUR: {CONF_PROMPT: None, CONF_LLM_HASS_API: None},
            SECTION_LISTENING: {CONF_TURN_DETECTION: "server_vad", CONF_VAD_EAGERNESS: None},
        }
    )
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    data = loaded_entry.subentries[subentry.subentry_id].data
    assert CONF_PROMPT not in data
    assert CONF_LLM_HASS_API not in data
    assert data[CONF_VAD_EAGERNESS] == before[CONF_VAD_EAGERNESS]
    assert data[CONF_TURN_DETECTION] == "server_vad"
    assert data[CONF_VOICE] == "cedar"
    assert loaded_entry.state is ConfigEntryState.LOADED


async def test_subentry_flow_aborts_when_entry_not_loaded(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """Agents cannot be added while the entry is not loaded."""
    result = await _add_agent_form(hass, mock_config_entry)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_not_loaded"


@pytest.mark.parametrize(
    ("category", "keys"),
    [
        (
            "config",
            ["abort.already_configured", "abort.reauth_successful", "abort.reconfigure_successful"],
        ),
        (
            "config_subentries",
            ["conversation.abort.entry_not_loaded", "conversation.abort.reconfigure_successful"],
        ),
        ("exceptions", ["invalid_auth.message", "cannot_connect.message"]),
    ],
)
async def test_every_ending_has_a_text(hass: HomeAssistant, category: str, keys: list[str]) -> None:
    """Flows that end show a sentence, not their raw reason."""
    translations = await async_get_translations(hass, "en", category, [DOMAIN])
    for key in keys:
        assert translations.get(f"component.{DOMAIN}.{category}.{key}"), key
