"""Diagnostics a user may post publicly: settings yes, secrets and prompts no."""

from __future__ import annotations

import json

from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import llm
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer, ScriptedResponse, SpeechItem
from tests.helpers import VALID_KEY

pytestmark = pytest.mark.usefixtures("ha_core")
NO_USAGE = (
    "input_text",
    "input_audio",
    "input_image",
    "cached_text",
    "cached_audio",
    "cached_image",
    "output_text",
    "output_audio",
    "total_tokens",
)


async def test_diagnostics_redact_key_and_omit_prompt(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    loaded_entry: MockConfigEntry,
    fake_server: FakeOpenAIRealtimeServer,
) -> None:
    """The key, URL and prompt never appear; the agent's settings do."""
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)

    assert diagnostics == {
        "provider": "openai",
        "entry_version": "1.1",
        "state": "loaded",
        "data": {"provider": "openai", "api_key": "**REDACTED**", "url": "**REDACTED**"},
        "subentries": [
            {
                "title": "Realtime Assist",
                "subentry_type": "conversation",
                "data": {
                    "model": "gpt-realtime-2.1",
                    "voice": "marin",
                    "llm_hass_api": ["assist"],
                    "turn_detection": "server_vad",
                    "vad_eagerness": "auto",
                    "silence_duration_ms": 500,
                    "idle_timeout": 300,
                    "tool_timeout": 10,
                    "keep_warm": False,
                    "pair_cameras": False,
                    "camera_fps": 1.0,
                    "camera_long_side": 1024,
                },
                "sessions": {},
                "usage": {
                    "model": "gpt-realtime-2.1",
                    "prices": {
                        "text_in": 4.0,
                        "text_cached": 0.4,
                        "audio_in": 32.0,
                        "audio_cached": 0.4,
                        "image_in": 5.0,
                        "image_cached": 0.5,
                        "text_out": 24.0,
                        "audio_out": 64.0,
                    },
                    "currency": "USD",
                    "daily_limit": None,
                    "usage": dict.fromkeys(NO_USAGE, 0),
                    "turns": 0,
                    "connected_s": 0.0,
                    "spend_today": 0.0,
                    "spend_total": 0.0,
                    "last_turns": [],
                },
            }
        ],
    }
    dumped = json.dumps(diagnostics)
    assert VALID_KEY not in dumped
    assert fake_server.url not in dumped
    assert llm.DEFAULT_INSTRUCTIONS_PROMPT not in dumped


async def test_diagnostics_show_live_session_counters_not_content(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    loaded_entry: MockConfigEntry,
    fake_server: FakeOpenAIRealtimeServer,
) -> None:
    """After a turn, the agent's live session shows up with its counters only."""
    fake_server.add_response(ScriptedResponse(SpeechItem("The secret word is marmalade.")))
    await conversation.async_converse(
        hass, "Tell me the secret word", None, Context(), agent_id="conversation.realtime_assist"
    )

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)

    [session] = diagnostics["subentries"][0]["sessions"].values()
    assert session["connects"] == 1
    assert session["responses"] == 1
    assert session["last_error"] is None
    # What the turn cost, and nothing it said.
    usage = diagnostics["subentries"][0]["usage"]
    [turn] = usage["last_turns"]
    assert set(turn) == {"ended", "typed", "outcome", "tool_calls", "usage", "cost", "latency_ms"}
    assert turn["usage"] == usage["usage"]
    assert turn["usage"]["total_tokens"] == session["usage_total_tokens"] > 0
    assert turn["cost"] == usage["spend_total"] > 0
    dumped = json.dumps(diagnostics)
    assert "marmalade" not in dumped
    assert "secret word" not in dumped
