"""The reply starts on every satellite the moment the model speaks (issue 11).

Measured where the user listens: each test satellite (tests/satellites.py)
starts playing when, and asks for the format that, its real kind does. The
fake model is paced like a real one and holds back everything after its
first audio chunk until the test releases it: a satellite that waits for the
end of the reply (the pipeline's 60-character gate, `tts-end`) gets nothing
before the release, and the test fails. Ordering is proven by the hold,
never by timestamps; the one time measurement here is the stream's longest
silence (Voice PE stalls after 5 s).

Every test runs against each provider's fake.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from homeassistant.components import conversation, tts
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers import chat_session, entity_registry as er
from homeassistant.setup import async_setup_component
import pytest

from custom_components.realtime_assist.follow_up import EXPECT_ANSWER_TOOL
from custom_components.realtime_assist.realtime.providers import PROVIDER_OPENAI
from tests.fakes.gemini_live import FakeGeminiLiveServer
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.fakes.providers import Call, FakeProvider, GeminiFake, OpenAIFake
from tests.fixtures_entry import every_provider
from tests.fixtures_home import ASSISTANT, HALLWAY_LIGHT
from tests.pacing_helpers import HELD_CHUNK_MS, hold_like_a_real_model, release
from tests.reply_audio import (
    MODEL_RATE,
    assert_plays,
    container_of,
    converts_with_ffmpeg,
    decode,
    reply_reached,
)
from tests.satellite_fixtures import SatelliteFactory
from tests.satellites import (
    KINDS,
    AssistDialog,
    Satellite,
    SatelliteTurn,
    SimulatedSatellite,
    spoken_utterance,
)

provider = every_provider

UTTERANCE = spoken_utterance()
ALL_KINDS = [*KINDS, AssistDialog.kind]
TURN_ON: Call = ("intent__HassTurnOn", {"name": "Kitchen light"})
# Generous: a reply that ends later than this after the model stopped hangs the satellite.
STREAM_END_TIMEOUT_S = 10.0
VOICE_PE_STALL_S = 5.0


@dataclass(frozen=True)
class Reply:
    """What the model says in one turn: words (one string per response), tool calls."""

    spoken: tuple[str, ...]
    calls: tuple[Call, ...] = ()
    tool: str = "none"
    # The model first says that it will ask a question (follow_up.py).
    announces_question: bool = False

    def script(self, fake: FakeProvider) -> None:
        """Queue the turn on the fake: the call before, between or without the words."""
        if self.announces_question:
            fake.say_then_call(None, (EXPECT_ANSWER_TOOL, {}))
        if self.tool == "before":
            fake.say_then_call(None, *self.calls)
            fake.say(self.spoken[0])
        elif self.tool == "middle":
            first, rest = self.spoken
            fake.say_then_call(first, *self.calls)
            fake.say(rest)
        else:
            fake.say(self.spoken[0])

    @property
    def text(self) -> str:
        return " ".join(self.spoken)


SHORT = ("Okay, one moment.", "The light is on.")  # < 60 characters in all
LONG = (
    "Sure, I am turning on the kitchen light for you right now, just give me a second.",
    "The kitchen light is on now, at full brightness, just as you asked. "
    "Would you like me to dim it a little?",
)


def reply(length: str, tool: str) -> Reply:
    parts = SHORT if length == "short" else LONG
    if tool == "middle":
        return Reply(parts, (TURN_ON,), tool)
    whole = "Okay, the light is on." if length == "short" else " ".join(parts)
    return Reply((whole,), (TURN_ON,) if tool == "before" else (), tool)


def raw_server(fake: FakeProvider) -> FakeOpenAIRealtimeServer | FakeGeminiLiveServer:
    assert isinstance(fake, OpenAIFake | GeminiFake)
    return fake.server


def chat_log_content(hass: HomeAssistant, conversation_id: str) -> list[conversation.Content]:
    with (
        chat_session.async_get_chat_session(hass, conversation_id) as session,
        conversation.async_get_chat_log(hass, session) as chat_log,
    ):
        return list(chat_log.content)


def assert_chat_log(hass: HomeAssistant, turn: SatelliteTurn, expected: Reply) -> None:
    """The model's full reply and every tool call with its result, as the debug view shows."""
    content = chat_log_content(hass, turn.one("intent-end")["intent_output"]["conversation_id"])
    assistant = [c for c in content if isinstance(c, conversation.AssistantContent)]
    assert [c.content for c in assistant if c.content] == list(expected.spoken)
    calls = [call for c in assistant for call in c.tool_calls or []]
    announced = [(EXPECT_ANSWER_TOOL, {})] if expected.announces_question else []
    assert [(call.tool_name, call.tool_args) for call in calls] == [*announced, *expected.calls]
    results = {
        c.tool_call_id: c.result for c in content if isinstance(c, conversation.ToolResultContent)
    }
    for call in calls:
        assert call.id in results, f"no result for the call of {call.tool_name}"
        assert not results[call.id].error, results[call.id]


