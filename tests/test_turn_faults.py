"""Every turn ends: faults on the wire, through real pipeline runs and typed turns.

Each fault (the fakes' switches, tests/fakes/providers.py) ends the turn with
either the model's answer or a clear failure the user hears (a spoken sentence
in the result, the failure sound after whatever the model had said), never a
satellite left waiting; no traceback is logged; and the next turn of the same
conversation works. Deadlines are shortened so a missed one fails fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import dataclasses
from typing import Any

from homeassistant.components import conversation
from homeassistant.const import STATE_ON, Platform
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.realtime_assist.const import CONF_FALLBACK_TTS, CONF_IDLE_TIMEOUT, DOMAIN
from custom_components.realtime_assist.notices import failure_tone
from custom_components.realtime_assist.problems import ISSUE_QUOTA
from custom_components.realtime_assist.realtime import turn as lifecycle
from custom_components.realtime_assist.realtime.providers import PROVIDER_OPENAI
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.providers import FakeProvider
from tests.fixtures_entry import every_provider
from tests.other_integration import OTHER_TTS, OtherTextToSpeech, set_up_other_integration
from tests.pipeline_helpers import PipelineRun, fetch_tts, our_pipeline, run_pipeline, wav_pcm
from tests.satellite_fixtures import SatelliteFactory

provider = every_provider

UTTERANCE = silence(0.3, 16000) + speech_like(0.9, 16000) + silence(1.2, 16000)
ANSWER = "The kitchen light is on."
FOLLOW_UP = "Anything else?"
TURN_ON = ("intent__HassTurnOn", {"name": "Kitchen light"})
# What the satellite says for each failure (strings.json `turn_failed_<reason>`).
SAID = {
    "connection": "I can't reach the assistant's service right now.",
    "protocol": "The assistant's service sent something I could not understand.",
    "quota": "The assistant's account has run out of credit.",
    "rate_limit": "The assistant is busy right now. Please try again in a moment.",
    "server": "The assistant's service had a problem. Please try again.",
    "auth": ("The assistant's API key was rejected. Please check the Realtime Assist integration."),
    "timeout": "The assistant did not answer in time. Please try again.",
}
TONE = failure_tone(24000)


@pytest.fixture(autouse=True)
def short_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        lifecycle,
        "DEFAULT_DEADLINES",
        dataclasses.replace(
            lifecycle.DEFAULT_DEADLINES,
            speech_start_s=3.0,
            transcript_s=2.0,
            response_start_s=3.0,
            response_gap_s=3.0,
        ),
    )


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    assert "Traceback" not in caplog.text, caplog.text


@dataclasses.dataclass
class Spoken:
    """A satellite's turn: the pipeline's events and the reply it played (24 kHz PCM)."""

    run: PipelineRun
    pcm: bytes

    @property
    def result(self) -> dict[str, Any]:
        return dict(self.run.one("intent-end")["intent_output"])

    @property
    def speech(self) -> str:
        return str(self.result["response"]["speech"]["plain"]["speech"])

    @property
    def conversation_id(self) -> str:
        return str(self.result["conversation_id"])


@dataclasses.dataclass
class Speaker:
    """A satellite talking to the entry's pipeline over the websocket API."""

    hass: HomeAssistant
    hass_ws_client: WebSocketGenerator
    hass_client: ClientSessionGenerator
    fake: FakeProvider
    entry: MockConfigEntry

    async def speak(self, conversation_id: str | None = None) -> Spoken:
        run = await run_pipeline(
            self.hass_ws_client,
            our_pipeline(self.hass, self.entry).id,
            UTTERANCE,
            conversation_id=conversation_id,
        )
        assert "error" not in run.types, run.of_type("error")
        url = run.one("tts-end")["tts_output"]["url"]
        _rate, pcm = wav_pcm(await fetch_tts(self.hass_client, url))
        return Spoken(run, pcm)

    async def next_turn_works(self, conversation_id: str) -> None:
        self.fake.hear("Thank you.")
        self.fake.say(FOLLOW_UP)
        spoken = await self.speak(conversation_id)
        _answered(spoken, FOLLOW_UP)
        assert spoken.conversation_id == conversation_id


