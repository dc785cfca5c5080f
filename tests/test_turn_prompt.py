"""Home Assistant's prompt and tools are built once per turn, and each turn builds its own.

Real pipeline runs: speech-to-text configures the session with the prompt and
tools (the model answers the moment the user stops), and the conversation
stage of that turn gets the same back instead of building them again. Home
Assistant's `llm.async_get_api` is wrapped to count its calls; it still builds.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers import llm
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.realtime_assist.const import EVENT_TOOL_CALL
from custom_components.realtime_assist.service_tool import TOOL_NAME
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.providers import FakeProvider, FakeSession, Reply
from tests.fixtures_entry import every_provider
from tests.pipeline_helpers import PipelineRun, our_pipeline, run_pipeline

UTTERANCE = silence(0.2, 16000) + speech_like(1.0, 16000) + silence(1.0, 16000)
CLIMATE_TOOL = "climate__HassClimateSetTemperature"

provider = every_provider


@pytest.fixture
def api_builds(monkeypatch: pytest.MonkeyPatch) -> list[llm.LLMContext]:
    """The contexts Home Assistant's LLM API is built for from now on (it still builds)."""
    built: list[llm.LLMContext] = []
    async_get_api = llm.async_get_api

    async def counting(hass: HomeAssistant, api_id: Any, llm_context: llm.LLMContext) -> Any:
        built.append(llm_context)
        return await async_get_api(hass, api_id, llm_context)

    monkeypatch.setattr(llm, "async_get_api", counting)
    return built


def _answer_after_tools(conn: FakeSession) -> Reply | None:
    return Reply("Done.") if conn.last_input_was_tool_result() else None


def _conversation_id(run: PipelineRun) -> str:
    return str(run.one("intent-end")["intent_output"]["conversation_id"])


def _speech(run: PipelineRun) -> str:
    return str(run.one("intent-end")["intent_output"]["response"]["speech"]["plain"]["speech"])


async def test_each_turn_builds_its_prompt_and_tools_once(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
    kitchen_light: str,
    thermostat: str,
    api_builds: list[llm.LLMContext],
) -> None:
    """A spoken turn with a tool call, then one after an exposure change, then a typed one."""
    async_expose_entity(hass, conversation.DOMAIN, thermostat, False)
    records = async_capture_events(hass, EVENT_TOOL_CALL)
    pipeline = our_pipeline(hass, loaded_entry)
    realtime_fake.hear("Turn on the kitchen light")
    realtime_fake.say_then_call(
        None, (TOOL_NAME, {"service": "light.turn_on", "entity_id": [kitchen_light]})
    )
    realtime_fake.respond_with(_answer_after_tools)

    first = await run_pipeline(hass_ws_client, pipeline.id, UTTERANCE)

    assert "error" not in first.types, first.of_type("error")
    assert len(api_builds) == 1
    # The tools built at speech-to-text ran the call, in the conversation's name.
    assert hass.states.get(kitchen_light).state == STATE_ON
    conversation_id = _conversation_id(first)
    [record] = records
    assert (record.data["outcome"], record.data["conversation_id"]) == ("done", conversation_id)
    session = realtime_fake.connections[-1]
    assert CLIMATE_TOOL not in session.tool_names
    assert "Thermostat" not in session.instructions

    # Exposure changes between turns: the next turn's prompt and tools have it.
    async_expose_entity(hass, conversation.DOMAIN, thermostat, True)
    realtime_fake.respond_with(None)
    realtime_fake.hear("Is the heating on?")
    realtime_fake.say("It is.")
    second = await run_pipeline(
        hass_ws_client, pipeline.id, UTTERANCE, conversation_id=conversation_id
    )

    assert _speech(second) == "It is."
    assert len(api_builds) == 2
    session = realtime_fake.connections[-1]
    assert CLIMATE_TOOL in session.tool_names
    assert "Thermostat" in session.instructions

    # A typed turn (no speech-to-text) builds its own, once.
    realtime_fake.say("Twenty degrees.")
    typed = await run_pipeline(
        hass_ws_client, pipeline.id, text="How warm is it?", conversation_id=conversation_id
    )

    assert _speech(typed) == "Twenty degrees."
    assert len(api_builds) == 3
    assert realtime_fake.protocol_errors == []
