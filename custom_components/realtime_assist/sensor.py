"""What each agent costs, as sensors with long-term statistics (see usage.py).

Token counts, turns and connected time only grow (`total_increasing`); spend is
money (`monetary`, `total`), today's with its last reset at local midnight. A
model without a price shows its tokens and no spend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import UnitOfTime
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from . import RealtimeAssistConfigEntry
from .entity import RealtimeAssistEntity, agent_subentries
from .usage import UsageMeter

PARALLEL_UPDATES = 0
TOKENS = "tokens"
SPEND_TODAY = "spend_today"
LAST_TURN = "last_turn"


@dataclass(frozen=True, kw_only=True)
class UsageSensorDescription(SensorEntityDescription):
    """A figure of the agent's `UsageMeter`."""

    value: Callable[[UsageMeter], StateType | datetime]


def _tokens(key: str, value: Callable[[UsageMeter], int]) -> UsageSensorDescription:
    return UsageSensorDescription(
        key=key,
        translation_key=key,
        native_unit_of_measurement=TOKENS,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value=value,
    )


def _spend(key: str, value: Callable[[UsageMeter], float]) -> UsageSensorDescription:
    """Money in the meter's currency; nothing without a price for the model."""
    return UsageSensorDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.MONETARY,
        state_class=SensorStateClass.TOTAL,
        suggested_display_precision=2,
        value=lambda meter: value(meter) if meter.prices is not None else None,
    )


SENSORS: tuple[UsageSensorDescription, ...] = (
    _tokens("input_text_tokens", lambda meter: meter.usage.input_text),
    _tokens("input_audio_tokens", lambda meter: meter.usage.input_audio),
    _tokens("input_image_tokens", lambda meter: meter.usage.input_image),
    _tokens("cached_input_tokens", lambda meter: meter.usage.cached_tokens),
    _tokens("output_text_tokens", lambda meter: meter.usage.output_text),
    _tokens("output_audio_tokens", lambda meter: meter.usage.output_audio),
    UsageSensorDescription(
        key="turns",
        translation_key="turns",
        state_class=SensorStateClass.TOTAL_INCREASING,
        value=lambda meter: meter.turns,
    ),
    UsageSensorDescription(
        key="session_time",
        translation_key="session_time",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        suggested_unit_of_measurement=UnitOfTime.MINUTES,
        suggested_display_precision=0,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value=lambda meter: round(meter.connected_s, 1),
    ),
    _spend(SPEND_TODAY, lambda meter: meter.spend_today),
    _spend("spend_total", lambda meter: meter.spend_total),
    UsageSensorDescription(
        key=LAST_TURN,
        translation_key=LAST_TURN,
        device_class=SensorDeviceClass.TIMESTAMP,
        value=lambda meter: meter.last_turn.ended if meter.last_turn else None,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: RealtimeAssistConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """The usage sensors of each realtime agent."""
    for subentry in agent_subentries(entry):
        async_add_entities(
            [RealtimeUsageSensor(entry, subentry, description) for description in SENSORS],
            config_subentry_id=subentry.subentry_id,
        )


class RealtimeUsageSensor(RealtimeAssistEntity, SensorEntity):
    """One figure of what the agent costs."""

    entity_description: UsageSensorDescription
    # What was said stays out of the recorder's history.
    _unrecorded_attributes = frozenset({"user_text", "reply_text"})

    def __init__(
        self,
        entry: RealtimeAssistConfigEntry,
        subentry: ConfigSubentry,
        description: UsageSensorDescription,
    ) -> None:
        super().__init__(entry, subentry)
        self.entity_description = description
        self._attr_unique_id = f"{subentry.subentry_id}_{description.key}"
        self._shown: tuple[object, ...] | None = None

    @property
    def meter(self) -> UsageMeter:
        return self.agent.usage

    @property
    def native_value(self) -> StateType | datetime:
        return self.entity_description.value(self.meter)

    @property
    def native_unit_of_measurement(self) -> str | None:
        if self.device_class is SensorDeviceClass.MONETARY:
            return self.meter.currency
        return self.entity_description.native_unit_of_measurement

    @property
    def last_reset(self) -> datetime | None:
        if self.entity_description.key == SPEND_TODAY:
            return self.meter.spend_today_since
        return None

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """The last turn, for dashboards: what was said, what it cost, how fast it was."""
        if self.entity_description.key != LAST_TURN or (record := self.meter.last_turn) is None:
            return None
        return {
            "conversation_id": record.conversation_id,
            "device_id": record.device_id,
            "satellite_id": record.satellite_id,
            "outcome": record.outcome,
            "user_text": record.user_text,
            "reply_text": record.reply_text,
            "tool_calls": [call["name"] for call in record.tool_calls],
            "tokens": record.usage.total_tokens,
            "cost": record.cost,
            "currency": record.currency,
            "latency_ms": record.latency_ms,
        }

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self.meter.async_add_listener(self._meter_changed))

    @callback
    def _meter_changed(self) -> None:
        """Write the state only if this sensor's figure changed.

        The meter reports all its figures at once, twice a turn (its usage, its
        record) and on every tick; most sensors' figures stay as they were.
        """
        last_turn = self.meter.last_turn if self.entity_description.key == LAST_TURN else None
        shown = (self.native_value, self.last_reset, last_turn)
        if shown != self._shown:
            self._shown = shown
            self.async_write_ha_state()
