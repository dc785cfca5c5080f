"""The call-service tool against a real home: real entities, real services, real permissions."""

from __future__ import annotations

import json
import re
from typing import Any
from unittest.mock import patch

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import CONF_LLM_HASS_API, EVENT_CALL_SERVICE, Platform
from homeassistant.core import Context, Event, HomeAssistant
from homeassistant.exceptions import Unauthorized
from homeassistant.helpers import entity_registry as er, llm
from homeassistant.setup import async_setup_component
import probatio
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_mock_service,
)

from custom_components.realtime_assist.const import DOMAIN
from custom_components.realtime_assist.service_tool import (
    MAX_DESCRIPTION_CHARS,
    CallServiceTool,
    ServiceInfo,
    async_agent_service_tool,
    exposed_domains,
)


def llm_context(context: Context | None = None) -> llm.LLMContext:
    """The context a conversation agent hands its tools."""
    return llm.LLMContext(
        platform=DOMAIN,
        context=context or Context(),
        language="en",
        assistant="conversation",
        device_id=None,
    )


async def call(
    hass: HomeAssistant,
    tool: CallServiceTool,
    args: dict[str, Any],
    context: Context | None = None,
) -> llm.ToolResult:
    """Call the tool as Home Assistant's LLM API would."""
    result = await tool.async_call(
        hass, llm.ToolInput(tool_name=tool.name, tool_args=args), llm_context(context)
    )
    assert isinstance(result, llm.ToolResult)
    # Whatever the tool answers goes to the model as JSON.
    json.dumps(result.data)
    return result


def service_calls(hass: HomeAssistant) -> list[Event]:
    """Record every service call from now on (the event fires before the handler runs)."""
    events: list[Event] = []
    hass.bus.async_listen(EVENT_CALL_SERVICE, events.append)
    return events


async def test_allowed_service_changes_real_entity(hass: HomeAssistant, kitchen_light: str) -> None:
    """light.turn_on with a brightness turns the exposed light on at that brightness."""
    tool = await CallServiceTool.async_create(hass, None)
    result = await call(
        hass,
        tool,
        {"service": "light.turn_on", "entity_id": [kitchen_light], "data": {"brightness": 128}},
    )

    assert not result.error, result.data
    state = hass.states.get(kitchen_light)
    assert state is not None
    assert state.state == "on"
    assert state.attributes["brightness"] == 128
    assert hass.states.get("input_number.kitchen_light_level").state == "128.0"
    assert type(result.data["entities"][0]["attributes"]["color_mode"]) is str  # not ColorMode
    assert result.data == {
        "success": True,
        "service": "light.turn_on",
        "entities": [
            {
                "entity_id": kitchen_light,
                "name": "Kitchen light",
                "state": "on",
                "attributes": {"brightness": 128, "color_mode": "brightness"},
            }
        ],
    }

    # A single entity id as a string and a differently cased action are accepted too.
    result = await call(hass, tool, {"service": "Light.Turn_Off", "entity_id": kitchen_light})
    assert not result.error, result.data
    assert hass.states.get(kitchen_light).state == "off"


async def test_thermostat_set_temperature(hass: HomeAssistant, thermostat: str) -> None:
    """A climate action with fields changes the real thermostat."""
    tool = await CallServiceTool.async_create(hass, None)
    result = await call(
        hass,
        tool,
        {
            "service": "climate.set_temperature",
            "entity_id": [thermostat],
            "data": {"temperature": 22},
        },
    )
    assert not result.error, result.data
    assert hass.states.get(thermostat).attributes["temperature"] == 22
    (entity,) = result.data["entities"]
    assert entity["state"] == "heat"
    assert entity["attributes"]["temperature"] == 22
    assert entity["attributes"]["current_temperature"] == 18


