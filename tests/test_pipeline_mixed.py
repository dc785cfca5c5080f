"""Mixed Assist pipelines: Realtime Assist next to other agents and speech engines.

Every test drives a real `assist_pipeline/run` (a satellite's websocket) against
each provider's fake server (unless it says why not) and checks what the user
would notice: what was heard, what was done, what was said and which voice said it.
"""

from __future__ import annotations

from collections.abc import Callable
from unittest.mock import patch

from homeassistant.components import assist_pipeline, conversation
from homeassistant.components.assist_pipeline.pipeline import async_get_pipeline
from homeassistant.const import Platform
from homeassistant.core import Context, HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
)
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.realtime_assist.realtime.providers import PROVIDER_OPENAI
from custom_components.realtime_assist.tts import READER_INSTRUCTIONS
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.fakes.providers import FakeProvider, FakeSession, Reply
from tests.fixtures_entry import every_provider
from tests.other_integration import (
    OTHER_STT,
    OTHER_TTS,
    OTHER_TTS_AUDIO,
    OtherSpeechToText,
    OtherTextToSpeech,
    set_up_other_integration,
)
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
STT_MODULE = "custom_components.realtime_assist.stt"
CONVERSATION_MODULE = "custom_components.realtime_assist.conversation"

# Each test runs against each provider's fake, unless it pins one (tests/fixtures_entry.py).
provider = every_provider


async def _pipeline(
    hass: HomeAssistant, *, stt_engine: str, conversation_engine: str, tts_engine: str
) -> assist_pipeline.Pipeline:
    pipeline = await assist_pipeline.async_create_default_pipeline(
        hass, stt_engine_id=stt_engine, tts_engine_id=tts_engine, pipeline_name="Mixed"
    )
    assert pipeline is not None
    await assist_pipeline.async_update_pipeline(
        hass, pipeline, conversation_engine=conversation_engine
    )
    updated = async_get_pipeline(hass, pipeline.id)
    assert (updated.stt_engine, updated.conversation_engine, updated.tts_engine) == (
        stt_engine,
        conversation_engine,
        tts_engine,
    )
    return updated


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def _speech(run: PipelineRun) -> str:
    return str(run.one("intent-end")["intent_output"]["response"]["speech"]["plain"]["speech"])


def _reader_says(text: str, pcm: bytes) -> Callable[[FakeSession], Reply | None]:
    """The reader session reads `text` aloud as `pcm`; a user turn's session, if it
    answers at all, says something else."""

    def respond(conn: FakeSession) -> Reply:
        if conn.instructions == READER_INSTRUCTIONS:
            return Reply(text, pcm)
        return Reply("The model's own answer.")

    return respond


def _sessions(fake: FakeProvider) -> list[FakeSession]:
    """The connections of the test's turns (the first one was setup's credential check)."""
    check, *sessions = fake.connections
    assert check.reply_transcripts() == []
    return sessions


def _reader_connections(fake: FakeProvider) -> list[FakeSession]:
    return [c for c in _sessions(fake) if c.instructions == READER_INSTRUCTIONS]


def _turn_connections(fake: FakeProvider) -> list[FakeSession]:
    """Sessions of user turns: they heard the user (the reader may still be connecting)."""
    return [
        c
        for c in _sessions(fake)
        if c.instructions != READER_INSTRUCTIONS and not c.got_only_configuration()
    ]


async def test_our_speech_to_text_with_the_builtin_agent_and_our_voice(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
    kitchen_light: str,
) -> None:
    """Home Assistant's agent acts on our transcript; our voice reads its answer.

    The model only transcribes (on OpenAI it makes no response at all; a Gemini
    model answers anyway, and that answer must not be what the satellite plays).
    """
    ids = agent_entity_ids(loaded_entry)
    pipeline = await _pipeline(
        hass,
        stt_engine=ids[Platform.STT],
        conversation_engine="conversation.home_assistant",
        tts_engine=ids[Platform.TTS],
    )
    realtime_fake.hear("turn on the kitchen light")
    reader_pcm = speech_like(0.6, 24000, seed=7)
    realtime_fake.respond_with(_reader_says("Turned on the light", reader_pcm))
    assert _state(hass, kitchen_light) == "off"

    run = await run_pipeline(hass_ws_client, pipeline.id, UTTERANCE)

    assert "error" not in run.types, run.of_type("error")
    assert run.one("stt-end")["stt_output"]["text"] == "turn on the kitchen light"
    # Home Assistant's own agent understood the transcript and acted on it.
    assert run.one("intent-start")["engine"] == "conversation.home_assistant"
    assert _state(hass, kitchen_light) == "on"
    answer = _speech(run)
    assert answer
    [turn_conn] = _turn_connections(realtime_fake)
    if realtime_fake.name == PROVIDER_OPENAI:
        # The model did not answer the user itself: no response was ever made on its session.
        # (Gemini keeps one configuration per connection, so its model answers anyway:
        # RealtimeAgent.adapt_to_run.)
        assert turn_conn.reply_transcripts() == []
    # Our voice read the built-in agent's answer, verbatim, through the reader session.
    wav = await fetch_tts(hass_client, run.one("tts-end")["tts_output"]["url"])
    rate, pcm = wav_pcm(wav)
    [reader] = _reader_connections(realtime_fake)
    assert reader.last_user_text() == answer
    assert reader.reply_transcripts() == ["Turned on the light"]
    assert rate == 24000
    assert pcm == reader.reply_pcm(0) == reader_pcm
    assert realtime_fake.protocol_errors == []


