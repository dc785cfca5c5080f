"""How the integration reaches the provider: TLS, clear text, message size, no leaked URLs.

Against each provider's fake on loopback; the TLS tests make the fake speak
`wss://` with a certificate created here, which the client trusts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import datetime
import ipaddress
from pathlib import Path
import ssl
from typing import Any
from unittest.mock import patch

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from homeassistant import block_async_io
from homeassistant.components import conversation
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_API_KEY, CONF_URL
from homeassistant.core import Context, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.translation import async_get_translations
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator
import pytest_socket

from custom_components.realtime_assist.const import (
    CONF_ALLOW_UNENCRYPTED,
    CONF_PROVIDER,
    DOMAIN,
    SECTION_ADVANCED,
)
from custom_components.realtime_assist.realtime.providers import PROVIDER_GEMINI
from custom_components.realtime_assist.realtime.providers.base import MAX_MESSAGE_BYTES
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.gemini_live import FakeGeminiLiveServer
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.fakes.providers import FakeProvider, GeminiFake, OpenAIFake
from tests.fixtures_entry import GEMINI_PLAYBACK_WAIT_S, every_provider
from tests.pipeline_helpers import PipelineRun, our_pipeline, run_pipeline

AGENT_ID = "conversation.realtime_assist"

# Each test runs against each provider's fake (tests/fixtures_entry.py).
provider = every_provider

pytestmark = pytest.mark.usefixtures("ha_core")


# -- TLS -------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and localhost): its PEM file and key file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Realtime Assist test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = tmp_path / "cert.pem"
    key_file = tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def trusted_client_context(certificate: tuple[Path, Path]) -> Iterator[ssl.SSLContext]:
    """Home Assistant's client SSL context, as if the test certificate were a public CA's.

    Built here, before the event loop runs anything, as Home Assistant builds its
    own at startup.
    """
    context = ssl.create_default_context(cafile=str(certificate[0]))
    with patch("homeassistant.util.ssl.get_default_context", return_value=context):
        yield context


@pytest.fixture
async def tls_fake(
    socket_enabled: None, provider: str, certificate: tuple[Path, Path]
) -> AsyncIterator[FakeProvider]:
    """The provider's fake speaking TLS with the test certificate (`wss://`)."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(*certificate)
    if provider == PROVIDER_GEMINI:
        gemini = FakeGeminiLiveServer()
        gemini.turn_complete_delay_s = GEMINI_PLAYBACK_WAIT_S
        gemini.ssl_context = server_context
        async with gemini:
            yield GeminiFake(gemini)
    else:
        openai = FakeOpenAIRealtimeServer()
        openai.ssl_context = server_context
        async with openai:
            yield OpenAIFake(openai)


@pytest.fixture
def report_blocking_calls(
    disable_block_async_io: None, trusted_client_context: ssl.SSLContext
) -> None:
    """Home Assistant's blocking-call detection as a running instance has it.

    The test harness leaves the SSL (and file) checks out (`skip_for_tests`);
    a real Home Assistant logs "Detected blocking call to load_default_certs"
    when an SSL context is built in the event loop.
    """
    with patch.object(block_async_io, "_IN_TESTS", False):
        block_async_io.enable()


@pytest.mark.usefixtures("report_blocking_calls")
async def test_wss_endpoint_uses_home_assistants_context_and_blocks_nothing(
    hass: HomeAssistant,
    tls_fake: FakeProvider,
    mock_config_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Setup and a turn over `wss://` work, and no SSL context is built in the event loop."""
    assert tls_fake.entry_data()[CONF_URL].startswith("wss://127.0.0.1:")
    hass.config_entries.async_update_entry(mock_config_entry, data=tls_fake.entry_data())
    tls_fake.say("Hello over TLS.")

    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    result = await conversation.async_converse(hass, "Hi", None, Context(), agent_id=AGENT_ID)

    assert result.response.speech["plain"]["speech"] == "Hello over TLS."
    assert "Detected blocking call" not in caplog.text
    assert tls_fake.protocol_errors == []


# -- clear text ------------------------------------------------------------------


SECRET = "sk-secret-in-url"
SATELLITE_RATE = 16000
UTTERANCE = (
    silence(0.2, SATELLITE_RATE) + speech_like(1.0, SATELLITE_RATE) + silence(1.0, SATELLITE_RATE)
)


def _speech(run: PipelineRun) -> str:
    return str(run.one("intent-end")["intent_output"]["response"]["speech"]["plain"]["speech"])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"ws://realtime.example.com/v1?key={SECRET}", "not encrypted"),
        (f"http://192.168.1.20:8080/v1?key={SECRET}", "not encrypted"),
        (f"wss://[realtime.example.com/v1?key={SECRET}", "URL is not valid"),
    ],
)
async def test_refused_endpoint_fails_setup_without_naming_the_url(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    mock_config_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
    url: str,
    reason: str,
) -> None:
    """An entry whose endpoint the rules refuse (stored before them, or edited by hand)
    fails setup for good with a translated reason that does not carry the URL."""
    hass.config_entries.async_update_entry(
        mock_config_entry, data={**mock_config_entry.data, CONF_URL: url}
    )

    await hass.config_entries.async_setup(mock_config_entry.entry_id)

    # Refused before any connection: trying one would have failed differently.
    assert mock_config_entry.state is ConfigEntryState.SETUP_ERROR
    assert mock_config_entry.reason is not None
    assert reason in mock_config_entry.reason
    assert SECRET not in f"{mock_config_entry.reason} {caplog.text}"


async def test_config_flow_refuses_clear_text_to_another_machine(
    hass: HomeAssistant, provider: str
) -> None:
    """The form says why (translated) and keeps the user on it."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_PROVIDER: provider,
            CONF_API_KEY: "sk-any",
            SECTION_ADVANCED: {CONF_URL: "ws://realtime.example.com/v1"},
        },
    )

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "unencrypted_url"}
    translations = await async_get_translations(hass, "en", "config", [DOMAIN])
    prefix = f"component.{DOMAIN}.config"
    assert "clear text" in translations[f"{prefix}.error.unencrypted_url"]
    for step in ("user", "reconfigure"):
        advanced = f"{prefix}.step.{step}.sections.advanced"
        assert translations[f"{advanced}.data.allow_unencrypted"]
        assert "clear text" in translations[f"{advanced}.data_description.allow_unencrypted"]