async def test_disallowed_domain_is_refused(
    hass: HomeAssistant, kitchen_light: str, thermostat: str
) -> None:
    """An action of a domain the agent does not allow changes nothing."""
    tool = await CallServiceTool.async_create(hass, ["climate"])
    calls = service_calls(hass)
    result = await call(hass, tool, {"service": "light.turn_on", "entity_id": [kitchen_light]})

    assert result.error
    assert result.data["error"] == "ServiceNotAllowed"
    assert "light domain are not allowed" in result.data["error_text"]
    assert "climate.set_temperature" in result.data["error_text"]  # what the model may use
    assert hass.states.get(kitchen_light).state == "off"
    assert calls == []


async def test_unexposed_entity_is_refused(
    hass: HomeAssistant, kitchen_light: str, hallway_light: str
) -> None:
    """An entity that is not exposed is refused, even next to an exposed one."""
    tool = await CallServiceTool.async_create(hass, None)
    calls = service_calls(hass)
    for entity_ids in ([hallway_light], [kitchen_light, hallway_light]):
        result = await call(hass, tool, {"service": "light.turn_on", "entity_id": entity_ids})
        assert result.error
        assert result.data["error"] == "EntityNotExposed"
        assert hallway_light in result.data["error_text"]

    result = await call(hass, tool, {"service": "light.turn_on", "entity_id": ["light.attic"]})
    assert result.data["error"] == "EntityNotFound"

    assert hass.states.get(hallway_light).state == "off"
    assert hass.states.get(kitchen_light).state == "off"
    assert calls == []


async def test_entities_by_name_or_any_case(
    hass: HomeAssistant, kitchen_light: str, hallway_light: str
) -> None:
    """Assist tells the model names, not ids: an exposed entity's name works as entity_id."""
    tool = await CallServiceTool.async_create(hass, None)
    result = await call(hass, tool, {"service": "light.turn_on", "entity_id": ["kitchen LIGHT"]})
    assert not result.error, result.data
    assert result.data["entities"][0]["entity_id"] == kitchen_light
    result = await call(
        hass, tool, {"service": "light.turn_off", "entity_id": ["LIGHT.Kitchen_Light"]}
    )
    assert not result.error, result.data
    assert hass.states.get(kitchen_light).state == "off"

    # An unexposed entity is not found by its name.
    result = await call(hass, tool, {"service": "light.turn_on", "entity_id": ["Hallway light"]})
    assert result.data["error"] == "EntityNotFound"

    # Two exposed entities with the same name: the model has to pick.
    er.async_get(hass).async_update_entity(hallway_light, name="Kitchen light")
    async_expose_entity(hass, "conversation", hallway_light, True)
    result = await call(hass, tool, {"service": "light.turn_on", "entity_id": ["Kitchen light"]})
    assert result.data["error"] == "AmbiguousEntity"
    assert kitchen_light in result.data["error_text"]
    assert hallway_light in result.data["error_text"]
    assert hass.states.get(kitchen_light).state == "off"
    assert hass.states.get(hallway_light).state == "off"


async def test_entity_of_another_domain_is_refused(
    hass: HomeAssistant, kitchen_light: str, thermostat: str
) -> None:
    """Actions only act on entities of their own domain."""
    tool = await CallServiceTool.async_create(hass, None)
    result = await call(hass, tool, {"service": "light.turn_on", "entity_id": [thermostat]})
    assert result.data["error"] == "WrongDomain"


async def test_services_without_entity_target_are_refused(
    hass: HomeAssistant, kitchen_light: str
) -> None:
    """System actions and actions without an entity target never run, even if allowed."""
    # Replace the real restart so that a failing check could not restart anything.
    restarts = async_mock_service(hass, "homeassistant", "restart")
    tool = await CallServiceTool.async_create(hass, ["homeassistant", "template", "light"])
    assert "homeassistant.restart" not in tool.services
    assert "template.reload" not in tool.services
    calls = service_calls(hass)

    result = await call(
        hass, tool, {"service": "homeassistant.restart", "entity_id": [kitchen_light]}
    )
    assert result.error
    assert result.data["error"] == "ServiceNotAllowed"
    assert "system action" in result.data["error_text"]

    result = await call(hass, tool, {"service": "template.reload", "entity_id": [kitchen_light]})
    assert result.error
    assert "only actions that target exposed entities" in result.data["error_text"]

    result = await call(hass, tool, {"service": "light.explode", "entity_id": [kitchen_light]})
    assert result.data["error"] == "ServiceNotFound"

    assert restarts == []
    assert calls == []


