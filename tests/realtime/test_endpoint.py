"""Which endpoints the core connects to, and what it sends them, for both providers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
import logging

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from custom_components.realtime_assist.realtime.config import Endpoint, SessionConfig
from custom_components.realtime_assist.realtime.errors import (
    ConnectError,
    InvalidEndpointError,
    UnencryptedEndpointError,
)
from custom_components.realtime_assist.realtime.providers.gemini import GeminiLiveProvider, live_url
from custom_components.realtime_assist.realtime.providers.openai import (
    OpenAIRealtimeProvider,
    realtime_url,
)
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer

SECRET = "sk-secret-in-the-url"


def _openai_url(endpoint: Endpoint) -> str:
    return realtime_url(endpoint, "gpt-realtime")[0]


URL_BUILDERS: dict[str, Callable[[Endpoint], str]] = {"openai": _openai_url, "gemini": live_url}


@pytest.fixture(params=list(URL_BUILDERS))
def url_of(request: pytest.FixtureRequest) -> Callable[[Endpoint], str]:
    """Each provider's URL builder in turn."""
    return URL_BUILDERS[request.param]


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        (None, "wss"),  # the provider's own endpoint
        ("https://example.openai.azure.com/openai/v1", "wss"),
        ("wss://realtime.example.com", "wss"),
        ("http://127.0.0.1:8080", "ws"),
        ("ws://127.0.0.5:8080", "ws"),
        ("http://localhost:8080", "ws"),
        ("ws://[::1]:8080", "ws"),
    ],
)
def test_encrypted_or_loopback_endpoints_are_used(
    url_of: Callable[[Endpoint], str], url: str | None, scheme: str
) -> None:
    assert url_of(Endpoint(api_key="key", url=url)).startswith(f"{scheme}://")


@pytest.mark.parametrize(
    "url",
    [
        f"ws://realtime.example.com/v1?key={SECRET}",
        f"http://192.168.1.20:8080/v1?key={SECRET}",
        f"HTTP://10.0.0.2/v1?key={SECRET}",
    ],
)
def test_clear_text_to_another_machine_needs_the_users_consent(
    url_of: Callable[[Endpoint], str], url: str
) -> None:
    """Refused by default, without the URL in the error; allowed when the user ticked it."""
    with pytest.raises(UnencryptedEndpointError) as refused:
        url_of(Endpoint(api_key="key", url=url))
    assert SECRET not in str(refused.value)

    allowed = url_of(Endpoint(api_key="key", url=url, allow_unencrypted=True))
    assert allowed.startswith("ws://")


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://realtime.example.com/?key={SECRET}",
        f"wss:///v1?key={SECRET}",
        f"wss://realtime.example.com:port/v1?key={SECRET}",
        f"wss://[realtime.example.com/v1?key={SECRET}",
        f"realtime.example.com/v1?key={SECRET}",
    ],
)
def test_invalid_urls_are_refused_without_naming_them(
    url_of: Callable[[Endpoint], str], url: str
) -> None:
    with pytest.raises(InvalidEndpointError) as refused:
        url_of(Endpoint(api_key="key", url=url))
    assert SECRET not in str(refused.value)


def test_endpoint_repr_hides_the_key_and_url() -> None:
    """An endpoint that ends up in a log line shows neither the key nor the URL."""
    text = repr(Endpoint(api_key="sk-live-key", url=f"wss://example.com/?key={SECRET}"))
    assert "sk-live-key" not in text
    assert SECRET not in text


@pytest.fixture
async def redirect_to(
    fake_server: FakeOpenAIRealtimeServer,
) -> AsyncIterator[tuple[str, list[Headers]]]:
    """A server on another port that redirects every handshake to the fake's Azure path.

    Yields its base URL and the headers of each request it got.
    """
    requests: list[Headers] = []

    def redirect(connection: ServerConnection, request: Request) -> Response:
        requests.append(request.headers)
        response = connection.respond(302, "")
        response.headers["Location"] = f"{fake_server.azure_url}/realtime?model=gpt-realtime"
        return response

    async def never(_connection: ServerConnection) -> None:
        raise AssertionError("the handshake was redirected")

    async with serve(never, "127.0.0.1", 0, process_request=redirect) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/openai/v1", requests


async def test_redirects_are_not_followed(
    fake_server: FakeOpenAIRealtimeServer, redirect_to: tuple[str, list[Headers]]
) -> None:
    """A redirect would carry the `api-key` header to another origin: it is an error instead."""
    url, requests = redirect_to
    provider = OpenAIRealtimeProvider(Endpoint(api_key=fake_server.api_key, url=url))

    with pytest.raises(ConnectError, match="HTTP 302"):
        await provider.connect(SessionConfig(model="gpt-realtime"))

    assert len(requests) == 1
    assert fake_server.connections == []


@pytest.mark.parametrize("provider_class", [OpenAIRealtimeProvider, GeminiLiveProvider])
async def test_connect_refuses_clear_text_to_another_machine(
    provider_class: type[OpenAIRealtimeProvider | GeminiLiveProvider],
) -> None:
    """The rule holds at connect time too, whatever stored the endpoint."""
    provider = provider_class(Endpoint(api_key="key", url="ws://realtime.example.com"))
    with pytest.raises(UnencryptedEndpointError):
        await provider.connect(SessionConfig(model="model"))


async def test_debug_log_of_the_handshake_hides_the_key(
    fake_server: FakeOpenAIRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """`websockets` logs every handshake header at debug level: the key is masked."""
    provider = OpenAIRealtimeProvider(Endpoint(api_key=fake_server.api_key, url=fake_server.url))
    with caplog.at_level(logging.DEBUG, logger="websockets.client"):
        connection = await provider.connect(SessionConfig(model="gpt-realtime"))
        await connection.close()

    # (The fake server logs what it received; only the client's lines are ours.)
    client_log = [r.getMessage() for r in caplog.records if r.name.startswith("websockets.client")]
    assert "> Authorization: **REDACTED**" in client_log
    assert not [line for line in client_log if fake_server.api_key in line]