# -- message size ------------------------------------------------------------------


async def _send_oversized_message(fake: FakeProvider) -> None:
    """One provider message just over the client's limit (a runaway audio chunk, say)."""
    message = "A" * (MAX_MESSAGE_BYTES + 1)
    if isinstance(fake, OpenAIFake):
        await fake.server.inject(fake.server.connections[-1], message)
    else:
        assert isinstance(fake, GeminiFake)
        await fake.server.inject(fake.server.connections[-1], message.encode())


async def test_oversized_message_ends_the_turn_with_an_error_and_the_next_turn_works(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
) -> None:
    """A satellite's turn: a message over the limit, mid-answer, ends the session at once
    (never a hang or a memory spike) and the user hears why; their next turn in the same
    conversation gets a fresh session and its answer."""
    hold = realtime_fake.pacing.hold = asyncio.Event()
    realtime_fake.hear("Tell me a story.")
    realtime_fake.say("Once upon a time, a story began that never ended.")
    pipeline_id = our_pipeline(hass, loaded_entry).id
    answering = asyncio.Event()

    def on_event(event: dict[str, Any]) -> None:
        delta = (event.get("data") or {}).get("chat_log_delta") or {}
        if event["type"] == "intent-progress" and delta.get("content"):
            answering.set()

    first = hass.async_create_task(
        run_pipeline(hass_ws_client, pipeline_id, UTTERANCE, on_event=on_event)
    )
    await answering.wait()
    await _send_oversized_message(realtime_fake)
    async with asyncio.timeout(10):
        failed = await first
    connections = len(realtime_fake.connections)

    # The user hears that the provider's answer made no sense (a protocol error).
    exceptions = await async_get_translations(hass, "en", "exceptions", [DOMAIN])
    heard = exceptions[f"component.{DOMAIN}.exceptions.turn_failed_protocol.message"]
    assert _speech(failed) == heard

    hold.set()
    realtime_fake.hear("Then a short one.")
    realtime_fake.say("Here is a short one.")
    conversation_id = failed.one("intent-end")["intent_output"]["conversation_id"]
    run = await run_pipeline(
        hass_ws_client, pipeline_id, UTTERANCE, conversation_id=conversation_id
    )
    assert _speech(run) == "Here is a short one."
    assert len(realtime_fake.connections) == connections + 1
    assert realtime_fake.protocol_errors == []


@pytest.fixture
def unspecified_address_reachable(socket_enabled: None) -> None:
    """Let the test connect to `0.0.0.0`, which stands in for another machine.

    Tests reach no other machine. `0.0.0.0` is no loopback address, so the rule
    treats it as remote, yet Linux connects it to this machine's listeners.
    """
    pytest_socket.socket_allow_hosts(["127.0.0.1", "0.0.0.0"])


@pytest.mark.usefixtures("unspecified_address_reachable")
async def test_config_flow_sends_the_key_in_clear_text_only_when_ticked(
    hass: HomeAssistant, realtime_fake: FakeProvider, provider: str
) -> None:
    """Clear text to another machine: refused until the user ticks the option, which is
    stored and honoured when the entry connects; unticking it takes it back."""
    url = realtime_fake.entry_data()[CONF_URL].replace("127.0.0.1", "0.0.0.0")
    form = {
        CONF_PROVIDER: provider,
        CONF_API_KEY: realtime_fake.entry_data()[CONF_API_KEY],
        SECTION_ADVANCED: {CONF_URL: url},
    }
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], form)
    assert result["errors"] == {"base": "unencrypted_url"}

    form[SECTION_ADVANCED] = {CONF_URL: url, CONF_ALLOW_UNENCRYPTED: True}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], form)
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.data[CONF_ALLOW_UNENCRYPTED] is True
    assert entry.state is ConfigEntryState.LOADED

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_API_KEY: form[CONF_API_KEY], SECTION_ADVANCED: {CONF_URL: url}}
    )
    assert result["errors"] == {"base": "unencrypted_url"}
    assert entry.data[CONF_ALLOW_UNENCRYPTED] is True

    loopback = realtime_fake.entry_data()[CONF_URL]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_API_KEY: form[CONF_API_KEY], SECTION_ADVANCED: {CONF_URL: loopback}},
    )
    await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_URL] == loopback
    assert CONF_ALLOW_UNENCRYPTED not in entry.data
