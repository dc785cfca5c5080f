"""A record of what the model did: every tool call as an event and a logbook entry.

Real turns against the fake OpenAI server, Home Assistant's recorder (in memory)
and its logbook, read back the way the frontend reads it (`logbook/get_events`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.recorder import Recorder
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_capture_events,
    mock_component,
)
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.realtime_assist.const import DOMAIN, EVENT_TOOL_CALL
from custom_components.realtime_assist.service_tool import TOOL_NAME
from tests.fakes.providers import FakeProvider, FakeSession, Reply

AGENT_ID = "conversation.realtime_assist"
SATELLITE_DOMAIN = "record_satellite_test"


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """Prepare the recorder's database before Home Assistant starts (the logbook reads it)."""


def _answer_after_tools(conn: FakeSession) -> Reply | None:
    return Reply("Done.") if conn.last_input_was_tool_result() else None


@pytest.fixture
def kitchen_satellite(hass: HomeAssistant) -> str:
    """A satellite's device; returns its id."""
    entry = MockConfigEntry(domain=SATELLITE_DOMAIN)
    entry.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(SATELLITE_DOMAIN, "kitchen")},
        name="Kitchen satellite",
    )
    return device.id


async def test_allowed_and_refused_calls_are_recorded_with_the_user(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    realtime_fake: FakeProvider,
    kitchen_light: str,
    hass_admin_user: MockUser,
    kitchen_satellite: str,
    loaded_entry: MockConfigEntry,
) -> None:
    """One turn: the light turns on (allowed), an unexposed light is refused. The bus
    carries both with every detail; the logbook shows both, in the user's name."""
    # The logbook's panel needs the frontend, whose files the test environment lacks.
    mock_component(hass, "frontend")
    assert await async_setup_component(hass, "logbook", {})
    records = async_capture_events(hass, EVENT_TOOL_CALL)
    start = dt_util.utcnow()
    realtime_fake.say_then_call(
        None,
        (TOOL_NAME, {"service": "light.turn_on", "entity_id": [kitchen_light]}),
        (TOOL_NAME, {"service": "light.turn_on", "entity_id": ["light.hallway_light"]}),
    )
    realtime_fake.respond_with(_answer_after_tools)
    context = Context(user_id=hass_admin_user.id)

    result = await conversation.async_converse(
        hass, "Lights on", None, context, agent_id=AGENT_ID, device_id=kitchen_satellite
    )

    assert hass.states.get(kitchen_light).state == STATE_ON
    assert hass.states.get("light.hallway_light").state == STATE_OFF
    allowed, refused = sorted(records, key=lambda event: event.data["outcome"])
    common = {
        "agent_id": AGENT_ID,
        "conversation_id": result.conversation_id,
        "user_id": hass_admin_user.id,
        "device_id": kitchen_satellite,
        "satellite_id": None,
        "tool_name": TOOL_NAME,
    }
    assert allowed.data == {
        **common,
        "tool_args": {"service": "light.turn_on", "entity_id": [kitchen_light]},
        "outcome": "done",
        "result": allowed.data["result"],
    }
    assert allowed.data["result"]["success"] is True
    assert refused.data == {
        **common,
        "tool_args": {"service": "light.turn_on", "entity_id": ["light.hallway_light"]},
        "outcome": "refused",
        "error": "EntityNotExposed",
        "error_text": refused.data["error_text"],
    }
    assert all(event.context.user_id == hass_admin_user.id for event in records)

    entries = await _logbook_entries(hass, hass_ws_client, start)
    assert [(entry["name"], entry["message"].split(" ")[0:2]) for entry in entries] == [
        ("Realtime Assist", ["called", TOOL_NAME]),
        ("Realtime Assist", ["was", "refused"]),
    ]
    for entry in entries:
        assert entry["context_user_id"] == hass_admin_user.id
        assert entry["entity_id"] == AGENT_ID
        assert entry["domain"] == DOMAIN
    assert "light.hallway_light" in entries[1]["message"]
    assert "not exposed" in entries[1]["message"]


async def test_the_record_is_bounded(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    kitchen_light: str,
    loaded_entry: MockConfigEntry,
) -> None:
    """A huge argument (the model's to choose) is recorded cut short, not whole."""
    records = async_capture_events(hass, EVENT_TOOL_CALL)
    realtime_fake.say_then_call(
        None,
        (
            TOOL_NAME,
            {"service": "light.turn_on", "entity_id": [kitchen_light], "data": {"x": "y" * 50_000}},
        ),
    )
    realtime_fake.respond_with(_answer_after_tools)

    await conversation.async_converse(hass, "Lights on", None, Context(), agent_id=AGENT_ID)

    [record] = records
    assert isinstance(record.data["tool_args"], str)
    assert len(record.data["tool_args"]) <= 2000
    assert record.data["outcome"] == "failed"


async def _logbook_entries(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, start: Any
) -> list[dict[str, Any]]:
    """Our entries of the logbook since `start`, as the frontend reads them."""
    await async_wait_recording_done(hass)
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {
            "type": "logbook/get_events",
            "start_time": start.isoformat(),
            "end_time": (dt_util.utcnow() + timedelta(seconds=1)).isoformat(),
        }
    )
    response = await client.receive_json()
    assert response["success"], response
    entries: list[dict[str, Any]] = response["result"]
    return [entry for entry in entries if entry.get("domain") == DOMAIN]