# OpenAI only: the failure is the OpenAI fake's rate-limited response.
@pytest.mark.parametrize("provider", [PROVIDER_OPENAI])
async def test_a_failed_reading_is_not_replayed_for_the_same_answer(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    fake_server: FakeOpenAIRealtimeServer,
    loaded_entry: MockConfigEntry,
    kitchen_light: str,
) -> None:
    """The reader failing once does not leave the built-in agent's answer silent for good.

    Home Assistant caches TTS audio by its text: an empty clip handed over as a
    success would be played for that answer from then on.
    """
    ids = agent_entity_ids(loaded_entry)
    pipeline = await _pipeline(
        hass,
        stt_engine=ids[Platform.STT],
        conversation_engine="conversation.home_assistant",
        tts_engine=ids[Platform.TTS],
    )
    realtime_fake.hear("turn on the kitchen light")
    fake_server.server_error_next_response(in_response=True)
    failed = await run_pipeline(hass_ws_client, pipeline.id, UTTERANCE)
    # The satellite gets an error or an empty clip, depending on when the failure lands.
    client = await hass_client()
    failed_reply = await client.get(failed.one("tts-end")["tts_output"]["url"])
    if failed_reply.status == 200:
        assert wav_pcm(await failed_reply.read())[1] == b""

    realtime_fake.hear("turn on the kitchen light")
    reader_pcm = speech_like(0.6, 24000, seed=7)
    realtime_fake.say("Turned on the light", pcm=reader_pcm)
    run = await run_pipeline(hass_ws_client, pipeline.id, UTTERANCE)

    assert _speech(run) == _speech(failed)
    wav = await fetch_tts(hass_client, run.one("tts-end")["tts_output"]["url"])
    assert wav_pcm(wav)[1] == reader_pcm
    assert realtime_fake.protocol_errors == []


# OpenAI only: the fallback is a text answer read aloud; a Gemini turn keeps its one (audio)
# configuration whatever the run (RealtimeAgent.adapt_to_run), so it is an ordinary turn.
@pytest.mark.parametrize("provider", [PROVIDER_OPENAI])
async def test_our_pipeline_is_heard_when_the_run_cannot_be_read(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
) -> None:
    """Home Assistant's run registry changed: the model answers in text, and is still heard.

    Not knowing the run's engines, the turn cannot tell that our voice plays
    it, so the model answers in text; our voice must then read that text
    rather than play the turn's (empty) audio.
    """
    realtime_fake.hear("What time is it?")
    realtime_fake.say("It is half past three.")  # written: the turn is text-only
    reader_pcm = speech_like(0.6, 24000, seed=7)
    realtime_fake.say("It is half past three.", pcm=reader_pcm)
    pipeline = our_pipeline(hass, loaded_entry)

    with (
        patch(f"{STT_MODULE}.current_pipeline_run", return_value=None),
        patch(f"{CONVERSATION_MODULE}.current_pipeline_run", return_value=None),
    ):
        run = await run_pipeline(hass_ws_client, pipeline.id, UTTERANCE)
        wav = await fetch_tts(hass_client, run.one("tts-end")["tts_output"]["url"])

    assert "error" not in run.types, run.of_type("error")
    assert _speech(run) == "It is half past three."
    [turn_conn] = _turn_connections(realtime_fake)
    assert turn_conn.reply_modalities() == ["text"]
    [reader] = _reader_connections(realtime_fake)
    assert reader.last_user_text() == "It is half past three."
    assert wav_pcm(wav)[1] == reader_pcm
    assert realtime_fake.protocol_errors == []


async def test_typed_turn_through_our_agent_is_spoken_in_the_models_voice(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
) -> None:
    """A text run (start at intent) of our pipeline: the model's own audio answers it."""
    realtime_fake.say("It is half past three.")
    pipeline = our_pipeline(hass, loaded_entry)

    run = await run_pipeline(hass_ws_client, pipeline.id, text="What time is it?")

    assert "error" not in run.types, run.of_type("error")
    assert "stt-start" not in run.types
    assert _speech(run) == "It is half past three."
    wav = await fetch_tts(hass_client, run.one("tts-end")["tts_output"]["url"])
    rate, pcm = wav_pcm(wav)
    [conn] = _sessions(realtime_fake)
    assert conn.last_user_text() == "What time is it?"
    assert conn.reply_transcripts() == ["It is half past three."]
    assert conn.reply_modalities() == ["audio"]
    assert rate == 24000
    assert pcm == conn.reply_pcm(0)
    assert len(pcm) > 0
    assert realtime_fake.protocol_errors == []


