"""Base entity for a realtime agent's conversation, STT, TTS and usage entities."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import Platform
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import CONF_MODEL, CONF_PROVIDER, DOMAIN, PROVIDER_PROFILES, SUBENTRY_CONVERSATION

if TYPE_CHECKING:
    from . import RealtimeAssistConfigEntry
    from .agent import RealtimeAgent


class RealtimeAssistEntity(Entity):
    """An entity of one realtime agent (config subentry).

    The agent's entities on every platform share one device named after the
    agent, so they show up together. An entity with no name of its own (the
    conversation entity: the agent itself) takes the device's name. Their
    unique ids may repeat the subentry id because unique ids are per platform.
    """

    _attr_has_entity_name = True

    def __init__(self, entry: RealtimeAssistConfigEntry, subentry: ConfigSubentry) -> None:
        """Attach the entity to its agent's device."""
        self.entry = entry
        self.subentry = subentry
        profile = PROVIDER_PROFILES[entry.data[CONF_PROVIDER]]
        self._attr_unique_id = subentry.subentry_id
        self._attr_device_info = dr.DeviceInfo(
            identifiers={(DOMAIN, subentry.subentry_id)},
            name=subentry.title,
            manufacturer=profile.manufacturer,
            model=subentry.data.get(CONF_MODEL, profile.default_model),
            entry_type=dr.DeviceEntryType.SERVICE,
        )

    # The platform this entity serves the agent on, if the agent needs its entity id.
    _agent_platform: Platform | None = None

    @property
    def agent(self) -> RealtimeAgent:
        """The agent (subentry) at runtime: its sessions, turns and prompt."""
        return self.entry.runtime_data.agents[self.subentry.subentry_id]

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        if self._agent_platform is not None:
            self.agent.entity_ids[self._agent_platform] = self.entity_id


# The translation key, and so the name, of each speech platform's entity.
SPEECH_TRANSLATION_KEYS: dict[Platform, str] = {
    Platform.STT: "speech_to_text",
    Platform.TTS: "text_to_speech",
}


class RealtimeSpeechEntity(RealtimeAssistEntity):
    """The agent's speech-to-text or text-to-speech entity.

    Named after what they do ("Speech-to-text"), so the agent's three entities
    are told apart; engine pickers show them with the device's name in front
    ("Realtime Assist Speech-to-text").
    """

    _agent_platform: Platform

    def __init__(self, entry: RealtimeAssistConfigEntry, subentry: ConfigSubentry) -> None:
        super().__init__(entry, subentry)
        self._attr_translation_key = SPEECH_TRANSLATION_KEYS[self._agent_platform]


def agent_subentries(entry: RealtimeAssistConfigEntry) -> Iterator[ConfigSubentry]:
    """The entry's realtime agents."""
    return (s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_CONVERSATION)


def async_add_agent_entities(
    entry: RealtimeAssistConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    entity_class: Callable[[RealtimeAssistConfigEntry, ConfigSubentry], Entity],
) -> None:
    """One entity of `entity_class` per realtime agent, attached to its subentry."""
    for subentry in agent_subentries(entry):
        async_add_entities([entity_class(entry, subentry)], config_subentry_id=subentry.subentry_id)
