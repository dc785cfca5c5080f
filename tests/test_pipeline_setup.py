"""The Assist pipeline each agent gets: its voice, and whether it becomes the preferred one."""

from __future__ import annotations

from homeassistant.components import assist_pipeline
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER
from homeassistant.const import CONF_NAME, Platform
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.realtime_assist.const import (
    CONF_MAKE_PREFERRED,
    CONF_VOICE,
    DOMAIN,
    SECTION_BEHAVIOUR,
    SUBENTRY_CONVERSATION,
)
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.pipeline_helpers import our_pipeline
from tests.test_config_flow import AGENT_INPUT, agent_input, user_input

pytestmark = pytest.mark.usefixtures("ha_core")


def _pipeline_of(hass: HomeAssistant, conversation_entity: str) -> assist_pipeline.Pipeline:
    [pipeline] = [
        p
        for p in assist_pipeline.async_get_pipelines(hass)
        if p.conversation_engine == conversation_entity
    ]
    return pipeline


async def test_pipeline_reads_aloud_in_the_agents_voice(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Announcements through the agent's pipeline sound like its replies: Marin, not Alloy."""
    assert our_pipeline(hass, loaded_entry).tts_voice == "marin"


async def give_the_agent_voice(hass: HomeAssistant, entry: MockConfigEntry, voice: str) -> None:
    """Reconfigure the entry's agent with another voice, as the user does in its form."""
    subentry = next(iter(entry.subentries.values()))
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONVERSATION),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    await hass.config_entries.subentries.async_configure(
        result["flow_id"], agent_input(**{SECTION_BEHAVIOUR: {CONF_VOICE: voice}})
    )
    await hass.async_block_till_done()


async def test_pipeline_voice_follows_the_agent(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """A new voice for the agent is its pipeline's new voice too."""
    await give_the_agent_voice(hass, loaded_entry, "cedar")
    assert our_pipeline(hass, loaded_entry).tts_voice == "cedar"


async def test_a_voice_picked_for_the_pipeline_stays(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """A pipeline the user gave another voice keeps it when the agent's voice changes."""
    await assist_pipeline.async_update_pipeline(
        hass, our_pipeline(hass, loaded_entry), tts_voice="sage"
    )
    await give_the_agent_voice(hass, loaded_entry, "cedar")
    assert our_pipeline(hass, loaded_entry).tts_voice == "sage"


async def test_setup_can_make_it_the_preferred_assistant(
    hass: HomeAssistant, fake_server: FakeOpenAIRealtimeServer
) -> None:
    """Asked for on setup, the new pipeline is the one Assist opens; the wish is not kept."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(fake_server.url, **{CONF_MAKE_PREFERRED: True})
    )
    await hass.async_block_till_done()
    entry = result["result"]

    [agent] = entry.runtime_data.agents.values()
    preferred = assist_pipeline.async_get_pipeline(hass)
    assert preferred.conversation_engine == agent.entity_ids[Platform.CONVERSATION]
    assert preferred.name == "Realtime Assist"
    (subentry,) = entry.subentries.values()
    assert CONF_MAKE_PREFERRED not in subentry.data
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_new_agent_can_become_the_preferred_assistant(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, SUBENTRY_CONVERSATION), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: "Kitchen", CONF_MAKE_PREFERRED: True, **AGENT_INPUT}
    )
    await hass.async_block_till_done()

    kitchen = next(
        agent
        for subentry_id, agent in loaded_entry.runtime_data.agents.items()
        if loaded_entry.subentries[subentry_id].title == "Kitchen"
    )
    preferred = assist_pipeline.async_get_pipeline(hass)
    assert preferred.name == "Kitchen"
    assert preferred.conversation_engine == kitchen.entity_ids[Platform.CONVERSATION]
    assert preferred.tts_voice == "cedar"
