"""Whose turn it is matters: the model and our action reach only what the user may.

A guest user may read and control the kitchen light and nothing else. The
home's thermostat and front door camera are exposed to Assist, so the model
knows them; the guest's turns still cannot change or look through them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import STATE_ON
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError, Unauthorized
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser

from custom_components.realtime_assist.camera import CAMERA_TOOL_NAME
from custom_components.realtime_assist.const import DOMAIN
from custom_components.realtime_assist.service_tool import TOOL_NAME
from tests.fakes.providers import FakeProvider, FakeSession, Reply
from tests.fixtures_entry import every_provider
from tests.fixtures_home import FRONT_DOOR_CAMERA, HomeCamera

AGENT_ID = "conversation.realtime_assist"

# Each test runs against each provider's fake (tests/fixtures_entry.py).
provider = every_provider


@pytest.fixture
def guest(hass: HomeAssistant, kitchen_light: str) -> MockUser:
    """A non-admin user who may read and control the kitchen light only.

    (And the helpers behind it: the template light acts on them in the user's context.)
    """
    user = MockUser(name="Guest").add_to_hass(hass)
    helpers = ("input_boolean.kitchen_light_power", "input_number.kitchen_light_level")
    user.mock_policy({"entities": {"entity_ids": dict.fromkeys((kitchen_light, *helpers), True)}})
    return user


def _answer_after_tools(text: str) -> Callable[[FakeSession], Reply | None]:
    def respond(conn: FakeSession) -> Reply | None:
        return Reply(text) if conn.last_input_was_tool_result() else None

    return respond


async def test_guest_turn_reaches_only_what_the_guest_may(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    kitchen_light: str,
    thermostat: str,
    front_door_camera: HomeCamera,
    guest: MockUser,
    loaded_entry: MockConfigEntry,
) -> None:
    """Home Assistant's intents, the call-service tool and the camera tool all run as the
    guest: the light they may use turns on; the thermostat and the camera stay out of reach."""
    realtime_fake.say_then_call(
        None,
        ("intent__HassTurnOn", {"name": "Kitchen light"}),
        ("intent__HassTurnOn", {"name": "Thermostat"}),
        (
            TOOL_NAME,
            {
                "service": "climate.set_temperature",
                "entity_id": [thermostat],
                "data": {"temperature": 28},
            },
        ),
        (CAMERA_TOOL_NAME, {"camera": FRONT_DOOR_CAMERA}),
    )
    realtime_fake.respond_with(_answer_after_tools("I could only turn on the kitchen light."))

    result = await conversation.async_converse(
        hass,
        "Make it cosy and show me the door",
        None,
        Context(user_id=guest.id),
        agent_id=AGENT_ID,
    )

    assert result.response.speech["plain"]["speech"] == "I could only turn on the kitchen light."
    assert hass.states.get(kitchen_light).state == STATE_ON
    assert hass.states.get(thermostat).attributes["temperature"] == 20
    assert hass.states.get(thermostat).state == "heat"
    conn = realtime_fake.connections[-1]
    light, intent_thermostat, service_thermostat, camera = conn.tool_results()
    assert "error" not in light, light
    assert "error" in intent_thermostat, intent_thermostat
    assert service_thermostat["error"] == "Unauthorized"
    assert camera["error"] == "Unauthorized"
    # The model never saw the door: no picture was taken, none was sent.
    assert front_door_camera.requests == []
    assert realtime_fake.protocol_errors == []


async def _ask(hass: HomeAssistant, context: Context) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN,
        "ask_about_camera",
        {"camera": FRONT_DOOR_CAMERA, "question": "Is anyone at the door?"},
        blocking=True,
        return_response=True,
        context=context,
    )
    assert response is not None
    return dict(response)


async def test_ask_about_camera_needs_read_permission(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    front_door_camera: HomeCamera,
    guest: MockUser,
    loaded_entry: MockConfigEntry,
) -> None:
    """An exposed camera the caller may not see: refused, nothing leaves the home."""
    connections = len(realtime_fake.connections)

    with pytest.raises(Unauthorized):
        await _ask(hass, Context(user_id=guest.id))

    assert front_door_camera.requests == []
    assert len(realtime_fake.connections) == connections


async def test_ask_about_camera_needs_exposure_unless_admin(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    front_door_camera: HomeCamera,
    hass_read_only_user: MockUser,
    hass_admin_user: MockUser,
    loaded_entry: MockConfigEntry,
) -> None:
    """A camera not exposed to Assist: a non-admin (who may read it) is refused with a
    translated reason and nothing is sent; an administrator may still ask."""
    async_expose_entity(hass, "conversation", FRONT_DOOR_CAMERA, False)
    connections = len(realtime_fake.connections)

    with pytest.raises(ServiceValidationError) as refused:
        await _ask(hass, Context(user_id=hass_read_only_user.id))

    assert "not exposed to Assist" in str(refused.value)
    assert front_door_camera.requests == []
    assert len(realtime_fake.connections) == connections

    realtime_fake.say("Nobody is at the door.")
    response = await _ask(hass, Context(user_id=hass_admin_user.id))
    assert response["answer"] == "Nobody is at the door."
    assert len(front_door_camera.requests) == 1
    assert realtime_fake.protocol_errors == []
