"""Tool specs are converted once and reused while the tools stay the same.

Home Assistant's real Assist API, built twice as two turns build it: the second
build converts nothing; exposing an entity adds tools, and only those are converted.
The call-service tool keeps its schema while its actions stay the same.

Every tool is declared under a function name the providers take, and the model's
call of that name runs the tool.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import STATE_ON
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import llm
from homeassistant.setup import async_setup_component
import probatio
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.realtime_assist.const import DOMAIN
from custom_components.realtime_assist.realtime.config import ToolSpec
from custom_components.realtime_assist.service_tool import TOOL_NAME
from custom_components.realtime_assist.tools import ToolSpecCache
from tests.fakes.providers import FakeProvider, FakeSession, Reply
from tests.fixtures_entry import ALL_PROVIDERS


@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The schemas `probatio.to_openapi` converts from now on (it still converts them)."""
    converted: list[Any] = []
    to_openapi = probatio.to_openapi

    def counting(schema: Any, **kwargs: Any) -> dict[str, Any]:
        converted.append(schema)
        return to_openapi(schema, **kwargs)

    monkeypatch.setattr(probatio, "to_openapi", counting)
    return converted


# A turn's context: ours, no user or device, in English.
LLM_CONTEXT = llm.LLMContext(DOMAIN, None, "en", conversation.DOMAIN, None)


async def _assist_api(hass: HomeAssistant) -> llm.APIInstance:
    """The Assist API as a turn gets it (a new instance, new tool objects)."""
    return await llm.async_get_api(hass, llm.LLM_API_ASSIST, LLM_CONTEXT)


async def test_the_same_tools_are_converted_once_and_new_ones_when_exposure_changes(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    kitchen_light: str,
    thermostat: str,
    conversions: list[Any],
) -> None:
    async_expose_entity(hass, conversation.DOMAIN, thermostat, False)
    cache = ToolSpecCache()

    first = cache.tool_specs(await _assist_api(hass))
    converted = len(conversions)
    again = cache.tool_specs(await _assist_api(hass))
    assert again == first
    assert all(new.parameters is old.parameters for new, old in zip(again, first, strict=True))
    assert len(conversions) == converted

    async_expose_entity(hass, conversation.DOMAIN, thermostat, True)
    with_thermostat = cache.tool_specs(await _assist_api(hass))
    added = {spec.name for spec in with_thermostat} - {spec.name for spec in first}
    assert "climate__HassClimateSetTemperature" in added
    assert converted < len(conversions) <= converted + len(added)
    unchanged = [spec for spec in with_thermostat if spec.name not in added]
    assert all(spec in first for spec in unchanged)


class _Tool(llm.Tool):
    def __init__(self, description: str, parameters: probatio.Schema) -> None:
        self.name = f"{DOMAIN}__test"
        self.integration = DOMAIN
        self.description = description
        self.parameters = parameters


async def test_a_tool_is_converted_again_when_what_the_conversion_reads_changes(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, conversions: list[Any]
) -> None:
    """Same parts in a new Schema, or a new description: reused. A new part: converted."""
    cache = ToolSpecCache()
    api = await _assist_api(hass)
    amount = probatio.Required("amount", description="How much.")
    up_to_ten = probatio.Range(min=0, max=10)

    def spec(description: str, parts: dict[Any, Any]) -> ToolSpec:
        tool = _Tool(description, probatio.Schema(parts))
        [converted] = cache.tool_specs(dataclasses.replace(api, tools=[tool]))
        return converted

    first = spec("Set it.", {amount: up_to_ten})
    assert spec("Set it.", {amount: up_to_ten}).parameters is first.parameters
    renamed = spec("Set it now.", {amount: up_to_ten})
    assert (renamed.description, renamed.parameters) == ("Set it now.", first.parameters)
    assert len(conversions) == 1

    described = spec("Set it.", {probatio.Required("amount", description="How many."): up_to_ten})
    assert described.parameters["properties"]["amount"]["description"] == "How many."
    assert len(conversions) == 2
    spec("Set it.", {amount: probatio.Range(min=0, max=20)})
    assert len(conversions) == 3


