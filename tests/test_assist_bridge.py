"""The one private Home Assistant read: which pipeline run a stage serves.

If Home Assistant changes its run registry, these fail loudly (the integration
itself only logs a warning and degrades: no barge-in, no mixed pipelines).
"""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

from homeassistant.components.assist_pipeline.runtime import KEY_ASSIST_PIPELINE
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.realtime_assist import assist_bridge
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer, ScriptedResponse, SpeechItem
from tests.pipeline_helpers import (
    agent_entity_ids,
    fetch_tts,
    our_pipeline,
    run_pipeline,
    wav_pcm,
)

UTTERANCE = silence(0.2, 16000) + speech_like(1.0, 16000) + silence(1.0, 16000)


def _spy(hass: HomeAssistant, *, forget_record: bool = False) -> tuple[list[Any], Any]:
    """Record what speech-to-text learns about its run (optionally after HA dropped it)."""
    seen: list[Any] = []
    real = assist_bridge.current_pipeline_run

    def spy(hass_: HomeAssistant) -> assist_bridge.PipelineRunInfo | None:
        if forget_record:
            # As when more than 10 runs of one pipeline started since this one.
            for records in hass.data[KEY_ASSIST_PIPELINE].pipeline_debug.values():
                records.clear()
        info = real(hass_)
        seen.append(info)
        return info

    return seen, patch("custom_components.realtime_assist.stt.current_pipeline_run", spy)


async def test_speech_to_text_knows_its_satellite_and_engines(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    fake_server: FakeOpenAIRealtimeServer,
    loaded_entry: MockConfigEntry,
) -> None:
    ids = agent_entity_ids(loaded_entry)
    seen, spying = _spy(hass)
    with spying:
        run = await run_pipeline(
            hass_ws_client, our_pipeline(hass, loaded_entry).id, UTTERANCE, device_id="sat-7"
        )

    [info] = seen
    assert info is not None, "Home Assistant's pipeline run registry changed"
    assert info.known
    assert info.conversation_id == run.one("run-start")["conversation_id"]
    assert info.device_id == "sat-7"
    assert (info.conversation_engine, info.stt_engine, info.tts_engine) == (
        ids[Platform.CONVERSATION],
        ids[Platform.STT],
        ids[Platform.TTS],
    )


async def test_a_run_whose_record_is_gone_is_still_answered_in_our_voice(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    fake_server: FakeOpenAIRealtimeServer,
    loaded_entry: MockConfigEntry,
) -> None:
    """Home Assistant keeps 10 run records per pipeline; with more satellites at once,
    the turn assumes our own pipeline instead of answering in text and reading it aloud."""
    fake_server.add_response(ScriptedResponse(SpeechItem("Still my own voice.")))
    seen, spying = _spy(hass, forget_record=True)
    with spying:
        run = await run_pipeline(hass_ws_client, our_pipeline(hass, loaded_entry).id, UTTERANCE)

    [info] = seen
    assert info is not None
    assert not info.known
    wav = await fetch_tts(hass_client, run.one("tts-end")["tts_output"]["url"])
    conn = fake_server.connections[-1]
    assert wav_pcm(wav)[1] == conn.responses[0].pcm
    # One model call: no second session read the answer aloud.
    assert len(fake_server.connections) == 2
