"""Which models a key may use, as each provider's (fake) listing endpoint says.

Both fakes serve their REST listing on the port of their realtime socket; the
client reaches it with a real aiohttp session, as Home Assistant's shared one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from homeassistant.const import CONF_API_KEY, CONF_URL
import pytest

from custom_components.realtime_assist.const import PROVIDER_PROFILES
from custom_components.realtime_assist.realtime.config import Endpoint
from custom_components.realtime_assist.realtime.errors import (
    AuthenticationError,
    ConnectError,
    ErrorKind,
)
from custom_components.realtime_assist.realtime.providers import (
    PROVIDER_GEMINI,
    PROVIDER_OPENAI,
    create_provider,
)
from custom_components.realtime_assist.realtime.providers.listing import ordered_models
from tests.fakes import gemini_live, openai_realtime
from tests.fakes.providers import FakeProvider, GeminiFake, OpenAIFake
from tests.fixtures_entry import every_provider

provider = every_provider


@pytest.fixture
async def http(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _endpoint(fake: FakeProvider, api_key: str | None = None) -> Endpoint:
    data = fake.entry_data()
    return Endpoint(api_key=api_key or data[CONF_API_KEY], url=data[CONF_URL])


async def test_the_key_lists_its_realtime_models_only(
    realtime_fake: FakeProvider, http: aiohttp.ClientSession
) -> None:
    models = await create_provider(realtime_fake.name, _endpoint(realtime_fake)).list_models(http)

    assert models == sorted(models)
    if isinstance(realtime_fake, OpenAIFake):
        assert "gpt-realtime-2.1" in models
        assert "gpt-4o-realtime-preview" in models
        # Chat, speech and transcription models are listed too, but hold no conversation.
        assert not set(openai_realtime.OTHER_MODELS) & set(models)
        assert not [model for model in models if model.startswith("gpt-audio")]
    else:
        assert isinstance(realtime_fake, GeminiFake)
        # Every page (the fake pages by 50 unless asked), and only `bidiGenerateContent` ones.
        assert set(models) == set(realtime_fake.server.models)
        assert not set(gemini_live.OTHER_MODELS) & set(models)


async def test_the_recommended_models_lead_and_the_rest_follow(
    realtime_fake: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """How the config flow orders the list: the built-in choices the key has, then the rest."""
    profile = PROVIDER_PROFILES[realtime_fake.name]
    listed = await create_provider(realtime_fake.name, _endpoint(realtime_fake)).list_models(http)

    ordered = ordered_models(listed, profile.models)

    assert ordered[0] == profile.default_model
    assert sorted(ordered) == listed
    rest = ordered[len([m for m in profile.models if m in listed]) :]
    assert rest == sorted(rest)


async def test_a_wrong_key_is_an_auth_error(
    realtime_fake: FakeProvider, http: aiohttp.ClientSession
) -> None:
    endpoint = _endpoint(realtime_fake, api_key="not-the-key")
    with pytest.raises(AuthenticationError):
        await create_provider(realtime_fake.name, endpoint).list_models(http)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(503, ErrorKind.SERVER), (429, ErrorKind.RATE_LIMIT), (404, ErrorKind.REQUEST)],
)
async def test_a_failed_listing_says_why(
    realtime_fake: FakeProvider, http: aiohttp.ClientSession, status: int, kind: ErrorKind
) -> None:
    realtime_fake.fail_model_listing(status)
    with pytest.raises(ConnectError) as failed:
        await create_provider(realtime_fake.name, _endpoint(realtime_fake)).list_models(http)
    assert failed.value.kind is kind


@pytest.mark.parametrize("name", [PROVIDER_OPENAI, PROVIDER_GEMINI])
async def test_an_unreachable_endpoint_is_a_connection_error(
    unreachable_url: str, http: aiohttp.ClientSession, name: str
) -> None:
    provider = create_provider(name, Endpoint(api_key="key", url=unreachable_url))
    with pytest.raises(ConnectError) as failed:
        await provider.list_models(http)
    assert failed.value.kind is ErrorKind.CONNECTION
