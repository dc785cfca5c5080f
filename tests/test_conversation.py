"""The conversation agent through Home Assistant, against each provider's fake server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import time
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Context, Event, HomeAssistant, callback
from homeassistant.helpers import chat_session, llm
from homeassistant.setup import async_setup_component
import probatio
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.realtime_assist.const import CONF_IDLE_TIMEOUT, CONF_TOOL_TIMEOUT, DOMAIN
from tests.fakes.providers import FakeProvider, FakeSession, Reply
from tests.fixtures_entry import every_provider

AGENT_ID = "conversation.realtime_assist"
TEST_API_ID = "realtime_assist_test_tools"

# Each test runs against each provider's fake (tests/fixtures_entry.py).
provider = every_provider


def _update_agent(hass: HomeAssistant, entry: MockConfigEntry, **options: Any) -> None:
    """Change the default agent's settings (before the entry is set up)."""
    subentry = next(iter(entry.subentries.values()))
    hass.config_entries.async_update_subentry(entry, subentry, data={**subentry.data, **options})


async def _converse(
    hass: HomeAssistant, text: str, conversation_id: str | None = None, **kwargs: Any
) -> conversation.ConversationResult:
    return await conversation.async_converse(
        hass, text, conversation_id, Context(), agent_id=AGENT_ID, **kwargs
    )


def _session_connection(fake: FakeProvider) -> FakeSession:
    """The connection of the conversation's session (setup's key check opened the first)."""
    return fake.connections[-1]


def _answer_after_tools(text: str) -> Callable[[FakeSession], Reply | None]:
    """A model that confirms once it has the results of its tool calls."""

    def respond(conn: FakeSession) -> Reply | None:
        return Reply(text) if conn.last_input_was_tool_result() else None

    return respond


async def test_text_question_streams_the_answer_into_the_chat_log(
    hass: HomeAssistant, realtime_fake: FakeProvider, loaded_entry: MockConfigEntry
) -> None:
    answer = "Paris is the capital of France, and it is lovely in the spring."
    realtime_fake.chunk_delay_s = 0.01
    realtime_fake.say(answer)
    deltas: list[tuple[str, bool]] = []

    def listener(_chat_log: conversation.ChatLog, delta: dict[str, Any]) -> None:
        if content := delta.get("content"):
            deltas.append((content, _session_connection(realtime_fake).is_replying()))

    # As the Assist pipeline does: it listens to the chat log while the agent runs.
    with (
        chat_session.async_get_chat_session(hass) as session,
        conversation.async_get_chat_log(hass, session, None, chat_log_delta_listener=listener),
    ):
        result = await _converse(hass, "What is the capital of France?", session.conversation_id)

    assert result.response.speech["plain"]["speech"] == answer
    assert "".join(text for text, _ in deltas) == answer
    assert len(deltas) > 3
    # The first words reached the chat log while the model was still answering.
    assert deltas[0][1] is True
    assert _session_connection(realtime_fake).last_user_text() == "What is the capital of France?"
    assert realtime_fake.protocol_errors == []


async def test_turn_on_the_kitchen_light(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    kitchen_light: str,
    loaded_entry: MockConfigEntry,
) -> None:
    """The model calls the Assist tool; the real light turns on; the model confirms."""
    realtime_fake.say_then_call(
        "Turning on the kitchen light.", ("intent__HassTurnOn", {"name": "Kitchen Light"})
    )
    realtime_fake.respond_with(_answer_after_tools("The kitchen light is on."))
    assert hass.states.get(kitchen_light).state == STATE_OFF

    result = await _converse(hass, "Turn on the kitchen light")

    assert hass.states.get(kitchen_light).state == STATE_ON
    outputs = _session_connection(realtime_fake).tool_results()
    assert outputs[0]["data"]["success"][0]["id"] == kitchen_light
    assert result.response.speech["plain"]["speech"] == "The kitchen light is on."
    tools = _session_connection(realtime_fake).tool_names
    assert {"intent__HassTurnOn", "realtime_assist__call_service"} <= tools
    assert realtime_fake.protocol_errors == []


async def test_unexposed_light_is_not_touched(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    hallway_light: str,
    loaded_entry: MockConfigEntry,
) -> None:
    realtime_fake.say_then_call(None, ("intent__HassTurnOn", {"name": "Hallway Light"}))
    realtime_fake.respond_with(_answer_after_tools("I can't control the hallway light."))

    result = await _converse(hass, "Turn on the hallway light")

    assert hass.states.get(hallway_light).state == STATE_OFF
    [output] = _session_connection(realtime_fake).tool_results()
    assert "error" in output
    assert result.response.speech["plain"]["speech"] == "I can't control the hallway light."
    assert realtime_fake.protocol_errors == []


@pytest.fixture
async def slow_scripts(hass: HomeAssistant, ha_core: None) -> list[tuple[str, str, float]]:
    """Two exposed scripts that take a while; each run logs (name, phase, time)."""
    log: list[tuple[str, str, float]] = []
    scripts = {
        name: {
            "alias": name.replace("_", " ").title(),
            "sequence": [
                {"event": "script_phase", "event_data": {"name": name, "phase": "start"}},
                {"delay": {"milliseconds": 300}},
                {"event": "script_phase", "event_data": {"name": name, "phase": "end"}},
            ],
        }
        for name in ("open_blinds", "start_coffee")
    }
    assert await async_setup_component(hass, "script", {"script": scripts})

    @callback
    def record(event: Event) -> None:
        log.append((event.data["name"], event.data["phase"], time.monotonic()))

    hass.bus.async_listen("script_phase", record)
    for name in scripts:
        async_expose_entity(hass, "conversation", f"script.{name}", True)
    return log


