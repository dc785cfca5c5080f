"""Setting up and unloading the entry against the fake OpenAI server."""

from __future__ import annotations

from homeassistant.components import conversation
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import CONF_PROMPT
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import device_registry as dr, issue_registry as ir, llm
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from websockets.protocol import State

from custom_components.realtime_assist import RealtimeAssistData
from custom_components.realtime_assist.agent_config import (
    recommended_agent_options,
    session_config_from_options,
)
from custom_components.realtime_assist.const import (
    CONF_SILENCE_DURATION_MS,
    CONF_TOOL_TIMEOUT,
    CONF_TURN_DETECTION,
    CONF_VAD_EAGERNESS,
    DOMAIN,
)
from custom_components.realtime_assist.entity import RealtimeAssistEntity
from custom_components.realtime_assist.problems import ISSUE_QUOTA
from custom_components.realtime_assist.realtime.config import (
    Eagerness,
    ImageDetail,
    NoiseReduction,
    ReasoningEffort,
    SessionConfig,
    TurnDetection,
    TurnDetectionMode,
)
from custom_components.realtime_assist.realtime.providers import PROVIDER_OPENAI
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.fakes.providers import FakeProvider
from tests.helpers import REVOKED_KEY, entry_data

pytestmark = pytest.mark.usefixtures("ha_core")


async def test_setup_and_unload(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, fake_server: FakeOpenAIRealtimeServer
) -> None:
    """Setup proves the key with a real session; unload leaves nothing open."""
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()

    assert mock_config_entry.state is ConfigEntryState.LOADED
    assert isinstance(mock_config_entry.runtime_data, RealtimeAssistData)
    assert mock_config_entry.runtime_data.provider.endpoint.url == fake_server.url
    assert len(fake_server.connections) == 1

    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
    await hass.async_block_till_done()

    assert mock_config_entry.state is ConfigEntryState.NOT_LOADED
    assert not hasattr(mock_config_entry, "runtime_data")
    assert not mock_config_entry.update_listeners
    assert all(connection.ws.state is State.CLOSED for connection in fake_server.connections)


async def test_setup_with_revoked_key_starts_reauth(
    hass: HomeAssistant, fake_server: FakeOpenAIRealtimeServer
) -> None:
    """A rejected key is a setup error the user fixes through reauth."""
    entry = MockConfigEntry(domain=DOMAIN, data=entry_data(fake_server.url, REVOKED_KEY))
    entry.add_to_hass(hass)

    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.SETUP_ERROR
    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["context"]["source"] == SOURCE_REAUTH
    assert flow["context"]["entry_id"] == entry.entry_id


async def test_setup_with_unreachable_endpoint_retries(
    hass: HomeAssistant, unreachable_url: str
) -> None:
    """An endpoint that does not answer is retried later, without reauth."""
    entry = MockConfigEntry(domain=DOMAIN, data=entry_data(unreachable_url))
    entry.add_to_hass(hass)

    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)


async def test_a_repair_raised_before_a_reload_clears_with_the_next_turn_that_works(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, realtime_fake: FakeProvider
) -> None:
    """The owner adds credit and edits the agent (the entry reloads): the notice still goes."""
    realtime_fake.fail_next_reply("quota")
    failed = await conversation.async_converse(
        hass, "Turn on the light", None, Context(), agent_id="conversation.realtime_assist"
    )
    assert failed.response.error_code is not None
    issue_id = f"{ISSUE_QUOTA}_{loaded_entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None

    subentry = next(iter(loaded_entry.subentries.values()))
    hass.config_entries.async_update_subentry(
        loaded_entry, subentry, data={**subentry.data, CONF_TOOL_TIMEOUT: 20}
    )
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED

    answered = await conversation.async_converse(
        hass, "Turn on the light", None, Context(), agent_id="conversation.realtime_assist"
    )
    assert answered.response.error_code is None
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_removing_the_entry_takes_its_repairs_along(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, realtime_fake: FakeProvider
) -> None:
    """A notice about an entry that is gone would stay in Repairs until a restart."""
    realtime_fake.fail_next_reply("quota")
    await conversation.async_converse(
        hass, "Turn on the light", None, Context(), agent_id="conversation.realtime_assist"
    )
    issue_id = f"{ISSUE_QUOTA}_{loaded_entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None

    await hass.config_entries.async_remove(loaded_entry.entry_id)
    await hass.async_block_till_done()

    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_agent_entity_device(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """An agent's entities share a service device named after the agent."""
    subentry = next(iter(loaded_entry.subentries.values()))
    entity = RealtimeAssistEntity(loaded_entry, subentry)

    assert entity.unique_id == subentry.subentry_id
    assert entity.device_info == dr.DeviceInfo(
        identifiers={(DOMAIN, subentry.subentry_id)},
        name="Realtime Assist",
        manufacturer="OpenAI",
        model="gpt-realtime-2.1",
        entry_type=dr.DeviceEntryType.SERVICE,
    )


def test_session_config_from_recommended_options() -> None:
    """A new agent's settings become the session the model is configured with."""
    config = session_config_from_options(
        recommended_agent_options(PROVIDER_OPENAI), PROVIDER_OPENAI
    )
    assert config == SessionConfig(
        model="gpt-realtime-2.1",
        instructions=llm.DEFAULT_INSTRUCTIONS_PROMPT,
        voice="marin",
        turn_detection=TurnDetection(mode=TurnDetectionMode.SERVER_VAD, silence_ms=500),
        input_transcription_model="gpt-live-transcribe",
        noise_reduction=NoiseReduction.FAR_FIELD,
        reasoning_effort=ReasoningEffort.LOW,
        image_detail=ImageDetail.LOW,
    )


def test_session_config_maps_turn_detection_and_missing_prompt() -> None:
    """Edited turn taking is passed on; a removed prompt means no instructions."""
    options = recommended_agent_options(PROVIDER_OPENAI)
    del options[CONF_PROMPT]
    options |= {
        CONF_TURN_DETECTION: "semantic_vad",
        CONF_VAD_EAGERNESS: "low",
        CONF_SILENCE_DURATION_MS: 800.0,
    }
    config = session_config_from_options(options, PROVIDER_OPENAI)
    assert config.instructions == ""
    assert config.turn_detection == TurnDetection(
        mode=TurnDetectionMode.SEMANTIC_VAD, eagerness=Eagerness.LOW, silence_ms=800
    )


def test_session_config_defaults_for_missing_keys() -> None:
    """Subentries from before a setting existed still get a full session."""
    config = session_config_from_options({}, PROVIDER_OPENAI)
    assert config.model == "gpt-realtime-2.1"
    assert config.voice == "marin"
    assert config.turn_detection == TurnDetection()
