"""The agent form's models come from the provider (what the key may use), with the
built-in list when the provider's list cannot be had; OpenAI's own options."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.realtime_assist.agent_config import session_config_from_options
from custom_components.realtime_assist.const import (
    CONF_CUSTOM_VOICE,
    CONF_MAKE_PREFERRED,
    CONF_MODEL,
    CONF_NOISE_REDUCTION,
    CONF_REASONING_EFFORT,
    CONF_TRANSCRIPTION_MODEL,
    PROVIDER_PROFILES,
    SECTION_ADVANCED,
    SECTION_BEHAVIOUR,
    SECTION_COSTS,
    SECTION_LISTENING,
    SUBENTRY_CONVERSATION,
)
from custom_components.realtime_assist.realtime.config import NoiseReduction, ReasoningEffort
from custom_components.realtime_assist.realtime.providers import PROVIDER_GEMINI, PROVIDER_OPENAI
from tests.fakes import gemini_live, openai_realtime
from tests.fakes.providers import FakeProvider, GeminiFake, OpenAIFake
from tests.fixtures_entry import every_provider
from tests.flow_texts import assert_form_texts, form_fields

pytestmark = pytest.mark.usefixtures("ha_core")

provider = every_provider

# A model only this key may use: the form can only know it from the provider.
NEWER_MODEL = {PROVIDER_OPENAI: "gpt-realtime-3-preview", PROVIDER_GEMINI: "gemini-9-live"}


async def _agent_form(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONVERSATION), context={"source": SOURCE_USER}
    )


def _field(result: Any, key: str) -> Any:
    return next(
        validator for path, validator in form_fields(result["data_schema"]) if path[-1] == key
    )


def _offered(result: Any, key: str) -> list[str]:
    return [option["value"] for option in _field(result, key).config["options"]]


def _served_models(fake: FakeProvider) -> set[str]:
    assert isinstance(fake, OpenAIFake | GeminiFake)
    return fake.server.models


async def test_the_form_offers_the_models_the_key_may_use(
    hass: HomeAssistant, realtime_fake: FakeProvider, loaded_entry: MockConfigEntry
) -> None:
    profile = PROVIDER_PROFILES[realtime_fake.name]
    _served_models(realtime_fake).add(NEWER_MODEL[realtime_fake.name])

    result = await _agent_form(hass, loaded_entry)
    offered = _offered(result, CONF_MODEL)

    # The recommended model first (and the form's default), then the key's others.
    assert offered[0] == profile.default_model
    assert NEWER_MODEL[realtime_fake.name] in offered
    # The SDK accepts gpt-audio models in a realtime session, but they are no realtime models.
    realtime = {m for m in _served_models(realtime_fake) if not m.startswith("gpt-audio")}
    assert set(offered) == realtime
    others = gemini_live.OTHER_MODELS + openai_realtime.OTHER_MODELS
    assert not set(others) & set(offered)
    await assert_form_texts(hass, result, SUBENTRY_CONVERSATION)


async def test_the_built_in_models_when_the_list_cannot_be_had(
    hass: HomeAssistant, realtime_fake: FakeProvider, loaded_entry: MockConfigEntry
) -> None:
    realtime_fake.fail_model_listing(503)

    result = await _agent_form(hass, loaded_entry)

    assert _offered(result, CONF_MODEL) == list(PROVIDER_PROFILES[realtime_fake.name].models)
    assert realtime_fake.protocol_errors == []


@pytest.mark.parametrize("provider", [PROVIDER_OPENAI])
async def test_openai_options_are_stored_and_reach_the_session(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    result = await _agent_form(hass, loaded_entry)
    assert _offered(result, CONF_TRANSCRIPTION_MODEL) == [
        "gpt-live-transcribe",
        "gpt-transcribe",
        "gpt-4o-mini-transcribe",
        "gpt-4o-transcribe",
    ]
    chosen: dict[str, dict[str, Any]] = {
        SECTION_BEHAVIOUR: {CONF_MODEL: "gpt-realtime-2", CONF_CUSTOM_VOICE: "voice_1234"},
        SECTION_LISTENING: {
            CONF_NOISE_REDUCTION: "near_field",
            CONF_TRANSCRIPTION_MODEL: "gpt-4o-transcribe",
        },
        SECTION_COSTS: {},
        SECTION_ADVANCED: {CONF_REASONING_EFFORT: "high"},
    }

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: "Tuned", CONF_MAKE_PREFERRED: False, **chosen}
    )

    config = session_config_from_options(result["data"], PROVIDER_OPENAI)
    assert config.noise_reduction is NoiseReduction.NEAR_FIELD
    assert config.input_transcription_model == "gpt-4o-transcribe"
    assert config.custom_voice_id == "voice_1234"
    assert config.reasoning_effort is ReasoningEffort.HIGH


@pytest.mark.parametrize("provider", [PROVIDER_GEMINI])
async def test_gemini_has_none_of_openais_options(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    result = await _agent_form(hass, loaded_entry)

    shown = {path[-1] for path, _ in form_fields(result["data_schema"])}
    assert (
        not {
            CONF_NOISE_REDUCTION,
            CONF_TRANSCRIPTION_MODEL,
            CONF_CUSTOM_VOICE,
            CONF_REASONING_EFFORT,
        }
        & shown
    )
