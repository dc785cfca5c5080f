"""Gemini 3.8's asynchronous tool calls in Home Assistant: the model keeps talking while
a real light turns on, its result goes back `WHEN_IDLE`, and the satellite hears all of it.

Gemini only: OpenAI has no background calls (its tool rounds are in test_conversation
and test_pipeline, which run on both providers).
"""

from __future__ import annotations

import asyncio

from homeassistant.components import conversation
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Context, HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.realtime_assist.const import PROVIDER_PROFILES
from custom_components.realtime_assist.realtime.providers import PROVIDER_GEMINI
from tests.fakes.audio_samples import utterance
from tests.fakes.gemini_live import FakeGeminiLiveServer, ScriptedTurn, SpeechPart, ToolCallPart
from tests.pipeline_helpers import fetch_tts, our_pipeline, run_pipeline, wav_pcm

pytestmark = pytest.mark.parametrize("provider", [PROVIDER_GEMINI])

AGENT_ID = "conversation.realtime_assist"
TURN_ON = ("intent__HassTurnOn", {"name": "Kitchen Light"})
WHILE_IT_RUNS = "Turning on the kitchen light for you, it will only take a moment."


async def test_the_light_turns_on_while_the_model_keeps_talking(
    hass: HomeAssistant,
    gemini_server: FakeGeminiLiveServer,
    kitchen_light: str,
    loaded_entry: MockConfigEntry,
) -> None:
    # The default model: gemini-3.8-live, which runs calls in the background.
    assert PROVIDER_PROFILES[PROVIDER_GEMINI].default_model == "gemini-3.8-live"
    hold = asyncio.Event()
    gemini_server.pacing.hold = hold  # the model pauses after its first words
    gemini_server.add_response(ScriptedTurn(ToolCallPart(*TURN_ON), SpeechPart(WHILE_IT_RUNS)))
    gemini_server.add_response(ScriptedTurn(SpeechPart("The kitchen light is on.")))
    assert hass.states.get(kitchen_light).state == STATE_OFF

    answering = asyncio.ensure_future(
        conversation.async_converse(
            hass, "Turn on the kitchen light", None, Context(), agent_id=AGENT_ID
        )
    )
    conn = await gemini_server.wait_for_connection(2)  # the first checked the key at setup
    await conn.wait_for_message("toolResponse")

    # The light is on and its result is with the model, which is still mid-sentence.
    assert hass.states.get(kitchen_light).state == STATE_ON
    assert conn.turns[0].status == "in_progress"
    hold.set()
    result = await answering

    talking, confirming = conn.turns
    # Its speech was not cut: all of it went out, and the turn completed.
    assert (talking.status, talking.transcript) == ("completed", WHILE_IT_RUNS)
    [response] = conn.tool_responses
    assert response["scheduling"] == "WHEN_IDLE"
    assert response["response"]["data"]["success"][0]["id"] == kitchen_light
    assert confirming.trigger == "tool_response"
    assert result.response.speech["plain"]["speech"] == "The kitchen light is on."
    declared = conn.setup["tools"][0]["functionDeclarations"]
    behaviors = {d["name"]: d["behavior"] for d in declared}
    assert behaviors["intent__HassTurnOn"] == "NON_BLOCKING"
    # Read-only tools block: what the model says next depends on them.
    assert behaviors["homeassistant__GetLiveContext"] == "BLOCKING"
    assert gemini_server.protocol_errors == []


async def test_the_satellite_hears_the_whole_turn(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    gemini_server: FakeGeminiLiveServer,
    kitchen_light: str,
    loaded_entry: MockConfigEntry,
) -> None:
    """The model's words around the call and its confirmation play as one stream."""
    gemini_server.add_input_transcript("Turn on the kitchen light.")
    gemini_server.add_response(
        ScriptedTurn(SpeechPart("Sure."), ToolCallPart(*TURN_ON), SpeechPart(WHILE_IT_RUNS))
    )
    gemini_server.add_response(ScriptedTurn(SpeechPart("The kitchen light is on.")))

    run = await run_pipeline(
        hass_ws_client, our_pipeline(hass, loaded_entry).id, utterance(1.0, 16000)
    )
    _rate, pcm = wav_pcm(await fetch_tts(hass_client, run.one("tts-end")["tts_output"]["url"]))

    assert "error" not in run.types, run.of_type("error")
    assert hass.states.get(kitchen_light).state == STATE_ON
    conn = gemini_server.connections[-1]
    talking, confirming = conn.turns
    assert talking.transcript == f"Sure.{WHILE_IT_RUNS}"
    # Silence may fill the gap while the result goes back; the model's voice is all there.
    spoken = bytes(talking.pcm) + bytes(confirming.pcm)
    assert _without_fills(pcm) == _without_fills(spoken)
    assert gemini_server.protocol_errors == []


def _without_fills(pcm: bytes) -> bytes:
    """The 24 kHz stream without the 100 ms silences a stream is kept flowing with."""
    return pcm.replace(bytes(2 * 2400), b"")