async def test_the_call_service_tool_is_converted_again_only_when_its_actions_change(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    kitchen_light: str,
    thermostat: str,
    conversions: list[Any],
) -> None:
    """Its description lists the exposed entities; its schema, the actions."""
    [agent] = loaded_entry.runtime_data.agents.values()

    async def call_service_spec() -> ToolSpec:
        prompt = await agent.async_turn_prompt(LLM_CONTEXT)
        [spec] = [spec for spec in prompt.config.tools if spec.name == TOOL_NAME]
        return spec

    first = await call_service_spec()
    converted = len(conversions)
    assert (await call_service_spec()).parameters is first.parameters
    assert len(conversions) == converted

    async_expose_entity(hass, conversation.DOMAIN, thermostat, False)
    without_thermostat = await call_service_spec()
    assert len(conversions) == converted + 1
    assert "climate.set_temperature" in first.parameters["properties"]["service"]["enum"]
    assert "climate.set_temperature" not in without_thermostat.description
    assert (
        "climate.set_temperature"
        not in (without_thermostat.parameters["properties"]["service"]["enum"])
    )


# A script's descriptive name: Home Assistant names its tool `script__` and this (70 characters).
MOVIE_NIGHT = "turn_on_the_living_room_lamps_and_start_the_movie_night_scene"
# What OpenAI takes (`^[a-zA-Z0-9_-]+$`, at most 64) and Gemini too (a letter or `_` first).
FUNCTION_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_-]{0,63}")


@pytest.fixture
async def movie_night(hass: HomeAssistant, hallway_light: str) -> str:
    """An exposed script with a long name; it turns on the (unexposed) hallway light."""
    assert await async_setup_component(
        hass,
        "script",
        {
            "script": {
                MOVIE_NIGHT: {
                    "sequence": [
                        {"action": "light.turn_on", "target": {"entity_id": hallway_light}}
                    ]
                }
            }
        },
    )
    await hass.async_block_till_done()
    async_expose_entity(hass, conversation.DOMAIN, f"script.{MOVIE_NIGHT}", True)
    return f"script.{MOVIE_NIGHT}"


async def test_every_tool_is_declared_under_a_name_the_providers_take(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, kitchen_light: str, movie_night: str
) -> None:
    """Names that fit stay as they are; a long one is cut to fit, the same in every turn."""
    own_names = [tool.name for tool in (await _assist_api(hass)).tools]
    assert f"script__{MOVIE_NIGHT}" in own_names
    cache = ToolSpecCache()

    declared = [spec.name for spec in cache.tool_specs(await _assist_api(hass))]

    assert all(FUNCTION_NAME.fullmatch(name) for name in declared), declared
    assert len(set(declared)) == len(declared) == len(own_names)
    assert {name for name in own_names if len(name) <= 64} <= set(declared)
    assert [spec.name for spec in cache.tool_specs(await _assist_api(hass))] == declared


@pytest.mark.parametrize("provider", ALL_PROVIDERS)
async def test_the_model_runs_a_long_named_script_by_its_declared_name(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
    movie_night: str,
    hallway_light: str,
) -> None:
    """OpenAI refuses the whole session's tools for one name past 64 characters."""

    def start_movie_night(conn: FakeSession) -> Reply:
        if conn.last_input_was_tool_result():
            return Reply("Enjoy the movie.")
        names = [name for name in conn.tool_names if name.startswith("script__turn_on_the")]
        return Reply(None, calls=((names[0], {}),)) if names else Reply("I can't do that.")

    realtime_fake.respond_with(start_movie_night)

    result = await conversation.async_converse(
        hass, "Movie night!", None, Context(), agent_id="conversation.realtime_assist"
    )

    assert hass.states.get(hallway_light).state == STATE_ON
    assert result.response.speech["plain"]["speech"] == "Enjoy the movie."
    assert realtime_fake.protocol_errors == []
