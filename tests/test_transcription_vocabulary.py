"""Transcription that knows the home: Home Assistant's language and the names of areas
and exposed entities reach the provider's transcription, bounded for a big home.

The fakes mishear a name unless the session's transcription vocabulary holds it, so
the speech-to-text result shows whether the names arrived.
"""

from __future__ import annotations

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.realtime_assist.realtime.config import (
    MAX_VOCABULARY_CHARS,
    MAX_VOCABULARY_TERMS,
)
from custom_components.realtime_assist.service_tool import exposed_states
from custom_components.realtime_assist.vocabulary import async_home_vocabulary
from tests.fakes.audio_samples import utterance
from tests.fakes.providers import FakeProvider
from tests.fixtures_entry import every_provider
from tests.fixtures_home import ASSISTANT
from tests.pipeline_helpers import our_pipeline, run_pipeline

provider = every_provider

BIG_HOME = 2000
SAID = "Turn on the Hue Go in Jonas's room."


@pytest.fixture
async def big_home(hass: HomeAssistant, kitchen_light: str) -> str:
    """2,000 exposed sensors, an unexposed one, Jonas's room, the kitchen light in it
    with the alias "Hue Go", and after them all a thermometer the owner calls "Attic".
    Returns the kitchen light's entity id."""
    entities = er.async_get(hass)
    for number in range(BIG_HOME):
        entry = entities.async_get_or_create(
            "sensor", "big_home", f"sensor_{number}", original_name=f"Sensor {number}"
        )
        hass.states.async_set(entry.entity_id, "1", {"friendly_name": f"Sensor {number}"})
        async_expose_entity(hass, ASSISTANT, entry.entity_id, True)
    hidden = entities.async_get_or_create("sensor", "big_home", "hidden", original_name="Secret")
    hass.states.async_set(hidden.entity_id, "1", {"friendly_name": "Secret diary"})
    async_expose_entity(hass, ASSISTANT, hidden.entity_id, False)
    attic = entities.async_get_or_create(
        "sensor", "big_home", "attic", original_name="Thermometer 7"
    )
    hass.states.async_set(attic.entity_id, "1", {"friendly_name": "Thermometer 7"})
    async_expose_entity(hass, ASSISTANT, attic.entity_id, True)
    entities.async_update_entity(attic.entity_id, aliases=[er.COMPUTED_NAME, "Attic"])
    room = ar.async_get(hass).async_get_or_create("Jonas's room")
    entities.async_update_entity(kitchen_light, area_id=room.id, aliases=["Hue Go"])
    return kitchen_light


async def test_a_big_home_gives_a_bounded_vocabulary(hass: HomeAssistant, big_home: str) -> None:
    """Areas first, then the aliases people say, then names; never an unexposed one."""
    vocabulary = async_home_vocabulary(hass, exposed_states(hass))

    assert vocabulary[:3] == ("Jonas's room", "Hue Go", "Attic")
    assert "Sensor 0" in vocabulary
    assert "Secret diary" not in vocabulary
    assert len(vocabulary) <= MAX_VOCABULARY_TERMS
    assert sum(len(term) for term in vocabulary) <= MAX_VOCABULARY_CHARS


async def test_the_speech_to_text_result_gets_the_homes_names_right(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    realtime_fake: FakeProvider,
    big_home: str,
    loaded_entry: MockConfigEntry,
) -> None:
    realtime_fake.mishear("Hue Go", "who go")
    realtime_fake.mishear("Jonas's room", "Jonas is room")
    realtime_fake.hear(SAID)
    realtime_fake.say("The Hue Go is on.")

    run = await run_pipeline(
        hass_ws_client, our_pipeline(hass, loaded_entry).id, utterance(1.0, 16000)
    )

    assert "error" not in run.types, run.of_type("error")
    assert run.one("stt-end")["stt_output"]["text"] == SAID
    languages, vocabulary = realtime_fake.connections[-1].transcription_hints()
    assert languages == ["en"]
    assert "Hue Go" in vocabulary
    assert "Jonas's room" in vocabulary
    assert realtime_fake.protocol_errors == []