async def test_another_speech_to_text_with_our_agent_and_our_voice(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
    other_flow: None,
) -> None:
    """Another engine transcribes; the model gets its text and answers in its own voice."""
    other_stt = OtherSpeechToText("What time is it?")
    await set_up_other_integration(hass, {Platform.STT: other_stt})
    ids = agent_entity_ids(loaded_entry)
    pipeline = await _pipeline(
        hass,
        stt_engine=OTHER_STT,
        conversation_engine=ids[Platform.CONVERSATION],
        tts_engine=ids[Platform.TTS],
    )
    realtime_fake.say("It is half past three.")

    run = await run_pipeline(hass_ws_client, pipeline.id, UTTERANCE)

    assert "error" not in run.types, run.of_type("error")
    assert other_stt.audio_bytes == len(UTTERANCE)
    assert run.one("stt-end")["stt_output"]["text"] == "What time is it?"
    assert _speech(run) == "It is half past three."
    wav = await fetch_tts(hass_client, run.one("tts-end")["tts_output"]["url"])
    rate, pcm = wav_pcm(wav)
    # The model heard no audio at all: it got the other engine's transcript as text.
    [conn] = _sessions(realtime_fake)
    assert conn.audio_ms_received == 0
    assert conn.last_user_text() == "What time is it?"
    assert conn.reply_transcripts() == ["It is half past three."]
    assert rate == 24000
    assert pcm == conn.reply_pcm(0)
    assert len(pcm) > 0
    assert realtime_fake.protocol_errors == []


async def test_our_agent_with_another_voice_answers_in_text(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
    other_flow: None,
) -> None:
    """Nobody plays the model's voice: the other voice speaks the model's answer.

    On OpenAI the model answers in text only; Gemini keeps one configuration per
    connection (RealtimeAgent.adapt_to_run), so its audio is made but never played.
    """
    other_tts = OtherTextToSpeech()
    await set_up_other_integration(hass, {Platform.TTS: other_tts})
    ids = agent_entity_ids(loaded_entry)
    pipeline = await _pipeline(
        hass,
        stt_engine=ids[Platform.STT],
        conversation_engine=ids[Platform.CONVERSATION],
        tts_engine=OTHER_TTS,
    )
    realtime_fake.hear("What time is it?")
    realtime_fake.say("It is half past three.")

    run = await run_pipeline(hass_ws_client, pipeline.id, UTTERANCE)

    assert "error" not in run.types, run.of_type("error")
    assert run.one("stt-end")["stt_output"]["text"] == "What time is it?"
    assert _speech(run) == "It is half past three."
    [conn] = _sessions(realtime_fake)
    assert conn.reply_transcripts() == ["It is half past three."]
    if realtime_fake.name == PROVIDER_OPENAI:
        # The model was asked for text only: no audio was generated (or billed) for this turn.
        assert conn.output_modality == "text"
        assert conn.reply_modalities() == ["text"]
        assert conn.reply_pcm(0) == b""
    # The other voice spoke the model's answer; ours never ran.
    assert run.one("tts-start")["engine"] == OTHER_TTS
    audio = await fetch_tts(hass_client, run.one("tts-end")["tts_output"]["url"])
    assert audio == OTHER_TTS_AUDIO
    assert other_tts.messages == ["It is half past three."]
    # A TTS entity's state is when it last spoke: ours never did.
    assert _state(hass, ids[Platform.TTS]) == "unknown"
    assert _reader_connections(realtime_fake) == []
    assert realtime_fake.protocol_errors == []


async def test_an_answer_home_assistant_gives_itself_is_what_the_satellite_says(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
) -> None:
    """Our whole pipeline, and an automation's sentence trigger answers the words: Home
    Assistant answers before any agent, ours is never asked. The satellite says the
    automation's answer, not the model's reply to the same audio; a message typed next
    in the conversation is a turn of its own, not taken for that unanswered one."""
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "triggers": {"trigger": "conversation", "command": "good night"},
                "actions": {"set_conversation_response": "Sleep well"},
            }
        },
    )
    await hass.async_block_till_done()
    realtime_fake.hear("good night")
    sleep_well = speech_like(0.6, 24000, seed=7)
    realtime_fake.respond_with(_reader_says("Sleep well", sleep_well))

    run = await run_pipeline(hass_ws_client, our_pipeline(hass, loaded_entry).id, UTTERANCE)

    assert "error" not in run.types, run.of_type("error")
    assert run.one("intent-end")["processed_locally"] is True
    assert _speech(run) == "Sleep well"
    _rate, played = wav_pcm(await fetch_tts(hass_client, run.one("tts-end")["tts_output"]["url"]))
    assert played == sleep_well
    realtime_fake.respond_with(lambda _conn: Reply("It is ten."))
    [agent] = loaded_entry.runtime_data.agents.values()
    typed = await conversation.async_converse(
        hass,
        "What time is it?",
        run.one("intent-end")["intent_output"]["conversation_id"],
        Context(),
        agent_id=agent.entity_ids["conversation"],
    )
    assert typed.response.speech["plain"]["speech"] == "It is ten."
    assert _turn_connections(realtime_fake)[-1].last_user_text() == "What time is it?"
