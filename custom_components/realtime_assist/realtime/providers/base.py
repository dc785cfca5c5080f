"""The contract between the session and a provider's wire protocol.

A provider opens one connection; the session owns it, reads its events,
and replaces it when it drops. Everything protocol-specific (JSON shapes,
event names, truncation, when a response may be requested) stays behind
this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..config import Endpoint, SessionConfig
from ..events import SessionEvent


class HistoryRole(StrEnum):
    """Who said a remembered turn."""

    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """A finished turn, kept by the session to restore a new connection."""

    role: HistoryRole
    text: str


class ConnectionLost(Exception):
    """The socket closed without the session asking; `retryable` says whether to reconnect."""

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class ProviderConnection(ABC):
    """One open, configured connection to the provider."""

    # PCM16 mono sample rate the provider wants on the way in.
    input_sample_rate: int
    # Longest a single connection may live; the session recycles it before.
    max_duration_s: float | None = None

    @abstractmethod
    def events(self) -> AsyncIterator[SessionEvent]:
        """Yield the provider's events; raise ConnectionLost when the socket drops."""

    @abstractmethod
    async def send_audio(self, pcm: bytes) -> None:
        """Append user audio (PCM16 mono at `input_sample_rate`)."""

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
    async def interrupt(self, played_ms: int | None) -> None:
        """Stop the current response; the model keeps only `played_ms` of its audio."""

    @abstractmethod
    def report_played(self, played_ms: int) -> None:
        """Tell how much of the current response's audio the user has heard."""

    @abstractmethod
    async def restore(self, history: Sequence[HistoryItem]) -> None:
        """Bring a new connection up to date: replay the turns, unless it resumed them."""

    @abstractmethod
    async def update(self, config: SessionConfig) -> bool:
        """Change instructions, tools or turn detection on the live connection.

        False when the protocol cannot change them live: the next connection
        (opened with `resume_state`) starts with them.
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
        when the endpoint cannot be reached or refuses the configuration.
        """
