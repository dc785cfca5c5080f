"""Real Assist pipeline runs with Realtime Assist for speech-to-text, agent and text-to-speech."""

from __future__ import annotations

from homeassistant.components import assist_pipeline
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer, ScriptedResponse, SpeechItem
from tests.pipeline_helpers import agent_entity_ids, fetch_tts, our_pipeline, run_pipeline, wav_pcm

SATELLITE_RATE = 16000
UTTERANCE = (
    silence(0.2, SATELLITE_RATE) + speech_like(1.0, SATELLITE_RATE) + silence(1.0, SATELLITE_RATE)
)


async def test_setup_creates_a_pipeline_and_keeps_the_preferred_one(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    ids = agent_entity_ids(loaded_entry)
    pipeline = our_pipeline(hass, loaded_entry)

    assert pipeline.name == "Realtime Assist"
    assert (pipeline.stt_engine, pipeline.tts_engine) == (ids[Platform.STT], ids[Platform.TTS])
    preferred = assist_pipeline.async_get_pipeline(hass)
    assert preferred.id != pipeline.id
    assert preferred.conversation_engine == "conversation.home_assistant"


async def test_spoken_turn_plays_the_models_own_audio(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    fake_server: FakeOpenAIRealtimeServer,
    loaded_entry: MockConfigEntry,
) -> None:
    """Speech in; the provider's VAD ends the turn; the TTS URL plays exactly the model's PCM."""
    fake_server.add_input_transcript("What time is it?")
    fake_server.add_response(ScriptedResponse(SpeechItem("It is half past three.")))
    pipeline = our_pipeline(hass, loaded_entry)

    run = await run_pipeline(hass_ws_client, pipeline.id, UTTERANCE)

    assert "error" not in run.types, run.of_type("error")
    # The provider's VAD ended the turn: Home Assistant's did not run.
    assert "stt-vad-end" not in run.types
    assert run.one("stt-end")["stt_output"]["text"] == "What time is it?"
    speech = run.one("intent-end")["intent_output"]["response"]["speech"]["plain"]["speech"]
    assert speech == "It is half past three."
    wav = await fetch_tts(hass_client, run.one("tts-end")["tts_output"]["url"])
    rate, pcm = wav_pcm(wav)
    conn = fake_server.connections[-1]
    assert rate == 24000
    assert pcm == conn.responses[0].pcm
    assert fake_server.protocol_errors == []
