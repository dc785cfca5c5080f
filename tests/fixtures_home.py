"""Fixtures for a small home: real Home Assistant entities for the model to control.

A pytest plugin (loaded by tests/conftest.py). Every entity is a real entity
of a core integration with no requirements: template lights backed by
`input_boolean` / `input_number` helpers and a `generic_thermostat`. Service
calls on them run Home Assistant's whole path (schemas, permissions, entity
services), and their state changes like a real device's would.

Exposure to the `conversation` assistant is set explicitly for every entity
of the home, whichever fixture a test asks for, so a test never depends on the
default exposure rules (which would expose both lights and the thermostat):

| entity                              | exposed to conversation |
|-------------------------------------|-------------------------|
| light.kitchen_light                 | yes                     |
| light.hallway_light                 | no                      |
| climate.thermostat                  | yes (`thermostat` only) |
| input_boolean.* / input_number.*    | no (helpers backing the above) |
| sensor.thermostat_temperature       | no                      |
| camera.front_door                   | yes (`front_door_camera` only; area Porch) |

The camera is the exception to "core integrations": a real `camera.Camera`
entity served by a test integration's platform (`HomeCamera`), since no core
camera serves a picture without a network or a file.
"""

from __future__ import annotations

import asyncio
import io
import time

from homeassistant.components.camera import Camera
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar, entity_registry as er
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.typing import ConfigType, DiscoveryInfoType
from homeassistant.setup import async_setup_component
from PIL import Image
import pytest
from pytest_homeassistant_custom_component.common import (
    MockModule,
    MockPlatform,
    mock_integration,
    mock_platform,
)

ASSISTANT = "conversation"

KITCHEN_LIGHT = "light.kitchen_light"
HALLWAY_LIGHT = "light.hallway_light"
THERMOSTAT = "climate.thermostat"
THERMOSTAT_HEATER = "input_boolean.thermostat_heater"
THERMOSTAT_SENSOR = "sensor.thermostat_temperature"
FRONT_DOOR_CAMERA = "camera.front_door"
CAMERA_AREA = "Porch"
CAMERA_FRAME_SIZE = (1920, 1080)
# Colours of the front door camera's picture: its left half and its right half.
CAMERA_LEFT_COLOUR = (200, 30, 30)
CAMERA_RIGHT_COLOUR = (30, 30, 200)
# A test integration serving the camera as a YAML platform (no config entry needed).
CAMERA_TEST_DOMAIN = "home_camera_test"


def _template_light(object_id: str, name: str) -> dict[str, object]:
    """A dimmable light whose on/off and brightness live in two helpers."""
    power = f"input_boolean.{object_id}_power"
    level = f"input_number.{object_id}_level"
    return {
        "name": name,
        "unique_id": f"home_{object_id}",
        "state": f"{{{{ is_state('{power}', 'on') }}}}",
        "level": f"{{{{ states('{level}') | int(0) }}}}",
        "turn_on": {"action": "input_boolean.turn_on", "target": {"entity_id": power}},
        "turn_off": {"action": "input_boolean.turn_off", "target": {"entity_id": power}},
        # Template lights run only this script when a brightness is given.
        "set_level": [
            {
                "action": "input_number.set_value",
                "target": {"entity_id": level},
                "data": {"value": "{{ brightness }}"},
            },
            {"action": "input_boolean.turn_on", "target": {"entity_id": power}},
        ],
    }


@pytest.fixture
async def home(hass: HomeAssistant, ha_core: None) -> None:
    """Set up the whole home's helpers and lights, with their exposure settled.

    Tests normally ask for the entity fixtures below instead. Both lights start
    off at brightness 0; nothing is exposed here except light.kitchen_light.
    """
    helpers = ("kitchen_light", "hallway_light")
    assert await async_setup_component(
        hass,
        "input_boolean",
        {
            "input_boolean": {
                **{f"{light}_power": {"name": f"{light} power"} for light in helpers},
                "thermostat_heater": {"name": "Thermostat heater"},
            }
        },
    )
    assert await async_setup_component(
        hass,
        "input_number",
        {
            "input_number": {
                **{
                    f"{light}_level": {
                        "name": f"{light} level",
                        "min": 0,
                        "max": 255,
                        "step": 1,
                        "initial": 0,
                    }
                    for light in helpers
                },
                "thermostat_temperature_value": {
                    "name": "Thermostat temperature value",
                    "min": -20,
                    "max": 50,
                    "step": 0.5,
                    "initial": 18,
                },
            }
        },
    )
    assert await async_setup_component(
        hass,
        "template",
        {
            "template": [
                {
                    "light": [
                        _template_light("kitchen_light", "Kitchen light"),
                        _template_light("hallway_light", "Hallway light"),
                    ],
                    "sensor": [
                        {
                            "name": "Thermostat temperature",
                            "unique_id": "home_thermostat_temperature",
                            "state": "{{ states('input_number.thermostat_temperature_value') }}",
                            "unit_of_measurement": "°C",
                        }
                    ],
                }
            ]
        },
    )
    await hass.async_block_till_done()
    assert hass.states.get(KITCHEN_LIGHT) is not None
    assert hass.states.get(HALLWAY_LIGHT) is not None

    for entity_id in hass.states.async_entity_ids():
        async_expose_entity(hass, ASSISTANT, entity_id, entity_id == KITCHEN_LIGHT)