async def assert_played_the_model(
    satellite: Satellite, turn: SatelliteTurn, fake: FakeProvider, *, held: bool = False
) -> None:
    """In the satellite's own format, the audio the fake sent, nothing else.

    `held`: the fake stalled after the first reply's first chunk (the test held it); the
    stream may carry silence there (the satellite is kept fed while the model is silent).
    """
    assert turn.player.error is None, turn.player.error
    decoded = await decode(turn.player)
    wanted = satellite.reply_format
    if wanted.extension is not None and not turn.player.raw_pcm:
        assert container_of(turn.player.data) == wanted.extension
    if wanted.sample_rate is not None:
        assert decoded.rate == wanted.sample_rate
    conn = fake.connections[-1]
    replies = [pcm for n in range(len(conn.reply_transcripts())) if (pcm := conn.reply_pcm(n))]
    if held and replies:
        first_chunk = HELD_CHUNK_MS * MODEL_RATE * 2 // 1000
        replies[:1] = [replies[0][:first_chunk], replies[0][first_chunk:]]
    assert_plays(decoded, [pcm for pcm in replies if pcm])


# The registration does not depend on the provider.
@pytest.mark.parametrize("provider", [PROVIDER_OPENAI])
async def test_satellites_are_registered_as_their_real_kinds(
    hass: HomeAssistant, satellites: SatelliteFactory
) -> None:
    """How the integration can tell kinds apart: the satellite's registry platform and, for
    ESPHome, an ESPHome media player on the same device; each asks for its kind's format."""
    registry = er.async_get(hass)
    found = {}
    for kind in KINDS:
        satellite = await satellites(kind)
        assert isinstance(satellite, SimulatedSatellite)
        entry = registry.async_get(satellite.entity_id)
        assert entry is not None
        assert entry.device_id is not None
        media_players = [
            e.platform
            for e in er.async_entries_for_device(registry, entry.device_id)
            if e.domain == "media_player"
        ]
        found[kind] = (entry.platform, media_players, satellite.tts_options)
    assert found == {
        "esphome_media_player": (
            "esphome",
            ["esphome"],
            {
                tts.ATTR_PREFERRED_FORMAT: "flac",
                tts.ATTR_PREFERRED_SAMPLE_RATE: 48000,
                tts.ATTR_PREFERRED_SAMPLE_CHANNELS: 1,
                tts.ATTR_PREFERRED_SAMPLE_BYTES: 2,
            },
        ),
        "esphome_speaker": ("esphome", [], wav_options(16000)),
        "wyoming": ("wyoming", [], wav_options(22050)),
        "voip": ("voip", [], wav_options(16000)),
    }


def wav_options(rate: int) -> dict[str, Any]:
    return {
        tts.ATTR_PREFERRED_FORMAT: "wav",
        tts.ATTR_PREFERRED_SAMPLE_RATE: rate,
        tts.ATTR_PREFERRED_SAMPLE_CHANNELS: 1,
        tts.ATTR_PREFERRED_SAMPLE_BYTES: 2,
    }


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("length", ["short", "long"])
@pytest.mark.parametrize("tool", ["none", "before", "middle"])
async def test_reply_starts_before_the_model_has_finished(
    hass: HomeAssistant,
    satellites: SatelliteFactory,
    realtime_fake: FakeProvider,
    kitchen_light: str,
    kind: str,
    length: str,
    tool: str,
) -> None:
    """The satellite plays the model's first words while the model still holds the rest;
    then the whole reply plays, the light is on, and the chat log has it all."""
    expected = reply(length, tool)
    if kind == "esphome_speaker" and expected.text.endswith("?"):
        # It starts playing before the model has finished: the model announces its question.
        expected = dataclasses.replace(expected, announces_question=True)
    realtime_fake.hear("Turn on the kitchen light.")
    expected.script(realtime_fake)
    hold = hold_like_a_real_model(raw_server(realtime_fake))
    satellite = await satellites(kind)

    turn = await satellite.start_turn(UTTERANCE)
    try:
        problem = await reply_reached(
            satellite,
            turn,
            held=hold.reached,
            only_start=converts_with_ffmpeg(satellite.reply_format),
        )
    finally:
        release(realtime_fake.pacing)
        await turn.finished()
    assert problem is None, problem

    await hass.async_block_till_done()
    assert "error" not in turn.types, turn.of_type("error")
    await assert_played_the_model(satellite, turn, realtime_fake, held=True)
    if expected.calls:
        assert hass.states.get(kitchen_light).state == STATE_ON
    assert_chat_log(hass, turn, expected)
    if satellite.uses_continue_conversation:
        intent_output = turn.one("intent-end")["intent_output"]
        assert intent_output["continue_conversation"] is expected.text.endswith("?")
    assert realtime_fake.protocol_errors == []