async def test_targets_in_data_are_refused(hass: HomeAssistant, kitchen_light: str) -> None:
    """Areas, devices and labels could reach unexposed entities: only entity_id targets."""
    tool = await CallServiceTool.async_create(hass, None)
    result = await call(
        hass,
        tool,
        {"service": "light.turn_on", "entity_id": [kitchen_light], "data": {"area_id": "hall"}},
    )
    assert result.data["error"] == "TargetNotAllowed"
    assert hass.states.get(kitchen_light).state == "off"


@pytest.fixture
async def players(hass: HomeAssistant, ha_core: None) -> None:
    """Home Assistant's demo media players; only `media_player.walkman` (a music player
    that can group) is exposed. `media_player.kitchen` is the same kind, not exposed."""
    with patch(
        "homeassistant.components.demo.COMPONENTS_WITH_CONFIG_ENTRY_DEMO_PLATFORM",
        [Platform.MEDIA_PLAYER],
    ):
        demo = MockConfigEntry(domain="demo")
        demo.add_to_hass(hass)
        assert await hass.config_entries.async_setup(demo.entry_id)
        await hass.async_block_till_done()
    for entity_id in hass.states.async_entity_ids():
        async_expose_entity(hass, "conversation", entity_id, entity_id == "media_player.walkman")


async def test_entities_in_fields_are_checked_like_targets(
    hass: HomeAssistant, players: None
) -> None:
    """`media_player.join` names players in `group_members`: an unexposed player is not
    pulled into the group; once exposed, it is (by its name, too)."""
    tool = await CallServiceTool.async_create(hass, None)
    join = {"service": "media_player.join", "entity_id": ["media_player.walkman"]}

    result = await call(hass, tool, join | {"data": {"group_members": ["media_player.kitchen"]}})
    await hass.async_block_till_done()

    assert hass.states.get("media_player.walkman").attributes["group_members"] == [], result.data
    assert result.data.get("error") == "EntityNotExposed", result.data
    assert result.data["refused"] is True

    # Nor is it found by its name.
    result = await call(hass, tool, join | {"data": {"group_members": "Kitchen"}})
    assert result.data["error"] == "EntityNotFound", result.data

    async_expose_entity(hass, "conversation", "media_player.kitchen", True)
    result = await call(hass, tool, join | {"data": {"group_members": ["Kitchen"]}})
    await hass.async_block_till_done()

    assert not result.error, result.data
    assert hass.states.get("media_player.walkman").attributes["group_members"] == [
        "media_player.walkman",
        "media_player.kitchen",
    ]


async def test_invalid_arguments_and_service_errors(
    hass: HomeAssistant, kitchen_light: str, thermostat: str
) -> None:
    """Bad arguments, invalid fields and errors from the action come back as error results."""
    tool = await CallServiceTool.async_create(hass, None)

    result = await call(hass, tool, {"service": "light.turn_on"})
    assert result.data["error"] == "InvalidArguments"
    result = await call(hass, tool, {"service": "light.turn_on", "entity_id": []})
    assert result.data["error"] == "NoTarget"

    # The action's own schema rejects the field.
    result = await call(
        hass,
        tool,
        {"service": "light.turn_on", "entity_id": [kitchen_light], "data": {"brightness": "max"}},
    )
    assert result.error
    assert result.data["error"] == "InvalidData"
    assert result.data["error_text"].startswith("light.turn_on rejected the data: ")
    assert "brightness" in result.data["error_text"]
    assert hass.states.get(kitchen_light).state == "off"

    # The entity refuses the value (ServiceValidationError with a translated message).
    result = await call(
        hass,
        tool,
        {
            "service": "climate.set_temperature",
            "entity_id": [thermostat],
            "data": {"temperature": 99},
        },
    )
    assert result.error
    assert result.data["error"] == "ServiceValidationError"
    assert "99" in result.data["error_text"]
    assert hass.states.get(thermostat).attributes["temperature"] == 20


