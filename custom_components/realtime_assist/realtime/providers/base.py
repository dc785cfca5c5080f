"""The contract between the session and a provider's wire protocol.

A provider opens one connection; the session owns it, reads its events,
and replaces it when it drops. Everything protocol-specific (JSON shapes,
event names, truncation, when a response may be requested) stays behind
this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
import json
import logging
import re
import secrets
import struct
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

from ..config import Endpoint, SessionConfig
from ..errors import ConnectionDroppedError, ErrorKind
from ..events import ProviderError, SessionEvent

_LOGGER = logging.getLogger(__name__)

# A send that cannot complete this long means the peer stopped reading: the
# connection is given up (and replaced) rather than blocking the caller forever.
SEND_TIMEOUT_S = 10.0
# Larger messages are refused unread, ending the session (the websocket's `max_size`,
# providers/websocket.py); a second of model audio is well under 100 kB.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# A client's text frame header (RFC 6455 5.2): FIN and the opcode, then MASK and the length.
_FIN_TEXT = 0x81
_MASKED = 0x80
_HEADER_SHORT = struct.Struct("!BB")
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")
_RETRY_AFTER = re.compile(r"(?:try again|retry) in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)


class HistoryRole(StrEnum):
    """Who said a remembered turn."""

    USER = "user"
    ASSISTANT = "assistant"


class HistoryKind(StrEnum):
    """What a remembered item is."""

    MESSAGE = "message"
    # The model's function call (`text` holds its JSON arguments).
    FUNCTION_CALL = "function_call"
    # Our answer to a call (`text` holds the JSON result).
    FUNCTION_OUTPUT = "function_output"


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """A finished turn (or a tool round), kept by the session to restore a new connection."""

    role: HistoryRole
    text: str
    kind: HistoryKind = HistoryKind.MESSAGE
    call_id: str | None = None
    name: str | None = None


class ConnectionLost(Exception):
    """The socket closed without the session asking; `retryable` says whether to reconnect.

    `kind` says why when the provider told (a rate limit, quota, a server error);
    `retry_after_s` is its "try again in" hint.
    """

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool = True,
        kind: ErrorKind = ErrorKind.CONNECTION,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.kind = kind
        self.retry_after_s = retry_after_s


def retry_after(message: str) -> float | None:
    """The delay in a provider's "Please try again in 1.8s" / "retry in 250ms", if any."""
    match = _RETRY_AFTER.search(message)
    if match is None:
        return None
    value = float(match[1])
    return value / 1000 if match[2].lower() == "ms" else value


async def send_frame(socket: ClientConnection, frame: str | bytes) -> None:
    """Send one text frame (bytes: already UTF-8); a closed or stalled socket becomes
    ConnectionDroppedError.

    A stalled one is aborted, so the reader sees the drop and reconnects.
    A frame the socket can take at once goes out through `write_now`; anything
    else goes through `websockets`, which waits when its write buffer is full
    (the peer stopped reading), up to a deadline.
    """
    if isinstance(frame, bytes) and write_now(socket, frame):
        return
    try:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await socket.send(frame, text=True)
    except ConnectionClosed as err:
        raise ConnectionDroppedError(f"connection closed: {err}") from err
    except TimeoutError as err:
        socket.transport.abort()
        raise ConnectionDroppedError("the provider stopped reading") from err


def write_now(socket: ClientConnection, frame: bytes) -> bool:
    """Write one text frame (UTF-8) if the open socket can take it without waiting.

    Framed here and handed to the transport at once: no timer, no task switch,
    and about 40 % less than `websockets`' send per frame in place
    (ARCHITECTURE.md, "Where audio goes"). False: nothing was written.
    """
    if not _writable_now(socket, len(frame)):
        return False
    socket.transport.write(_masked_text_frame(frame))
    return True


def _writable_now(socket: ClientConnection, size: int) -> bool:
    """Open, no extension that rewrites frames (we ask for none), and `size` more bytes
    leave the write buffer well under the mark where the transport pauses its writer
    (half of it: room for framing and TLS records)."""
    transport = socket.transport
    if socket.protocol.state is not State.OPEN or socket.protocol.extensions:
        return False
    if transport.is_closing():
        return False
    _, high = transport.get_write_buffer_limits()
    return 2 * (transport.get_write_buffer_size() + size) < high


