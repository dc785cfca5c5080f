"""Opening a provider's websocket: what both wire protocols do the same way.

Every connection follows the same safety rules, so a provider module cannot
forget one:

- The key never travels in clear text to another machine: `ws://` (and
  `http://`) endpoints are refused unless the host is this machine's loopback or
  the user allowed an unencrypted connection (`endpoint_url`).
- TLS uses the owner's client context (`Endpoint.ssl_context`), built once.
- A message from the provider is at most `MAX_MESSAGE_BYTES`; a larger one is
  refused unread and ends the session with an error (`provider_fault`), instead
  of filling memory.
- Redirects are not followed: the key header would go along to wherever the
  redirect points.
- Errors never carry the URL, which may hold a key, and the handshake's
  credential headers are masked in `websockets`' debug log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
import ipaddress
import json
import logging
import ssl
from typing import Any, override
from urllib.parse import SplitResult, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidProxy,
    InvalidStatus,
    InvalidURI,
)
from websockets.frames import CloseCode

from ..config import Endpoint
from ..errors import (
    AuthenticationError,
    ConnectError,
    ErrorKind,
    InvalidEndpointError,
    UnencryptedEndpointError,
)
from .base import MAX_MESSAGE_BYTES, ConnectionLost

HANDSHAKE_TIMEOUT_S = 10.0
_SCHEMES = {"https": "wss", "wss": "wss", "http": "ws", "ws": "ws"}
# Close codes we send when the provider broke the protocol (a message over
# MAX_MESSAGE_BYTES, invalid UTF-8, a malformed frame): another connection to the
# same provider would meet the same fault.
_PROVIDER_FAULTS = frozenset(
    {CloseCode.MESSAGE_TOO_BIG, CloseCode.INVALID_DATA, CloseCode.PROTOCOL_ERROR}
)
# Headers that carry the key (Basic auth from a URL's user info included).
_CREDENTIAL_HEADERS = frozenset({"authorization", "api-key", "x-goog-api-key"})


def _mask_credentials(record: logging.LogRecord) -> logging.LogRecord:
    """At debug level `websockets` logs every handshake header ("> %s: %s"): mask the key."""
    args = record.args
    if (
        isinstance(args, tuple)
        and len(args) == 2
        and record.msg == "> %s: %s"
        and str(args[0]).lower() in _CREDENTIAL_HEADERS
    ):
        record.args = (args[0], "**REDACTED**")
    return record


# Our connections log here (under `websockets.client`, so its log settings apply).
_WIRE_LOGGER = logging.getLogger("websockets.client.realtime_assist")
_WIRE_LOGGER.addFilter(_mask_credentials)


def endpoint_url(endpoint: Endpoint, default_url: str) -> SplitResult:
    """The endpoint's base URL as a websocket URL, once it passes the transport rules.

    Raises InvalidEndpointError for what is not an http(s)/ws(s) URL with a
    host, and UnencryptedEndpointError for clear text to another machine that
    the user did not allow. Neither error names the URL.
    """
    try:
        parts = urlsplit((endpoint.url or default_url).strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise InvalidEndpointError("the endpoint URL is not a valid URL") from None
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise InvalidEndpointError(
            "the endpoint URL must start with https://, wss://, http:// or ws:// and name a host"
        )
    if scheme == "ws" and not endpoint.allow_unencrypted and not is_loopback(parts.hostname):
        raise UnencryptedEndpointError(
            "the endpoint is not encrypted (http:// or ws://) and not on this machine; "
            "the API key would travel in clear text"
        )
    return parts._replace(scheme=scheme)


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine (`localhost`, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Connect(connect):
    """`websockets.connect` that never follows a redirect.

    `websockets` strips only `Authorization` on a cross-origin redirect, not
    Azure's `api-key` or Gemini's `x-goog-api-key`; no provider redirects its
    realtime socket, so a redirect is refused (an HTTP 3xx ConnectError).
    """

    @override
    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


async def open_socket(
    url: str, headers: dict[str, str], ssl_context: ssl.SSLContext | None = None
) -> ClientConnection:
    """Open the websocket; a refused handshake becomes AuthenticationError or ConnectError.

    `url` must have passed `endpoint_url`. `ssl_context` is used for `wss://`;
    None lets `websockets` build a default one.
    """
    options: dict[str, Any] = {}
    if url.startswith("wss:") and ssl_context is not None:
        options["ssl"] = ssl_context
    try:
        return await _Connect(
            url,
            additional_headers=headers,
            open_timeout=HANDSHAKE_TIMEOUT_S,
            max_size=MAX_MESSAGE_BYTES,
            # Audio messages are large and already compressed enough; the SDKs do the same.
            compression=None,
            user_agent_header=None,
            logger=_WIRE_LOGGER,
            **options,
        )
    except InvalidStatus as err:
        status = err.response.status_code
        if status in (401, 403):
            raise AuthenticationError(_refusal(err)) from err
        raise ConnectError(f"handshake rejected: HTTP {status}") from err
    # Their texts (chained ones included) name the URL and the proxy URL, which may
    # hold a key or a password.
    except InvalidURI:
        raise InvalidEndpointError("the endpoint URL is not a valid websocket URL") from None
    except InvalidProxy:
        raise ConnectError("the configured proxy is not a valid proxy URL") from None
    except (OSError, TimeoutError, InvalidHandshake) as err:
        raise ConnectError(str(err) or type(err).__name__) from err


def _refusal(err: InvalidStatus) -> str:
    """The reason a server gave for refusing the handshake (JSON `error.message`)."""
    try:
        body = json.loads(err.response.body or b"{}")
        return str(body["error"]["message"])
    except ValueError, KeyError, TypeError:
        return f"HTTP {err.response.status_code}"


def provider_fault(err: ConnectionClosed) -> ConnectionLost | None:
    """The end of a live socket that our side failed because the provider broke the protocol.

    A message over MAX_MESSAGE_BYTES, invalid UTF-8, a malformed frame: no close
    frame comes back, and another connection would meet the same fault, so the
    session ends with a protocol error. None for any other close.
    """
    if err.rcvd is not None or err.sent is None or err.sent.code not in _PROVIDER_FAULTS:
        return None
    return ConnectionLost(
        f"the provider sent an invalid message ({err.sent.reason or err.sent.code})",
        retryable=False,
        kind=ErrorKind.PROTOCOL,
    )


async def configure_or_close(
    socket: ClientConnection, configure: Coroutine[Any, Any, None]
) -> None:
    """Run the protocol's setup exchange; close the socket if it fails or times out."""
    try:
        await asyncio.wait_for(configure, HANDSHAKE_TIMEOUT_S)
    except TimeoutError as err:
        await socket.close()
        raise ConnectError("the server did not confirm the session setup") from err
    except BaseException:
        await socket.close()
        raise
