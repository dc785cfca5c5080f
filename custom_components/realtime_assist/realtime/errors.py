"""Errors a realtime session raises to its owner, and the one list of what can go wrong."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """Why something failed, in terms its owner can act on (reauth, repairs, retry, wait)."""

    # The provider rejected or revoked the key: only a new key helps.
    AUTH = "auth"
    # Billing: quota, credits or a hard limit exhausted.
    QUOTA = "quota"
    # Too many requests for now: retrying later helps.
    RATE_LIMIT = "rate_limit"
    # The provider failed on its side.
    SERVER = "server"
    # Unreachable, or the connection dropped beyond what reconnecting fixed.
    CONNECTION = "connection"
    # The provider sent malformed or invalid data.
    PROTOCOL = "protocol"
    # The provider refused what we sent.
    REQUEST = "request"
    # Transcribing the user's audio failed.
    TRANSCRIPTION = "transcription"


class RealtimeError(Exception):
    """Base class for realtime session errors; `kind` says what failed."""

    kind: ErrorKind = ErrorKind.CONNECTION

    def __init__(self, message: str = "", *, kind: ErrorKind | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class AuthenticationError(RealtimeError):
    """The provider rejected the credentials (bad or revoked API key)."""

    kind = ErrorKind.AUTH


class ConnectError(RealtimeError):
    """The provider could not be reached, or refused the connection or its setup."""


class ConnectionDroppedError(RealtimeError):
    """The socket closed (or stalled) while input was being sent; the session reconnects."""


class InvalidEndpointError(ConnectError):
    """The endpoint URL is not a websocket (or http) URL we can connect to."""


class UnencryptedEndpointError(ConnectError):
    """The endpoint is not encrypted, not on this machine, and the user did not allow that."""


class SessionClosedError(RealtimeError):
    """Input was sent to a session that has ended."""