@pytest.fixture
def speaker(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    mock_config_entry: MockConfigEntry,
) -> Speaker:
    return Speaker(hass, hass_ws_client, hass_client, realtime_fake, mock_config_entry)


def _answered(spoken: Spoken, text: str = ANSWER) -> None:
    assert spoken.result["response"]["response_type"] != "error", spoken.result
    assert spoken.speech == text
    assert not spoken.pcm.endswith(TONE)


def _told(spoken: Spoken, reason: str) -> None:
    """The satellite said why the turn failed: the error speech, then the failure sound."""
    assert spoken.result["response"]["response_type"] == "error", spoken.result
    assert spoken.speech == SAID[reason]
    assert spoken.pcm.endswith(TONE)


def _no_live_turns(entry: MockConfigEntry) -> None:
    [agent] = entry.runtime_data.agents.values()
    assert all(turn.ended.is_set() for turn in agent._turns.values())


async def test_transcript_that_never_comes_does_not_hold_the_reply(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    speaker: Speaker,
    loaded_entry: MockConfigEntry,
) -> None:
    """The model answers the audio it heard; speech-to-text returns without its words."""
    realtime_fake.never_transcribe_next_turn()
    realtime_fake.say(ANSWER)

    spoken = await speaker.speak()

    _answered(spoken)
    assert spoken.run.one("stt-end")["stt_output"]["text"] == lifecycle.UNHEARD_WORDS
    await speaker.next_turn_works(spoken.conversation_id)
    _no_live_turns(loaded_entry)


async def test_failed_transcription_does_not_hold_the_reply(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    speaker: Speaker,
    loaded_entry: MockConfigEntry,
) -> None:
    realtime_fake.fail_next_transcription()
    realtime_fake.say(ANSWER)

    spoken = await speaker.speak()

    _answered(spoken)
    await speaker.next_turn_works(spoken.conversation_id)


