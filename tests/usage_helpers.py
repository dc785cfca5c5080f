"""Reading the usage sensors and turn events of the default agent in tests."""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.core import Event, HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er

from custom_components.realtime_assist.const import DOMAIN, EVENT_TURN

TOKEN_SENSORS = {
    "input_text": "input_text_tokens",
    "input_audio": "input_audio_tokens",
    "input_image": "input_image_tokens",
    "cached": "cached_input_tokens",
    "output_text": "output_text_tokens",
    "output_audio": "output_audio_tokens",
}
"""The token sensors, by what `FakeSession.reported_usage` calls each count."""


def usage_sensor_id(hass: HomeAssistant, key: str) -> str:
    """The entity id of the default agent's sensor `key`."""
    [entry] = hass.config_entries.async_entries(DOMAIN)
    [subentry_id] = entry.subentries
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{subentry_id}_{key}")
    assert entity_id is not None, key
    return entity_id


def usage_sensor(hass: HomeAssistant, key: str) -> State:
    state = hass.states.get(usage_sensor_id(hass, key))
    assert state is not None, key
    return state


class TurnEvents:
    """The `realtime_assist_turn` events, and a way to wait for the next ones."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.events: list[dict[str, Any]] = []
        self._fired = asyncio.Event()
        hass.bus.async_listen(EVENT_TURN, self._on_turn)

    @callback
    def _on_turn(self, event: Event) -> None:
        self.events.append(dict(event.data))
        self._fired.set()

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        """Until `count` turns were recorded in all."""
        async with asyncio.timeout(10):
            while len(self.events) < count:
                self._fired.clear()
                await self._fired.wait()
        return self.events
