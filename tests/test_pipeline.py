"""Real Assist pipeline runs with Realtime Assist for speech-to-text, agent and text-to-speech.

Every test runs against each provider's fake server unless it says why not.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import time
from typing import Any

from homeassistant.components import assist_pipeline
from homeassistant.const import STATE_ON, Platform
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers.event import async_track_state_change_event
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.realtime_assist.realtime.providers import PROVIDER_OPENAI
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.fakes.providers import FakeProvider, FakeSession, Reply
from tests.fixtures_entry import every_provider
from tests.pipeline_helpers import (
    PipelineRun,
    agent_entity_ids,
    fetch_tts,
    our_pipeline,
    run_pipeline,
    wav_pcm,
)

SATELLITE_RATE = 16000
UTTERANCE = (
    silence(0.2, SATELLITE_RATE) + speech_like(1.0, SATELLITE_RATE) + silence(1.0, SATELLITE_RATE)
)

# Each test runs against each provider's fake, unless it pins one (tests/fixtures_entry.py).
provider = every_provider


def _speech(run: PipelineRun) -> str:
    return str(run.one("intent-end")["intent_output"]["response"]["speech"]["plain"]["speech"])


def _heard(fake: FakeProvider, transcript: str) -> FakeSession:
    """The connection of the session that heard the user say `transcript`."""
    [conn] = [c for c in fake.connections if transcript in c.user_texts()]
    return conn


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
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
) -> None:
    """Speech in; the provider's VAD ends the turn; the TTS URL plays exactly the model's PCM."""
    realtime_fake.hear("What time is it?")
    realtime_fake.say("It is half past three.")
    pipeline = our_pipeline(hass, loaded_entry)

    run = await run_pipeline(hass_ws_client, pipeline.id, UTTERANCE)

    assert "error" not in run.types, run.of_type("error")
    # The provider's VAD ended the turn: Home Assistant's did not run.
    assert "stt-vad-end" not in run.types
    assert run.one("stt-end")["stt_output"]["text"] == "What time is it?"
    assert _speech(run) == "It is half past three."
    wav = await fetch_tts(hass_client, run.one("tts-end")["tts_output"]["url"])
    rate, pcm = wav_pcm(wav)
    conn = realtime_fake.connections[-1]
    assert rate == 24000
    assert pcm == conn.reply_pcm(0)
    assert realtime_fake.protocol_errors == []


LONG_REPLY = (
    "Here is a longer answer, so that the model keeps talking for a few seconds while "
    "the satellite is already playing the first words of it."
)


class TtsReader:
    """Fetches the TTS URL as soon as the pipeline says streaming started, like a satellite."""

    def __init__(self, hass_client: ClientSessionGenerator, fake: FakeProvider) -> None:
        self._hass_client = hass_client
        self._fake = fake
        self.url: str | None = None
        self.task: asyncio.Task[bytes] | None = None
        self.stream_started_at: float | None = None
        self.streaming = asyncio.Event()
        self.first_byte_at: float | None = None
        self.finished_at: float | None = None
        self.model_replying_at_first_byte: bool | None = None

    def on_event(self, event: dict[str, Any]) -> None:
        if event["type"] == "run-start":
            self.url = event["data"]["tts_output"]["url"]
        elif (event["type"] == "intent-progress" and event["data"].get("tts_start_streaming")) or (
            event["type"] == "tts-end" and self.task is None
        ):
            # Streaming replies start early; short ones once the answer is complete.
            self.stream_started_at = time.monotonic()
            self.streaming.set()
            self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> bytes:
        assert self.url is not None
        client = await self._hass_client()
        response = await client.get(self.url)
        data = bytearray()
        async for chunk in response.content.iter_any():
            if self.first_byte_at is None and len(data) + len(chunk) > 44:
                self.first_byte_at = time.monotonic()
                self.model_replying_at_first_byte = self._fake.connections[-1].is_replying()
            data += chunk
        self.finished_at = time.monotonic()
        return bytes(data)

    async def audio(self) -> bytes:
        assert self.task is not None, "the pipeline never started streaming the reply"
        return wav_pcm(await self.task)[1]


async def test_first_audio_is_playable_before_the_model_finishes(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
) -> None:
    """Streaming, not buffered: the satellite reads audio while the model is still talking."""
    realtime_fake.chunk_delay_s = 0.02  # the model speaks about twice as fast as real time
    realtime_fake.say(LONG_REPLY)
    reader = TtsReader(hass_client, realtime_fake)

    run = await run_pipeline(
        hass_ws_client, our_pipeline(hass, loaded_entry).id, UTTERANCE, on_event=reader.on_event
    )

    assert "error" not in run.types, run.of_type("error")
    assert await reader.audio() == realtime_fake.connections[-1].reply_pcm(0)
    assert reader.model_replying_at_first_byte is True


async def test_spoken_command_turns_the_light_on_while_the_model_talks(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    kitchen_light: str,
    loaded_entry: MockConfigEntry,
) -> None:
    realtime_fake.chunk_delay_s = 0.01
    realtime_fake.hear("Turn on the kitchen light.")
    realtime_fake.say_then_call(
        "Sure, turning on the kitchen light for you right now.",
        ("intent__HassTurnOn", {"name": "Kitchen light"}),
    )
    realtime_fake.say("The kitchen light is on.")
    light_on_at: list[float] = []

    @callback
    def light_changed(event: Event[EventStateChangedData]) -> None:
        if (state := event.data["new_state"]) is not None and state.state == STATE_ON:
            light_on_at.append(time.monotonic())

    async_track_state_change_event(hass, [kitchen_light], light_changed)
    reader = TtsReader(hass_client, realtime_fake)

    run = await run_pipeline(
        hass_ws_client, our_pipeline(hass, loaded_entry).id, UTTERANCE, on_event=reader.on_event
    )
    audio = await reader.audio()

    assert "error" not in run.types, run.of_type("error")
    assert hass.states.get(kitchen_light).state == STATE_ON
    # The light went on while the reply was still streaming to the satellite.
    assert reader.finished_at is not None
    assert light_on_at
    assert light_on_at[0] < reader.finished_at
    # The satellite hears the whole turn: the model's words before and after the tool call.
    conn = realtime_fake.connections[-1]
    assert audio == conn.reply_pcm(0) + conn.reply_pcm(1)
    assert conn.tool_results()[0]["data"]["success"][0]["id"] == kitchen_light
    assert _speech(run) == "The kitchen light is on."
    assert realtime_fake.protocol_errors == []


async def test_two_satellites_at_once_each_hear_their_own_answer(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
) -> None:
    answers = {
        "What is on the kitchen calendar?": "The kitchen calendar is empty today.",
        "Is the garage door closed?": "Yes, the garage door has been closed since this morning.",
    }
    for question in answers:
        realtime_fake.hear(question)
    realtime_fake.chunk_delay_s = 0.005
    realtime_fake.respond_with(lambda conn: Reply(answers[conn.last_user_text() or ""]))
    pipeline_id = our_pipeline(hass, loaded_entry).id
    readers = [TtsReader(hass_client, realtime_fake) for _ in answers]

    runs = await asyncio.gather(
        *(
            run_pipeline(
                hass_ws_client, pipeline_id, UTTERANCE, device_id=device, on_event=reader.on_event
            )
            for device, reader in zip(
                ("satellite-kitchen", "satellite-garage"), readers, strict=True
            )
        )
    )

    heard = []
    for run, reader in zip(runs, readers, strict=True):
        assert "error" not in run.types, run.of_type("error")
        question = run.one("stt-end")["stt_output"]["text"]
        conn = _heard(realtime_fake, question)
        audio = await reader.audio()
        assert audio == conn.reply_pcm(0)
        assert _speech(run) == answers[question]
        heard.append(audio)
    assert heard[0] != heard[1]
    assert realtime_fake.protocol_errors == []


@dataclass
class _CutOff:
    """A reply cut off by a new run on the same satellite (`_cut_off_a_long_reply`)."""

    reader: TtsReader
    first: PipelineRun
    second: PipelineRun
    # When the second run started: the satellite stopped playing the first reply.
    interrupted_at: float


async def _cut_off_a_long_reply(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    fake: FakeProvider,
    entry: MockConfigEntry,
) -> _CutOff:
    """Wake word during a long reply (heard as "Tell me a story."); the new run hears "Stop."."""
    fake.chunk_delay_s = 0.02
    fake.hear("Tell me a story.")
    fake.say(LONG_REPLY * 2)
    pipeline_id = our_pipeline(hass, entry).id
    reader = TtsReader(hass_client, fake)
    first_run = asyncio.create_task(
        run_pipeline(
            hass_ws_client,
            pipeline_id,
            UTTERANCE,
            device_id="satellite-1",
            on_event=reader.on_event,
        )
    )
    async with asyncio.timeout(5):
        await reader.streaming.wait()
    await asyncio.sleep(0.6)  # the satellite plays the first part of the reply
    interrupted_at: list[float] = []

    def on_second(event: dict[str, Any]) -> None:
        if event["type"] == "stt-start":
            interrupted_at.append(time.monotonic())

    fake.hear("Stop.")
    fake.say("Okay, stopping.")
    second = await run_pipeline(
        hass_ws_client,
        pipeline_id,
        UTTERANCE,
        device_id="satellite-1",
        on_event=on_second,
    )
    return _CutOff(reader, await first_run, second, interrupted_at[0])


async def test_new_turn_on_the_same_satellite_cuts_off_the_reply(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
) -> None:
    """Wake word during the reply: it stops, and its conversation goes on without the rest."""
    cut = await _cut_off_a_long_reply(
        hass, hass_ws_client, hass_client, realtime_fake, loaded_entry
    )

    assert "error" not in cut.second.types, cut.second.of_type("error")
    assert "error" not in cut.first.types, cut.first.of_type("error")
    assert _speech(cut.second) == "Okay, stopping."
    # The cut-off reply ended for the first satellite: it got the start of the reply, exactly,
    # and nothing after the cut.
    conn = _heard(realtime_fake, "Tell me a story.")
    audio = await cut.reader.audio()
    assert audio == conn.reply_pcm(0)[: len(audio)]
    full_reply_ms = len(LONG_REPLY * 2) * 50  # the fakes speak 50 ms per character
    assert len(audio) / 48 < full_reply_ms - 1000
    # The cut-off conversation goes on (the second run, already in progress when it
    # started, got a conversation of its own from Home Assistant): its next turn plays
    # its own reply, not the rest of the old one.
    realtime_fake.hear("What were you saying?")
    realtime_fake.say("Never mind.")
    conversation_id = cut.first.one("intent-end")["intent_output"]["conversation_id"]
    follow_up = await run_pipeline(
        hass_ws_client,
        our_pipeline(hass, loaded_entry).id,
        UTTERANCE,
        device_id="satellite-1",
        conversation_id=conversation_id,
    )
    assert "error" not in follow_up.types, follow_up.of_type("error")
    assert _speech(follow_up) == "Never mind."
    wav = await fetch_tts(hass_client, follow_up.one("tts-end")["tts_output"]["url"])
    assert _heard(realtime_fake, "What were you saying?") == conn
    assert wav_pcm(wav)[1] == conn.reply_pcm(1)
    assert realtime_fake.protocol_errors == []


# OpenAI only: the client truncates the model's memory of its reply; Gemini has no truncation
# (its server estimates what was played itself).
@pytest.mark.parametrize("provider", [PROVIDER_OPENAI])
async def test_cut_off_reply_is_truncated_to_what_the_satellite_played(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    fake_server: FakeOpenAIRealtimeServer,
    loaded_entry: MockConfigEntry,
) -> None:
    """The model keeps only what the satellite played, and stops talking."""
    cut = await _cut_off_a_long_reply(
        hass, hass_ws_client, hass_client, realtime_fake, loaded_entry
    )

    assert "error" not in cut.second.types, cut.second.of_type("error")
    conn = next(c for c in fake_server.connections if c.truncations)
    assert conn.last_user_text() == "Tell me a story."
    [(item_id, audio_end_ms)] = conn.truncations
    assert item_id == conn.responses[0].item_ids[0]
    assert cut.reader.stream_started_at is not None
    played_ms = (cut.interrupted_at - cut.reader.stream_started_at) * 1000
    assert abs(audio_end_ms - played_ms) < 250
    # The model generates twice as fast as the satellite plays: it had said much more.
    assert audio_end_ms < conn.responses[0].items[0].audio_ms * 0.75
    assert conn.responses[0].status == "cancelled"
    assert fake_server.protocol_errors == []


async def test_follow_up_turn_goes_into_the_same_session(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
) -> None:
    """The model asks; the satellite listens again in the same conversation and session."""
    realtime_fake.hear("Turn on the light.")
    realtime_fake.say("Which light do you mean?")
    realtime_fake.hear("The kitchen one.")
    realtime_fake.say("Okay.")
    pipeline_id = our_pipeline(hass, loaded_entry).id

    first = await run_pipeline(hass_ws_client, pipeline_id, UTTERANCE)
    asked = first.one("intent-end")["intent_output"]
    assert asked["continue_conversation"] is True
    await fetch_tts(hass_client, first.one("tts-end")["tts_output"]["url"])
    second = await run_pipeline(
        hass_ws_client, pipeline_id, UTTERANCE, conversation_id=asked["conversation_id"]
    )

    assert "error" not in second.types, second.of_type("error")
    assert second.one("intent-end")["intent_output"]["conversation_id"] == asked["conversation_id"]
    assert _speech(second) == "Okay."
    conn = realtime_fake.connections[-1]
    assert conn.reply_transcripts() == ["Which light do you mean?", "Okay."]
    assert conn.user_texts() == ["Turn on the light.", "The kitchen one."]
    assert len(realtime_fake.connections) == 2  # the key check at setup, then one session
    await fetch_tts(hass_client, second.one("tts-end")["tts_output"]["url"])
    assert realtime_fake.protocol_errors == []


async def test_same_words_twice_play_each_turns_own_recording(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
) -> None:
    """Home Assistant caches TTS audio by its text; a realtime reply is never a replay."""
    first_pcm = speech_like(0.5, 24000, seed=11)
    second_pcm = speech_like(0.5, 24000, seed=12)
    realtime_fake.say("Done.", pcm=first_pcm)
    realtime_fake.say("Done.", pcm=second_pcm)
    pipeline_id = our_pipeline(hass, loaded_entry).id

    heard = []
    for _ in range(2):
        run = await run_pipeline(hass_ws_client, pipeline_id, UTTERANCE)
        wav = await fetch_tts(hass_client, run.one("tts-end")["tts_output"]["url"])
        heard.append(wav_pcm(wav)[1])

    assert heard == [first_pcm, second_pcm]