# -- the end of the stream ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_a_failing_tool_mid_reply_ends_the_stream(
    hass: HomeAssistant,
    satellites: SatelliteFactory,
    realtime_fake: FakeProvider,
    kind: str,
) -> None:
    """The tool fails (the hallway light is not exposed); the model says so; the stream ends."""
    failing = Reply(
        ("Let me switch on the hallway light.", "Sorry, I cannot reach the hallway light."),
        (("intent__HassTurnOn", {"name": "Hallway light"}),),
        "middle",
    )
    failing.script(realtime_fake)
    realtime_fake.pacing.speed = 2.0
    satellite = await satellites(kind)

    turn = await satellite.start_turn(UTTERANCE)
    await turn.finished(STREAM_END_TIMEOUT_S)

    assert hass.states.get(HALLWAY_LIGHT).state != STATE_ON
    assert "error" not in turn.types, turn.of_type("error")
    await assert_played_the_model(satellite, turn, realtime_fake)
    content = chat_log_content(hass, turn.one("intent-end")["intent_output"]["conversation_id"])
    [result] = [c.result for c in content if isinstance(c, conversation.ToolResultContent)]
    assert result.error or "error" in result.data


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_a_dropped_provider_mid_reply_ends_the_stream(
    satellites: SatelliteFactory, realtime_fake: FakeProvider, kind: str
) -> None:
    """The provider's connection drops while the model holds its reply: the satellite's
    stream ends (with what it got) instead of waiting for audio that will never come."""
    reply("long", "none").script(realtime_fake)
    hold = hold_like_a_real_model(raw_server(realtime_fake))
    satellite = await satellites(kind)

    turn = await satellite.start_turn(UTTERANCE)
    try:
        await hold.wait_reached(10)
        [conn] = raw_server(realtime_fake).connections[1:]
        conn.close_abruptly()
    finally:
        release(realtime_fake.pacing)
    await turn.finished(STREAM_END_TIMEOUT_S)
    assert turn.types[-1] == "run-end"


@pytest.mark.parametrize("kind", ["esphome_media_player"])
async def test_a_slow_tool_mid_reply_leaves_no_long_silence(
    hass: HomeAssistant,
    satellites: SatelliteFactory,
    realtime_fake: FakeProvider,
    kind: str,
) -> None:
    """A 6 s tool call between the model's words: the stream never goes quiet for 5 s
    (Voice PE stalls until power-cycled after such a gap, voice-pe issue 612)."""
    assert await async_setup_component(
        hass,
        "script",
        {"script": {"slow_routine": {"alias": "Slow routine", "sequence": [{"delay": 6}]}}},
    )
    async_expose_entity(hass, ASSISTANT, "script.slow_routine", True)
    slow = Reply(
        ("Give me a moment while I run the slow routine.", "The slow routine is done."),
        (("script__slow_routine", {}),),
        "middle",
    )
    slow.script(realtime_fake)
    realtime_fake.pacing.first_audio_delay_s = 0.3
    realtime_fake.pacing.speed = 2.0
    satellite = await satellites(kind)

    turn = await satellite.start_turn(UTTERANCE)
    await turn.finished(STREAM_END_TIMEOUT_S + 6)

    assert "error" not in turn.types, turn.of_type("error")
    assert turn.player.started_by is not None, f"playback never started: {turn.types}"
    gaps = turn.player.gaps_s()
    assert max(gaps) < VOICE_PE_STALL_S, (
        f"the reply stream went silent for {max(gaps):.1f} s (gaps: "
        f"{', '.join(f'{gap:.2f}' for gap in gaps if gap > 0.5)})"
    )
    await assert_played_the_model(satellite, turn, realtime_fake)
