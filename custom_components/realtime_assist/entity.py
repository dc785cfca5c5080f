"""Base entity for a realtime agent's conversation, STT and TTS entities."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigSubentry
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.entity import Entity

from .const import CONF_MODEL, CONF_PROVIDER, DOMAIN, PROVIDER_PROFILES

if TYPE_CHECKING:
    from . import RealtimeAssistConfigEntry


class RealtimeAssistEntity(Entity):
    """An entity of one realtime agent (config subentry).

    The agent's entities on every platform share one device, so they show up
    together and take the agent's name; their unique ids may repeat the
    subentry id because unique ids are per platform.
    """

    _attr_has_entity_name = True
    _attr_name: str | None = None

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
