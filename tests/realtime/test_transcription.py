"""Transcription that knows the home: the user's language and the home's names reach
each provider's input transcription, and names come out right in the transcript.

The fakes "mishear" a name unless the session's vocabulary (OpenAI `keywords` or
`prompt`, Gemini `customVocabulary`) holds it.
"""

from __future__ import annotations

from typing import Any

from homeassistant.const import CONF_API_KEY, CONF_URL
import pytest

from custom_components.realtime_assist.realtime.config import (
    MAX_VOCABULARY_CHARS,
    MAX_VOCABULARY_TERMS,
    Endpoint,
    SessionConfig,
    vocabulary_within_limits,
)
from custom_components.realtime_assist.realtime.events import InputTranscript
from custom_components.realtime_assist.realtime.providers import PROVIDER_OPENAI, create_provider
from custom_components.realtime_assist.realtime.providers.openai import transcription_payload
from custom_components.realtime_assist.realtime.session import RealtimeSession
from tests.fakes.audio_samples import utterance
from tests.fakes.providers import FakeProvider
from tests.fixtures_entry import every_provider
from tests.realtime.events import speak, until

provider = every_provider

RATE = 16000
SAID = "Turn on the Hue Go in Jonas's room."
NAMES = ("Jonas's room", "Hue Go")


@pytest.fixture
def fake(realtime_fake: FakeProvider) -> FakeProvider:
    realtime_fake.mishear("Hue Go", "who go")
    realtime_fake.mishear("Jonas's room", "Jonas is room")
    return realtime_fake


async def _transcript(fake: FakeProvider, **changes: Any) -> str:
    """The final transcript of one spoken turn, said as SAID, in a session with `changes`."""
    data = fake.entry_data()
    openai = fake.name == PROVIDER_OPENAI
    settings: dict[str, Any] = {
        "model": "gpt-realtime-2.1" if openai else "gemini-3.8-live",
        "input_transcription_model": "gpt-live-transcribe" if openai else None,
    }
    config = SessionConfig(**(settings | changes))
    provider = create_provider(fake.name, Endpoint(data[CONF_API_KEY], data[CONF_URL]))
    fake.hear(SAID)
    async with RealtimeSession(provider, config, input_sample_rate=RATE) as session:
        events = session.subscribe()
        await speak(session, utterance(0.8, RATE))
        seen = await until(events, lambda e: isinstance(e, InputTranscript) and e.final)
    final = seen[-1]
    assert isinstance(final, InputTranscript)
    return final.text


async def test_the_homes_names_come_out_right(fake: FakeProvider) -> None:
    assert await _transcript(fake, language="de-DE", transcription_vocabulary=NAMES) == SAID
    languages, vocabulary = fake.connections[-1].transcription_hints()
    assert languages == (["de"] if fake.name == PROVIDER_OPENAI else ["de-DE"])
    assert all(name in vocabulary for name in NAMES)
    assert fake.protocol_errors == []


async def test_without_the_names_the_transcript_gets_them_wrong(fake: FakeProvider) -> None:
    """The control: the fake's transcription does mishear what it is not told."""
    assert await _transcript(fake) == "Turn on the who go in Jonas is room."
    assert fake.connections[-1].transcription_hints() == ([], "")


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("gpt-live-transcribe", "keywords"),
        ("gpt-transcribe", "keywords"),
        ("gpt-4o-mini-transcribe", "prompt"),
        ("gpt-4o-transcribe", "prompt"),
        ("whisper-1", "prompt"),
        ("gpt-realtime-whisper", None),
    ],
)
@pytest.mark.parametrize("provider", [PROVIDER_OPENAI])
async def test_each_openai_transcription_model_gets_the_names_its_way(
    fake: FakeProvider, model: str, field: str | None
) -> None:
    """`keywords` where the model takes them, else a `prompt`, else nothing: the fake
    refuses the others (`unsupported_parameter`)."""
    config = SessionConfig(
        model="gpt-realtime-2.1",
        input_transcription_model=model,
        language="de-CH",
        transcription_vocabulary=NAMES,
    )
    sent = transcription_payload(config)
    assert sent is not None
    assert sent["language"] == "de"
    assert {key for key in ("keywords", "prompt") if key in sent} == ({field} if field else set())

    transcript = await _transcript(
        fake,
        input_transcription_model=model,
        language="de-CH",
        transcription_vocabulary=NAMES,
    )
    assert transcript == (SAID if field else "Turn on the who go in Jonas is room.")
    assert fake.protocol_errors == []


def test_vocabulary_is_bounded_deduplicated_and_keeps_its_order() -> None:
    terms = ["Kitchen", "  kitchen ", "", "Hue   Go", *(f"Lamp {n}" for n in range(2000))]

    bounded = vocabulary_within_limits(terms)

    assert bounded[:3] == ("Kitchen", "Hue Go", "Lamp 0")
    assert len(bounded) <= MAX_VOCABULARY_TERMS
    assert sum(len(term) for term in bounded) <= MAX_VOCABULARY_CHARS
    # A term too long for what is left is skipped, shorter ones after it still fit.
    assert vocabulary_within_limits(["x" * MAX_VOCABULARY_CHARS, "y" * 2, "z"]) == (
        "x" * MAX_VOCABULARY_CHARS,
    )
    assert vocabulary_within_limits(["y", "x" * MAX_VOCABULARY_CHARS, "z"]) == ("y", "z")