async def test_description_lists_allowed_services_with_fields(
    hass: HomeAssistant, kitchen_light: str, hallway_light: str, thermostat: str
) -> None:
    """The description names each allowed action with the fields its entities support."""
    tool = await CallServiceTool.async_create(hass, None)
    description = tool.description
    assert description is not None
    assert len(description) <= MAX_DESCRIPTION_CHARS
    lines = {line.split("(")[0].removeprefix("- "): line for line in description.splitlines()}

    assert set(tool.services) == {
        "light.turn_on",
        "light.turn_off",
        "light.toggle",
        "climate.turn_on",
        "climate.turn_off",
        "climate.toggle",
        "climate.set_hvac_mode",
        "climate.set_temperature",
    }
    for name in tool.services:
        assert name in lines
    # The kitchen light dims but has no colors; the thermostat has a single target.
    assert "brightness_pct" in lines["light.turn_on"]
    assert "rgb_color" not in lines["light.turn_on"]
    assert lines["climate.set_temperature"].startswith(
        "- climate.set_temperature(temperature, hvac_mode): Sets the target temperature"
    )
    # The entities to target, by id and name; unexposed ones are not listed.
    assert "\n- light.kitchen_light: Kitchen light" in description
    assert "\n- climate.thermostat: Thermostat" in description
    assert hallway_light not in description
    # Services the exposed entities do not support, and other domains, are left out.
    assert "set_humidity" not in description
    assert "input_boolean" not in description
    assert "homeassistant." not in description


def test_description_stays_within_budget() -> None:
    """A big home still gets a bounded description; every action stays callable."""
    services = [
        ServiceInfo(f"domain{d}", f"service{n}", ("field_a", "field_b"), "Does a thing.", False)
        for d in range(20)
        for n in range(10)
    ]
    targets = {f"domain{d}.entity_{n}": f"Entity {n}" for d in range(20) for n in range(50)}
    tool = CallServiceTool({f"domain{d}" for d in range(20)}, services, targets)
    assert tool.description is not None
    assert len(tool.description) <= MAX_DESCRIPTION_CHARS
    assert "- domain0.service0(field_a, field_b): Does a thing." in tool.description
    # Past the actions' share they are only in the parameter's list, with all the others.
    assert "more actions: see the service parameter." in tool.description
    assert "domain19.service9" not in tool.description
    assert len(tool.services) == 200
    schema = probatio.to_openapi(tool.parameters, openapi_version="3.1.0")
    assert len(schema["properties"]["service"]["enum"]) == 200
    # Entities are listed as far as the budget goes; the rest are counted.
    assert "\n- domain0.entity_0: Entity 0" in tool.description
    listed = tool.description.count(": Entity ")
    more = re.search(r"\((\d+) more; entity_id also accepts an entity's name\.\)", tool.description)
    assert more is not None
    assert listed + int(more[1]) == len(targets)


async def test_default_domains_follow_exposed_entities(
    hass: HomeAssistant, kitchen_light: str, hallway_light: str, thermostat: str
) -> None:
    """Without a setting the tool offers the domains of the exposed entities, as they change."""
    assert exposed_domains(hass) == {"light", "climate"}
    tool = await CallServiceTool.async_create(hass, None)
    assert tool.domains == {"light", "climate"}
    # An empty setting means the same as none.
    assert (await CallServiceTool.async_create(hass, [])).domains == {"light", "climate"}

    async_expose_entity(hass, "conversation", thermostat, False)
    assert exposed_domains(hass) == {"light"}
    tool = await CallServiceTool.async_create(hass, None)
    assert {name.split(".")[0] for name in tool.services} == {"light"}

    async_expose_entity(hass, "conversation", kitchen_light, False)
    tool = await CallServiceTool.async_create(hass, None)
    assert tool.services == {}
    assert tool.domains == set()
    # Allowing a domain does not reach entities that are not exposed.
    assert (await CallServiceTool.async_create(hass, ["light"])).services == {}


