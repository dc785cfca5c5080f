"""Long-term statistics of the usage sensors: Home Assistant's recorder keeps them right."""

from __future__ import annotations

from homeassistant.components.recorder import Recorder
from homeassistant.components.recorder.statistics import list_statistic_ids
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import RecorderInstanceContextManager

from tests.usage_helpers import TOKEN_SENSORS, usage_sensor, usage_sensor_id


@pytest.fixture
async def mock_recorder_before_hass(
    async_test_recorder: RecorderInstanceContextManager,
) -> None:
    """The recorder is set up before Home Assistant, as the statistics need it."""


async def test_statistics_metadata(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
) -> None:
    """Home Assistant keeps long-term statistics of every figure: sums, in their units."""
    await async_wait_recording_done(hass)

    found = {
        meta["statistic_id"]: meta
        for meta in await recorder_mock.async_add_executor_job(list_statistic_ids, hass)
    }

    for key in TOKEN_SENSORS.values():
        meta = found[usage_sensor_id(hass, key)]
        assert (meta["has_sum"], meta["statistics_unit_of_measurement"]) == (True, "tokens")
        assert usage_sensor(hass, key).attributes["state_class"] == "total_increasing"
    assert found[usage_sensor_id(hass, "turns")]["has_sum"] is True
    session_time = found[usage_sensor_id(hass, "session_time")]
    assert (session_time["has_sum"], session_time["unit_class"]) == (True, "duration")
    assert usage_sensor(hass, "session_time").attributes["state_class"] == "total_increasing"
    for key in ("spend_today", "spend_total"):
        meta = found[usage_sensor_id(hass, key)]
        assert (meta["has_sum"], meta["statistics_unit_of_measurement"]) == (True, "USD")
        attributes = usage_sensor(hass, key).attributes
        assert (attributes["state_class"], attributes["device_class"]) == ("total", "monetary")
    assert usage_sensor_id(hass, "last_turn") not in found
