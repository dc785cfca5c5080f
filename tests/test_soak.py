"""Soak: 200 turns over two satellites with faults injected at random (seeded).

Every turn ends with the model's answer or a failure the user hears, within
the pipeline's deadline; afterwards nothing is left behind: no live turns, no
sessions beyond the two conversations', no tasks, no objects of ours piling up,
and the memory our own code holds does not grow with the number of turns.
Home Assistant's own caches (TTS audio kept 5 minutes, pipeline debug records)
are emptied between rounds: they are not ours to measure.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import gc
import random
import tracemalloc
from typing import Any

from homeassistant.components import assist_pipeline, tts
from homeassistant.components.tts.const import DATA_TTS_MANAGER
from homeassistant.core import Context, HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.realtime_assist.realtime.providers import PROVIDER_OPENAI
from custom_components.realtime_assist.realtime.session import RealtimeSession, Subscription
from custom_components.realtime_assist.realtime.turn import Turn
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.providers import FakeProvider
from tests.fixtures_entry import every_provider
from tests.pipeline_helpers import our_pipeline, satellite_speech
from tests.test_turn_faults import SAID

provider = every_provider

TURNS = 200
SATELLITES = ("satellite-kitchen", "satellite-hall")
# Short, so the soak spends its time in turns, not in sending audio.
SPEECH = silence(0.1, 16000) + speech_like(0.3, 16000) + silence(0.8, 16000)
# Ours: memory allocated in the integration's own files.
OUR_CODE = tracemalloc.Filter(True, "*/custom_components/realtime_assist/*")
# What the memory our code holds may grow by between the early and the late rounds.
MAX_GROWTH_BYTES = 256 * 1024


async def _satellite_turn(
    hass: HomeAssistant, pipeline_id: str, satellite: str, conversation_id: str | None
) -> dict[str, dict[str, Any]]:
    """One run as a satellite makes it (no websocket in between); the reply is read whole.

    Returns the last event of each type.
    """
    events: dict[str, dict[str, Any]] = {}

    async def speech() -> AsyncIterator[bytes]:
        for start in range(0, len(SPEECH), 320):
            yield SPEECH[start : start + 320]
            await asyncio.sleep(0)

    # Well past every deadline of a turn: only a turn that does not end hits this.
    async with asyncio.timeout(60):
        await assist_pipeline.async_pipeline_from_audio_stream(
            hass,
            context=Context(),
            event_callback=lambda event: events.__setitem__(str(event.type), event.data or {}),
            stt_metadata=satellite_speech(""),
            stt_stream=speech(),
            pipeline_id=pipeline_id,
            conversation_id=conversation_id,
            device_id=satellite,
        )
        if "tts-end" in events:
            stream = tts.async_get_stream(hass, events["tts-end"]["tts_output"]["token"])
            assert stream is not None
            async for _chunk in stream.async_stream_result():
                pass
    return events


def _faults(provider: str) -> list[str | None]:
    faults: list[str | None] = [
        None,
        None,
        None,
        "drop_mid_reply",
        "never_transcribe_next_turn",
        "fail_next_transcription",
        "send_garbage_before_next_reply",
        "corrupt_next_audio",
        "quota",
        "server",
    ]
    if provider == PROVIDER_OPENAI:
        faults.append("rate_limit")  # Gemini's closes the connection: covered as server
    return faults


def _inject(fake: FakeProvider, fault: str | None) -> None:
    if fault in ("quota", "server", "rate_limit"):
        fake.fail_next_reply(fault)
    elif fault is not None:
        getattr(fake, fault)()


def _our_memory() -> int:
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces([OUR_CODE])
    return sum(stat.size for stat in snapshot.statistics("filename"))


def _ours_alive() -> dict[str, int]:
    gc.collect()
    counts = {"turns": 0, "sessions": 0, "subscriptions": 0}
    for obj in gc.get_objects():
        if isinstance(obj, Turn):
            counts["turns"] += 1
        elif isinstance(obj, RealtimeSession):
            counts["sessions"] += 1
        elif isinstance(obj, Subscription):
            counts["subscriptions"] += 1
    return counts


@pytest.mark.timeout(900)
@pytest.mark.parametrize("seed", [2026])
async def test_two_hundred_turns_with_faults_leave_nothing_behind(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
    provider: str,
    seed: int,
) -> None:
    rng = random.Random(seed)
    faults = _faults(provider)
    realtime_fake.respond_with(lambda _conn: None)  # every reply says "OK."
    pipeline_id = our_pipeline(hass, loaded_entry).id
    conversations: dict[str, str | None] = dict.fromkeys(SATELLITES)
    outcomes: dict[str, int] = {}
    tracemalloc.start()
    try:
        early: tuple[int, int] | None = None
        for round_number in range(TURNS // len(SATELLITES)):
            _inject(realtime_fake, rng.choice(faults))

            async def turn(satellite: str) -> str:
                events = await _satellite_turn(
                    hass, pipeline_id, satellite, conversations[satellite]
                )
                assert "error" not in events, events.get("error")
                output = events["intent-end"]["intent_output"]
                conversations[satellite] = output["conversation_id"]
                speech = output["response"]["speech"]["plain"]["speech"]
                if output["response"]["response_type"] == "error":
                    assert speech in SAID.values(), speech
                    return "failed"
                assert speech == "OK.", speech
                return "answered"

            for outcome in await asyncio.gather(*(turn(s) for s in SATELLITES)):
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            # Home Assistant's own caches are not ours to measure.
            hass.data[DATA_TTS_MANAGER].mem_cache.clear()
            if round_number == 24:
                # Both conversations' sessions are live from here on: the baseline.
                early = (len(asyncio.all_tasks()), _our_memory())
        late = (len(asyncio.all_tasks()), _our_memory())
    finally:
        tracemalloc.stop()
    await hass.async_block_till_done()

    assert sum(outcomes.values()) == TURNS
    assert outcomes["answered"] > TURNS // 2, outcomes
    assert outcomes["failed"] > 0, outcomes
    [agent] = loaded_entry.runtime_data.agents.values()
    assert all(turn.ended.is_set() for turn in agent._turns.values())
    assert len(agent.pool) <= len(SATELLITES)
    alive = _ours_alive()
    assert alive["turns"] <= len(SATELLITES), alive
    assert alive["sessions"] <= len(SATELLITES), alive
    assert alive["subscriptions"] <= len(SATELLITES), alive
    assert early is not None
    early_tasks, early_memory = early
    late_tasks, late_memory = late
    assert late_tasks <= early_tasks, asyncio.all_tasks()
    assert late_memory - early_memory < MAX_GROWTH_BYTES, (early_memory, late_memory)