@pytest.fixture
async def kitchen_light(home: None) -> str:
    """`light.kitchen_light`: a dimmable light, off, exposed to the conversation assistant.

    Backed by `input_boolean.kitchen_light_power` (on/off) and
    `input_number.kitchen_light_level` (brightness 0-255); `light.turn_on`
    with a brightness sets both. Returns the entity id.
    """
    return KITCHEN_LIGHT


@pytest.fixture
async def hallway_light(home: None) -> str:
    """`light.hallway_light`: the same kind of light, off, NOT exposed to conversation.

    Backed by `input_boolean.hallway_light_power` and
    `input_number.hallway_light_level`. Returns the entity id.
    """
    return HALLWAY_LIGHT


@pytest.fixture
async def thermostat(hass: HomeAssistant, home: None) -> str:
    """`climate.thermostat`: a heating thermostat, exposed to the conversation assistant.

    A `generic_thermostat` in `heat` mode with a target of 20 °C, switching
    `input_boolean.thermostat_heater` by the temperature of
    `sensor.thermostat_temperature` (18 °C, from
    `input_number.thermostat_temperature_value`). `climate.set_temperature`
    and `climate.set_hvac_mode` work on it. Returns the entity id.
    """
    assert await async_setup_component(
        hass,
        "climate",
        {
            "climate": {
                "platform": "generic_thermostat",
                "name": "Thermostat",
                "unique_id": "home_thermostat",
                "heater": THERMOSTAT_HEATER,
                "target_sensor": THERMOSTAT_SENSOR,
                "initial_hvac_mode": "heat",
                "target_temp": 20,
                "min_temp": 7,
                "max_temp": 30,
            }
        },
    )
    await hass.async_block_till_done()
    assert hass.states.get(THERMOSTAT) is not None
    async_expose_entity(hass, ASSISTANT, THERMOSTAT, True)
    return THERMOSTAT


def camera_frame(size: tuple[int, int] = CAMERA_FRAME_SIZE) -> bytes:
    """A JPEG as a camera sends it: left half `CAMERA_LEFT_COLOUR` (red), right half
    `CAMERA_RIGHT_COLOUR` (blue), so a test can tell the picture apart after scaling."""
    width, height = size
    image = Image.new("RGB", size, CAMERA_RIGHT_COLOUR)
    image.paste(CAMERA_LEFT_COLOUR, (0, 0, width // 2, height))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


class HomeCamera(Camera):
    """A real camera entity serving a 1920x1080 JPEG; tests can break it.

    - `image = None`: the camera answers without a picture (Home Assistant: "Unable
      to get image").
    - `error = SomeException(...)`: fetching the picture raises it (with
      `error_count = n`: only the next n pictures do).
    - `delay_s`: each picture takes this long.
    - `go_offline()`: the entity becomes unavailable (and has no picture).
    `requests` holds the `time.monotonic()` of every picture Home Assistant asked for.
    """

    _attr_name = "Front door"
    _attr_unique_id = "home_front_door_camera"

    def __init__(self) -> None:
        super().__init__()
        self.image: bytes | None = camera_frame()
        self.error: Exception | None = None
        self.error_count: int | None = None
        self.delay_s = 0.0
        self.requests: list[float] = []
        self._requested = asyncio.Condition()

    async def wait_for_requests(self, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Until Home Assistant has asked for `count` pictures in all."""
        async with asyncio.timeout(timeout), self._requested:
            await self._requested.wait_for(lambda: len(self.requests) >= count)

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        self.requests.append(time.monotonic())
        async with self._requested:
            self._requested.notify_all()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error is not None and self.error_count != 0:
            if self.error_count is not None:
                self.error_count -= 1
            raise self.error
        return self.image if self.available else None

    def go_offline(self) -> None:
        self._attr_available = False
        self.async_write_ha_state()


@pytest.fixture
async def front_door_camera(hass: HomeAssistant, home: None) -> HomeCamera:
    """`camera.front_door`: a real camera entity in the area Porch, exposed to conversation.

    Registered in the entity registry (it has a unique id) by a test integration's
    camera platform. Returns the entity, so a test can break it (see `HomeCamera`).
    """
    entity = HomeCamera()

    async def setup_platform(
        hass: HomeAssistant,
        config: ConfigType,
        async_add_entities: AddEntitiesCallback,
        discovery_info: DiscoveryInfoType | None = None,
    ) -> None:
        async_add_entities([entity])

    mock_integration(hass, MockModule(CAMERA_TEST_DOMAIN))
    mock_platform(
        hass, f"{CAMERA_TEST_DOMAIN}.camera", MockPlatform(async_setup_platform=setup_platform)
    )
    assert await async_setup_component(
        hass, "camera", {"camera": [{"platform": CAMERA_TEST_DOMAIN}]}
    )
    await hass.async_block_till_done()
    assert entity.entity_id == FRONT_DOOR_CAMERA
    area = ar.async_get(hass).async_get_or_create(CAMERA_AREA)
    er.async_get(hass).async_update_entity(FRONT_DOOR_CAMERA, area_id=area.id)
    async_expose_entity(hass, ASSISTANT, FRONT_DOOR_CAMERA, True)
    return entity