async def test_parameters_export_to_openapi(
    hass: HomeAssistant, kitchen_light: str, thermostat: str
) -> None:
    """The tool converts to a provider function the way the agent converts every tool."""
    tool = await CallServiceTool.async_create(hass, None)
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", tool.name)
    assert tool.name == "realtime_assist__call_service"
    assert tool.integration == DOMAIN

    schema = probatio.to_openapi(
        tool.parameters, custom_serializer=llm.selector_serializer, openapi_version="3.1.0"
    )
    json.dumps(schema)
    assert schema["type"] == "object"
    assert sorted(schema["required"]) == ["entity_id", "service"]
    assert not {"oneOf", "anyOf", "allOf", "enum", "not"} & set(schema)
    properties = schema["properties"]
    assert properties["service"]["type"] == "string"
    assert properties["service"]["enum"] == list(tool.services)
    assert properties["entity_id"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": properties["entity_id"]["description"],
    }
    assert properties["data"]["type"] == "object"

    # With nothing to offer the schema still exports (no empty enum).
    empty = await CallServiceTool.async_create(hass, ["switch"])
    assert empty.services == {}
    schema = probatio.to_openapi(empty.parameters, openapi_version="3.1.0")
    assert schema["properties"]["service"] == {
        "type": "string",
        "description": "The action to call, as domain.service.",
    }


async def test_tool_runs_through_an_llm_api_instance(
    hass: HomeAssistant, kitchen_light: str
) -> None:
    """Added to an API instance, Home Assistant's tool dispatch reaches the tool."""
    assert await async_setup_component(hass, "llm", {})
    tool = await CallServiceTool.async_create(hass, None)
    api = await llm.async_get_api(hass, llm.LLM_API_ASSIST, llm_context())
    instance = llm.APIInstance(
        api=api.api, api_prompt=api.api_prompt, llm_context=api.llm_context, tools=[tool]
    )
    result = await instance.async_call_tool(
        llm.ToolInput(
            tool_name="realtime_assist__call_service",
            tool_args={"service": "light.turn_on", "entity_id": [kitchen_light]},
        )
    )
    assert not result.error
    assert hass.states.get(kitchen_light).state == "on"


async def test_user_permissions_apply(
    hass: HomeAssistant,
    kitchen_light: str,
    hass_read_only_user: MockUser,
    hass_admin_user: MockUser,
) -> None:
    """A user who may only read entities cannot control them through the model."""
    tool = await CallServiceTool.async_create(hass, None)
    read_only = Context(user_id=hass_read_only_user.id)

    result = await call(
        hass, tool, {"service": "light.turn_on", "entity_id": [kitchen_light]}, read_only
    )
    assert result.error
    assert result.data["error"] == "Unauthorized"
    assert hass.states.get(kitchen_light).state == "off"

    # Home Assistant itself refuses the same call for that user.
    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            "light", "turn_on", {"entity_id": kitchen_light}, blocking=True, context=read_only
        )

    result = await call(
        hass,
        tool,
        {"service": "light.turn_on", "entity_id": [kitchen_light]},
        Context(user_id=hass_admin_user.id),
    )
    assert not result.error
    assert hass.states.get(kitchen_light).state == "on"


@pytest.mark.parametrize(
    ("apis", "offered"),
    [
        ([llm.LLM_API_ASSIST], True),
        (llm.LLM_API_ASSIST, True),  # older entries store one API as a string
        ([llm.LLM_API_ASSIST, "other_api"], True),
        (["other_api"], False),
        ([], False),
    ],
)
async def test_tool_comes_only_with_the_assist_api(
    hass: HomeAssistant, kitchen_light: str, apis: list[str] | str, offered: bool
) -> None:
    """The tool reaches what is exposed to Assist: without the Assist API it is not offered."""
    tool = await async_agent_service_tool(hass, {CONF_LLM_HASS_API: apis}, "en")
    assert (tool is not None) is offered