async def test_connection_lost_mid_reply_is_told_after_what_was_said(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    speaker: Speaker,
    loaded_entry: MockConfigEntry,
) -> None:
    """The satellite plays the model's first words, then says the connection was lost."""
    realtime_fake.hear("Tell me a story.")
    realtime_fake.say("Once upon a time there was a realtime model that talked a lot.")
    realtime_fake.drop_mid_reply()

    spoken = await speaker.speak()

    _told(spoken, "connection")
    [dropped] = [conn for conn in realtime_fake.connections if conn.reply_transcripts()]
    first_words = dropped.reply_pcm(0)
    assert first_words
    assert spoken.pcm.startswith(first_words[: len(first_words) // 2])
    await speaker.next_turn_works(spoken.conversation_id)


async def test_connection_lost_mid_tool_call(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    speaker: Speaker,
    loaded_entry: MockConfigEntry,
    kitchen_light: str,
    provider: str,
) -> None:
    """OpenAI's new connection knows the call, so its result brings the answer; Gemini's
    cannot: it withdraws the call (never started if the agent had not reached it), and
    the user hears that the connection was lost."""
    realtime_fake.say_then_call(None, TURN_ON)
    realtime_fake.drop_after_tool_call()
    if provider == PROVIDER_OPENAI:
        realtime_fake.say(ANSWER)

    spoken = await speaker.speak()

    if provider == PROVIDER_OPENAI:
        _answered(spoken)
        assert hass.states.get(kitchen_light).state == STATE_ON
    else:
        _told(spoken, "connection")
    await speaker.next_turn_works(spoken.conversation_id)


async def test_connection_lost_mid_user_speech_loses_no_words(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    speaker: Speaker,
    loaded_entry: MockConfigEntry,
) -> None:
    realtime_fake.hear("Turn on the kitchen light.")
    realtime_fake.say(ANSWER)
    realtime_fake.drop_mid_user_speech()

    spoken = await speaker.speak()

    _answered(spoken)
    assert spoken.run.one("stt-end")["stt_output"]["text"] == "Turn on the kitchen light."


@pytest.mark.parametrize("fault", ["garbage", "corrupt_audio"])
async def test_malformed_provider_data_is_a_clear_error(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    speaker: Speaker,
    loaded_entry: MockConfigEntry,
    fault: str,
) -> None:
    if fault == "garbage":
        realtime_fake.send_garbage_before_next_reply()
    else:
        realtime_fake.corrupt_next_audio()
    realtime_fake.say(ANSWER)

    spoken = await speaker.speak()

    _told(spoken, "protocol")
    await speaker.next_turn_works(spoken.conversation_id)


async def test_rate_limit(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    speaker: Speaker,
    loaded_entry: MockConfigEntry,
    provider: str,
) -> None:
    """OpenAI's rate-limited response is asked for again and answers; Gemini closes the
    connection with it, and the user hears that the model is busy."""
    realtime_fake.fail_next_reply("rate_limit")
    if provider == PROVIDER_OPENAI:
        realtime_fake.say(ANSWER)

    spoken = await speaker.speak()

    if provider == PROVIDER_OPENAI:
        _answered(spoken)
    else:
        _told(spoken, "rate_limit")
    await speaker.next_turn_works(spoken.conversation_id)


async def test_out_of_credit_is_told_and_raises_a_repair_that_clears_itself(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    speaker: Speaker,
    loaded_entry: MockConfigEntry,
) -> None:
    realtime_fake.fail_next_reply("quota")

    spoken = await speaker.speak()

    _told(spoken, "quota")
    issue_id = f"{ISSUE_QUOTA}_{loaded_entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    # The owner added credit: the next turn works and the notice is gone.
    await speaker.next_turn_works(spoken.conversation_id)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_server_error(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    speaker: Speaker,
    loaded_entry: MockConfigEntry,
    provider: str,
) -> None:
    """OpenAI fails the response: the user hears it. Gemini's connection dies; the session
    reconnects, replays the user's words, and the model answers on the new one."""
    realtime_fake.fail_next_reply("server")
    if provider == PROVIDER_OPENAI:
        spoken = await speaker.speak()
        _told(spoken, "server")
    else:
        realtime_fake.say(ANSWER)
        spoken = await speaker.speak()
        _answered(spoken)
    await speaker.next_turn_works(spoken.conversation_id)


async def test_key_revoked_at_runtime_is_told_and_starts_reauth(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    speaker: Speaker,
    loaded_entry: MockConfigEntry,
) -> None:
    first = await speaker.speak()
    _answered(first, "OK.")
    realtime_fake.revoke_key()

    spoken = await speaker.speak(first.conversation_id)

    _told(spoken, "auth")
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == ["reauth"]


async def test_a_failed_typed_turn_does_not_poison_the_next(
    hass: HomeAssistant, realtime_fake: FakeProvider, loaded_entry: MockConfigEntry
) -> None:
    """After a reply that failed for lack of credit, the next message is answered at once."""
    realtime_fake.fail_next_reply("quota")
    failed = await conversation.async_converse(
        hass, "Hello?", None, Context(), agent_id=_agent_id(loaded_entry)
    )
    assert failed.response.response_type.value == "error"
    assert failed.response.speech["plain"]["speech"] == SAID["quota"]

    realtime_fake.say(ANSWER)
    async with asyncio.timeout(10):
        answered = await conversation.async_converse(
            hass,
            "Hello again?",
            failed.conversation_id,
            Context(),
            agent_id=_agent_id(loaded_entry),
        )
    assert answered.response.speech["plain"]["speech"] == ANSWER
    assert realtime_fake.connections[-1].last_user_text() == "Hello again?"


# A priced model: the spend limit needs a price.
@pytest.mark.parametrize("provider", [PROVIDER_OPENAI])
async def test_a_refused_turn_of_a_going_conversation_is_told(
    realtime_fake: FakeProvider, speaker: Speaker, loaded_entry: MockConfigEntry
) -> None:
    """A satellite goes on with its conversation; past the spend limit its next turn is
    refused, and the user hears why, not silence (the last turn's reply stood in)."""
    realtime_fake.say(ANSWER)
    first = await speaker.speak()
    _answered(first)
    [agent] = loaded_entry.runtime_data.agents.values()
    agent.usage.daily_limit = 0.0  # reached

    refused = await speaker.speak(first.conversation_id)

    assert refused.result["response"]["response_type"] == "error", refused.result
    assert "spending limit" in refused.speech
    assert refused.pcm.endswith(TONE)


def _agent_id(entry: MockConfigEntry) -> str:
    [agent] = entry.runtime_data.agents.values()
    return str(agent.entity_ids["conversation"])


# The fallback voice is the owner's choice, whatever the provider.
@pytest.mark.parametrize("provider", [PROVIDER_OPENAI])
async def test_the_fallback_voice_says_why(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    speaker: Speaker,
    ha_core: None,
    mock_config_entry: MockConfigEntry,
    other_flow: None,
) -> None:
    """With a fallback voice picked, it reads the failure instead of the sound playing."""
    other = OtherTextToSpeech()
    await set_up_other_integration(hass, {Platform.TTS: other})
    [subentry] = mock_config_entry.subentries.values()
    hass.config_entries.async_update_subentry(
        mock_config_entry, subentry, data={**subentry.data, CONF_FALLBACK_TTS: OTHER_TTS}
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    realtime_fake.fail_next_reply("quota")

    spoken = await speaker.speak()

    assert spoken.speech == SAID["quota"]
    assert other.messages == [SAID["quota"]]
    assert spoken.pcm
    assert not spoken.pcm.endswith(TONE)


async def test_a_reply_is_whole_after_its_session_closed_for_idleness(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    ha_core: None,
    mock_config_entry: MockConfigEntry,
) -> None:
    """The session closes when the turn is over, not when the satellite got the reply."""
    [subentry] = mock_config_entry.subentries.values()
    hass.config_entries.async_update_subentry(
        mock_config_entry, subentry, data={**subentry.data, CONF_IDLE_TIMEOUT: 0.01}
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    realtime_fake.say(ANSWER)
    run = await run_pipeline(hass_ws_client, our_pipeline(hass, mock_config_entry).id, UTTERANCE)
    [conn] = [c for c in realtime_fake.connections if c.reply_transcripts()]
    await conn.wait_closed()

    _rate, pcm = wav_pcm(await fetch_tts(hass_client, run.one("tts-end")["tts_output"]["url"]))

    assert pcm == conn.reply_pcm(0)


async def test_a_new_wake_word_during_speech_ends_the_turn_it_cut_off(
    hass: HomeAssistant,
    satellites: SatelliteFactory,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Speech-to-text cancelled (the satellite started over): its turn ends at once, with
    what it owned (a paired camera's feed), and the new turn is answered."""
    [agent] = loaded_entry.runtime_data.agents.values()
    begun: list[lifecycle.Turn] = []
    feeds: list[asyncio.Task[None]] = []
    listening = asyncio.Event()
    begin = agent.async_begin_turn

    ended_before_the_next: list[bool] = []

    async def begin_and_watch(*args: Any, **kwargs: Any) -> lifecycle.Turn:
        ended_before_the_next.extend(turn.ended.is_set() for turn in begun[-1:])
        turn = await begin(*args, **kwargs)
        begun.append(turn)
        feeds.append(asyncio.create_task(asyncio.Event().wait()))
        turn.attach(feeds[-1])
        listening.set()
        return turn

    monkeypatch.setattr(agent, "async_begin_turn", begin_and_watch)
    satellite = await satellites("wyoming")
    first = await satellite.start_turn(silence(0.2, 16000) + speech_like(30.0, 16000))
    async with asyncio.timeout(5):
        await listening.wait()

    realtime_fake.say(ANSWER)
    second = await satellite.start_turn(UTTERANCE)
    await second.finished()

    _cut, answered = begun
    # Ended by the cancellation itself, not only by the next turn taking its place.
    assert ended_before_the_next == [True]
    assert feeds[0].cancelled()
    assert first.run is not None
    assert first.run.done()
    assert "error" not in second.types
    assert answered.done_ok
    assert second.one("intent-end")["intent_output"]["response"]["speech"]["plain"]["speech"] == (
        ANSWER
    )