async def test_two_tool_calls_in_one_response_run_concurrently(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    slow_scripts: list[tuple[str, str, float]],
    loaded_entry: MockConfigEntry,
) -> None:
    realtime_fake.say_then_call(
        "Opening the blinds and starting the coffee.",
        ("script__open_blinds", {}),
        ("script__start_coffee", {}),
    )
    realtime_fake.respond_with(_answer_after_tools("Done."))

    result = await _converse(hass, "Good morning routine please")
    await hass.async_block_till_done()

    times = {(name, phase): at for name, phase, at in slow_scripts}
    assert set(times) == {
        ("open_blinds", "start"),
        ("open_blinds", "end"),
        ("start_coffee", "start"),
        ("start_coffee", "end"),
    }
    # Both started before either finished: they overlapped.
    assert max(times["open_blinds", "start"], times["start_coffee", "start"]) < min(
        times["open_blinds", "end"], times["start_coffee", "end"]
    )
    assert len(_session_connection(realtime_fake).tool_results()) == 2
    assert result.response.speech["plain"]["speech"] == "Done."
    assert realtime_fake.protocol_errors == []


class _TroubleTool(llm.Tool):
    """A tool that hangs or breaks, as a faulty integration's might."""

    parameters = probatio.Schema({})

    def __init__(self, name: str, behaviour: str) -> None:
        self.name = name
        self.description = f"A tool that {behaviour}s"
        self.integration = DOMAIN
        self._behaviour = behaviour

    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> llm.ToolResult:
        if self._behaviour == "hang":
            await asyncio.sleep(30)
        raise RuntimeError("the gadget exploded")


class _TroubleAPI(llm.API):
    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        return llm.APIInstance(
            api=self,
            api_prompt="Use the gadget tools when asked.",
            llm_context=llm_context,
            tools=[_TroubleTool("hanging_gadget", "hang"), _TroubleTool("broken_gadget", "break")],
        )


async def test_failing_and_hanging_tools_give_the_model_errors_and_the_user_an_answer(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    ha_core: None,
    mock_config_entry: MockConfigEntry,
) -> None:
    llm.async_register_api(hass, _TroubleAPI(hass=hass, id=TEST_API_ID, name="Trouble"))
    _update_agent(hass, mock_config_entry, llm_hass_api=[TEST_API_ID], **{CONF_TOOL_TIMEOUT: 0.3})
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    realtime_fake.say_then_call(None, ("hanging_gadget", {}), ("broken_gadget", {}))
    realtime_fake.respond_with(_answer_after_tools("Sorry, the gadgets are not working."))

    async with asyncio.timeout(5):
        result = await _converse(hass, "Use the gadgets")

    hanging, broken = _session_connection(realtime_fake).tool_results()
    assert hanging["error"] == "TimeoutError"
    assert "0.3 seconds" in hanging["error_text"]
    assert broken == {"error": "RuntimeError", "error_text": "the gadget exploded"}
    assert result.response.speech["plain"]["speech"] == "Sorry, the gadgets are not working."
    assert realtime_fake.protocol_errors == []


async def test_follow_up_reuses_the_session_and_an_idle_session_closes(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    ha_core: None,
    mock_config_entry: MockConfigEntry,
) -> None:
    _update_agent(hass, mock_config_entry, **{CONF_IDLE_TIMEOUT: 0.5})
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    connections_before = len(realtime_fake.connections)
    realtime_fake.say("Your name is Ada.")
    realtime_fake.say("You told me a moment ago.")

    first = await _converse(hass, "My name is Ada. What is my name?")
    second = await _converse(hass, "How do you know?", first.conversation_id)

    assert second.conversation_id == first.conversation_id
    assert len(realtime_fake.connections) == connections_before + 1
    conn = _session_connection(realtime_fake)
    assert conn.user_texts() == ["My name is Ada. What is my name?", "How do you know?"]
    assert second.response.speech["plain"]["speech"] == "You told me a moment ago."

    await asyncio.sleep(1.0)
    assert conn.close_code == 1000
    [agent] = mock_config_entry.runtime_data.agents.values()
    assert len(agent.pool) == 0
    # Nothing of the closed conversation is kept alive.
    assert agent.turn(first.conversation_id) is None


async def test_extra_system_prompt_and_home_context_reach_the_model(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    kitchen_light: str,
    loaded_entry: MockConfigEntry,
) -> None:
    await _converse(hass, "Hi", extra_system_prompt="The user just walked into the kitchen.")
    instructions = _session_connection(realtime_fake).instructions
    assert "The user just walked into the kitchen." in instructions
    # The agent's own instructions, and Home Assistant's LLM API prompt with the exposed entities.
    assert instructions.startswith("You are a voice assistant for Home Assistant.")
    assert "names: Kitchen light" in instructions


async def test_unloading_the_entry_closes_live_sessions(
    hass: HomeAssistant, realtime_fake: FakeProvider, loaded_entry: MockConfigEntry
) -> None:
    await _converse(hass, "Hello")
    conn = _session_connection(realtime_fake)
    assert conn.close_code is None

    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await asyncio.sleep(0.1)
    assert conn.close_code == 1000


async def test_question_from_the_model_keeps_the_conversation_open(
    hass: HomeAssistant, realtime_fake: FakeProvider, loaded_entry: MockConfigEntry
) -> None:
    """When the model asks something, the satellite listens again (continue_conversation)."""
    realtime_fake.say("Which room do you mean?")
    asked = await _converse(hass, "Turn on the light")
    assert asked.continue_conversation

    realtime_fake.say("Okay.")
    answered = await _converse(hass, "The kitchen", asked.conversation_id)
    assert answered.response.speech["plain"]["speech"] == "Okay."
    assert not answered.continue_conversation
