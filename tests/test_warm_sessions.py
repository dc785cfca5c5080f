"""Warm sessions: a new conversation's first audio frame goes to an already open socket."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.realtime_assist.const import CONF_KEEP_WARM
from custom_components.realtime_assist.realtime.providers import PROVIDER_GEMINI, PROVIDER_OPENAI
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.providers import FakeProvider
from tests.pipeline_helpers import fetch_tts, our_pipeline, run_pipeline, wav_pcm

UTTERANCE = silence(0.2, 16000) + speech_like(1.0, 16000) + silence(1.0, 16000)


@pytest.mark.parametrize("provider", [PROVIDER_OPENAI, PROVIDER_GEMINI])
async def test_spoken_turn_uses_the_session_connected_before_it(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    ha_core: None,
    mock_config_entry: MockConfigEntry,
) -> None:
    subentry = next(iter(mock_config_entry.subentries.values()))
    hass.config_entries.async_update_subentry(
        mock_config_entry, subentry, data={**subentry.data, CONF_KEEP_WARM: True}
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    # Setup checked the key (connection 1) and connected a spare (connection 2).
    spare = await realtime_fake.wait_for_connection(2)
    assert spare.got_only_configuration()
    realtime_fake.say("Ready when you are.")

    run = await run_pipeline(hass_ws_client, our_pipeline(hass, mock_config_entry).id, UTTERANCE)

    assert "error" not in run.types, run.of_type("error")
    # The turn's audio went to the spare, open before the run began, and its answer plays.
    assert spare.audio_ms_received > 1000
    wav = await fetch_tts(hass_client, run.one("tts-end")["tts_output"]["url"])
    assert wav_pcm(wav)[1] == spare.reply_pcm(0)
    # And the next conversation has a new spare waiting for it.
    replacement = await realtime_fake.wait_for_connection(3)
    assert replacement.audio_ms_received == 0
    assert realtime_fake.protocol_errors == []
