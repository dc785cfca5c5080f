"""The integration installs, loads and starts its config flow on the newest Home Assistant."""

import json
import struct
from typing import Any

import pytest

from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.openai_realtime import (
    FakeConnection,
    FakeOpenAIRealtimeServer,
    FunctionCallItem,
    ScriptedResponse,
    SpeechItem,
)
from tests.smoke.flows import entry_form, entry_pipeline, realtime_entry, start_flow
from tests.smoke.hass_process import INTEGRATION_DIR, HassClient

DOMAIN = "realtime_assist"


async def test_integration_is_loadable(hass_client: HassClient) -> None:
    """Home Assistant reads our manifest from custom_components and offers a config flow."""
    manifest = await hass_client.ws({"type": "manifest/get", "integration": DOMAIN})
    ours = json.loads((INTEGRATION_DIR / "manifest.json").read_text())
    assert (manifest["domain"], manifest["version"]) == (DOMAIN, ours["version"])
    assert manifest["is_built_in"] is False

    handlers = await hass_client.rest("GET", "/api/config/config_entries/flow_handlers")
    assert DOMAIN in handlers


async def test_config_flow_starts_with_user_step(hass_client: HassClient) -> None:
    """Adding the integration from the UI shows the form of the `user` step."""
    flow = await hass_client.rest("POST", "/api/config/config_entries/flow", {"handler": DOMAIN})
    if flow["type"] == "form":
        # Leave no flow in progress behind for the tests that follow.
        await hass_client.rest("DELETE", f"/api/config/config_entries/flow/{flow['flow_id']}")
    assert (flow["type"], flow.get("step_id")) == ("form", "user"), flow


@pytest.mark.asyncio(loop_scope="session")
async def test_config_flow_refuses_a_bad_key_and_creates_a_working_entry(
    hass_client: HassClient, fake_openai: FakeOpenAIRealtimeServer
) -> None:
    """Through the UI's REST API: a bad key is refused, a good one creates a loaded entry."""
    step = await start_flow(hass_client)
    refused = await hass_client.rest("POST", step, entry_form(fake_openai, "sk-wrong"))
    assert (refused["type"], refused["errors"]) == ("form", {"base": "invalid_auth"})
    await hass_client.rest("DELETE", step)

    async with realtime_entry(hass_client, fake_openai) as entry_id:
        entries = await hass_client.ws({"type": "config_entries/get", "domain": DOMAIN})
        assert [(e["entry_id"], e["state"]) for e in entries] == [(entry_id, "loaded")]
        subentries = await hass_client.ws(
            {"type": "config_entries/subentries/list", "entry_id": entry_id}
        )
        assert [s["subentry_type"] for s in subentries] == ["conversation"]
    assert fake_openai.protocol_errors == []


def _turn_on_then_confirm(conn: FakeConnection) -> ScriptedResponse:
    """The model turns the light on with the Assist tool, then confirms."""
    if conn.items[-1]["type"] == "function_call_output":
        return ScriptedResponse(SpeechItem("The kitchen light is on."))
    turn_on = next(t["name"] for t in conn.session["tools"] if t["name"].endswith("HassTurnOn"))
    return ScriptedResponse(
        SpeechItem("Turning it on."), FunctionCallItem(turn_on, {"name": "Kitchen light"})
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_conversation_turn_turns_on_a_light(
    hass_client: HassClient, fake_openai: FakeOpenAIRealtimeServer
) -> None:
    """A conversation over the websocket API: the model's tool call turns a real light on."""
    fake_openai.responder = _turn_on_then_confirm
    try:
        async with realtime_entry(hass_client, fake_openai):
            assert await hass_client.switched_off("light.kitchen_light") == "off"

            result = await hass_client.ws(
                {
                    "type": "conversation/process",
                    "text": "Turn on the kitchen light",
                    "agent_id": "conversation.realtime_assist",
                }
            )

            speech = result["response"]["speech"]["plain"]["speech"]
            assert speech == "The kitchen light is on."
            after = await hass_client.rest("GET", "/api/states/light.kitchen_light")
            assert after["state"] == "on"
    finally:
        fake_openai.responder = None
    assert fake_openai.protocol_errors == []


def _event(events: list[dict[str, Any]], event_type: str) -> dict[str, Any]:
    [data] = [event["data"] for event in events if event["type"] == event_type]
    return dict(data)


def _wav_pcm(wav: bytes) -> tuple[int, bytes]:
    """(sample rate, PCM) of a WAV file, whatever its header chunks."""
    assert wav[:4] == b"RIFF", wav[:16]
    assert wav[8:12] == b"WAVE", wav[:16]
    position, sample_rate = 12, 0
    while position + 8 <= len(wav):
        chunk_id, size = struct.unpack_from("<4sI", wav, position)
        body = position + 8
        if chunk_id == b"fmt ":
            sample_rate = struct.unpack_from("<I", wav, body + 4)[0]
        elif chunk_id == b"data":
            return sample_rate, wav[body:]  # streaming WAVs have no real size
        position = body + size + (size & 1)
    raise AssertionError("no data chunk in the WAV")


@pytest.mark.asyncio(loop_scope="session")
async def test_spoken_turn_through_the_auto_created_pipeline(
    hass_client: HassClient, fake_openai: FakeOpenAIRealtimeServer
) -> None:
    """A satellite's turn over `assist_pipeline/run`: audio in, the model's own audio out.

    The pipeline is the one the integration created for its agent; the fake's
    VAD ends the turn; the TTS URL serves exactly the PCM the fake streamed.
    """
    rate = 16000
    utterance = silence(0.2, rate) + speech_like(1.0, rate) + silence(1.0, rate)
    before = await hass_client.ws({"type": "assist_pipeline/pipeline/list"})
    known = {pipeline["id"] for pipeline in before["pipelines"]}
    first_connection = len(fake_openai.connections)
    fake_openai.add_input_transcript("What time is it?")
    fake_openai.add_response(ScriptedResponse(SpeechItem("It is half past three.")))
    pipeline_id = None
    async with realtime_entry(hass_client, fake_openai) as entry_id:
        try:
            pipeline_id = (await entry_pipeline(hass_client, entry_id))["id"]

            events = await hass_client.run_pipeline(pipeline_id, utterance, sample_rate=rate)

            types = [event["type"] for event in events]
            assert "error" not in types, events
            # The provider's VAD ended the turn: Home Assistant's did not run.
            assert "stt-vad-end" not in types
            assert _event(events, "stt-end")["stt_output"]["text"] == "What time is it?"
            response = _event(events, "intent-end")["intent_output"]["response"]
            assert response["speech"]["plain"]["speech"] == "It is half past three."
            wav = await hass_client.fetch(_event(events, "tts-end")["tts_output"]["url"])
            sample_rate, pcm = _wav_pcm(wav)
            [answer] = [r for c in fake_openai.connections[first_connection:] for r in c.responses]
            assert sample_rate == 24000
            assert len(pcm) > 0
            assert pcm == answer.pcm
        finally:
            # Leave no pipeline of ours behind for the tests after this one.
            if pipeline_id is not None and pipeline_id not in known:
                await hass_client.ws(
                    {"type": "assist_pipeline/pipeline/delete", "pipeline_id": pipeline_id}
                )
    assert fake_openai.protocol_errors == []
