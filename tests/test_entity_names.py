"""What a user sees the agent's three entities called."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.pipeline_helpers import agent_entity_ids

pytestmark = pytest.mark.usefixtures("ha_core")


async def test_each_entity_says_what_it_does(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The agent is "Realtime Assist"; its speech engines are named after what they do.

    Engine pickers (a pipeline's speech-to-text and text-to-speech) list entities
    by these names, the agent's name in front.
    """
    ids = agent_entity_ids(loaded_entry)
    states = {platform: hass.states.get(entity_id) for platform, entity_id in ids.items()}
    names = {platform: state.name for platform, state in states.items() if state is not None}
    assert names == {
        Platform.CONVERSATION: "Realtime Assist",
        Platform.STT: "Realtime Assist Speech-to-text",
        Platform.TTS: "Realtime Assist Text-to-speech",
    }
    assert ids == {
        Platform.CONVERSATION: "conversation.realtime_assist",
        Platform.STT: "stt.realtime_assist_speech_to_text",
        Platform.TTS: "tts.realtime_assist_text_to_speech",
    }
    registry = er.async_get(hass)
    entries = {platform: registry.async_get(entity_id) for platform, entity_id in ids.items()}
    translation_keys = {p: e.translation_key for p, e in entries.items() if e is not None}
    assert translation_keys == {
        Platform.CONVERSATION: None,
        Platform.STT: "speech_to_text",
        Platform.TTS: "text_to_speech",
    }