def _masked_text_frame(payload: bytes) -> bytes:
    """One final text frame as a client sends it (RFC 6455 5.2: a fresh random mask)."""
    size = len(payload)
    if size < 126:
        header = _HEADER_SHORT.pack(_FIN_TEXT, _MASKED | size)
    elif size < 1 << 16:
        header = _HEADER_16.pack(_FIN_TEXT, _MASKED | 126, size)
    else:
        header = _HEADER_64.pack(_FIN_TEXT, _MASKED | 127, size)
    mask = secrets.token_bytes(4)
    return header + mask + apply_mask(payload, mask)


def decode_message(raw: str | bytes) -> dict[str, Any] | ProviderError:
    """A frame as a JSON object, or the protocol error to report instead."""
    try:
        message = json.loads(raw)
    except ValueError:
        return protocol_error("malformed JSON", raw)
    if not isinstance(message, dict):
        return protocol_error("a JSON value that is not an object", raw)
    return message


def protocol_error(what: str, raw: str | bytes | dict[str, Any]) -> ProviderError:
    """Malformed data from the provider: logged once, reported, then ignored."""
    _LOGGER.warning("Ignoring malformed data from the provider (%s): %.200r", what, raw)
    return ProviderError("malformed_event", f"the provider sent {what}", kind=ErrorKind.PROTOCOL)


class ProviderConnection(ABC):
    """One open, configured connection to the provider."""

    # PCM16 mono sample rate the provider wants on the way in.
    input_sample_rate: int
    # Longest a single connection may live; the session recycles it before.
    max_duration_s: float | None = None
    # A new connection restored from history still knows tool calls the model is
    # waiting on (OpenAI replays them); otherwise they are withdrawn at a reconnect.
    carries_tool_calls: bool = False

    @abstractmethod
    def events(self) -> AsyncIterator[SessionEvent]:
        """Yield the provider's events; raise ConnectionLost when the socket drops."""

    @abstractmethod
    async def send_audio(self, pcm: bytes) -> None:
        """Append user audio (PCM16 mono at `input_sample_rate`)."""

    def send_audio_now(self, pcm: bytes) -> bool:
        """Append user audio without waiting, if the socket can take it at once.

        False: nothing was sent; `send_audio` must (it may wait).
        """
        return False

    @abstractmethod
    async def commit_audio(self) -> None:
        """End the user's turn by hand (turn detection off)."""

    @abstractmethod
    async def clear_audio(self) -> None:
        """Drop user audio not yet committed."""

    @abstractmethod
    async def send_text(self, text: str, *, respond: bool) -> None:
        """Add a user text message; start a response when `respond`."""

    @abstractmethod
    async def send_image(self, image: bytes, mime_type: str) -> None:
        """Show the model an image (a camera frame)."""

    @abstractmethod
    async def send_tool_result(self, call_id: str, name: str, result: dict[str, Any]) -> None:
        """Answer a tool call; the provider continues the response when it may."""

    @abstractmethod
    async def create_response(self, instructions: str | None = None) -> None:
        """Ask the model to respond now."""

    @abstractmethod
    async def interrupt(self, played: Mapping[str, int]) -> None:
        """Stop the current response; the model keeps only what was heard of each audio item.

        `played` maps audio item ids to the milliseconds heard; items it leaves
        out fall back to the connection's own estimate.
        """

    @abstractmethod
    def report_played(self, item_id: str, played_ms: int) -> None:
        """Tell how much of one audio item the user has heard so far."""

    @abstractmethod
    async def restore(self, history: Sequence[HistoryItem]) -> None:
        """Bring a new connection up to date: replay the turns, unless it resumed them."""

    @abstractmethod
    async def update(self, config: SessionConfig) -> bool:
        """Change the configuration for this connection and the ones after it.

        False when the change needs a new connection (the session opens one,
        with `resume_state`, once idle); True when it applied live or needs no
        new connection to take effect later.
        """

    def resume_state(self) -> object | None:
        """What a new connection needs to resume this one's conversation server-side."""
        return None

    @abstractmethod
    async def close(self) -> None:
        """Close the socket; `events` ends."""


class Provider(ABC):
    """Opens connections to one realtime API."""

    name: str

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    @abstractmethod
    async def connect(
        self, config: SessionConfig, resume: object | None = None
    ) -> ProviderConnection:
        """Open and configure a connection (resuming a previous one's conversation if given).

        Raises AuthenticationError for rejected credentials and ConnectError
        (with its `kind`) when the endpoint cannot be reached or refuses the
        configuration.
        """

    @abstractmethod
    async def list_models(self, http: aiohttp.ClientSession) -> list[str]:
        """The realtime models the key may use, sorted by name, as the provider lists them.

        Raises AuthenticationError for a rejected key and ConnectError (with its
        `kind`) when the list cannot be had.
        """
