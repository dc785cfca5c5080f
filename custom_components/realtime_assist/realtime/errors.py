"""Errors a realtime session raises to its owner, and what kind of failure each is."""

from enum import StrEnum


class ErrorKind(StrEnum):
    """What went wrong, in terms the owner can act on (reauth, repairs, retry, tell the user)."""

    # The key was rejected or revoked: only a new key helps.
    AUTH = "auth"
    # Billing: no credits, quota used up.
    QUOTA = "quota"
    RATE_LIMIT = "rate_limit"
    # The provider failed on its side.
    SERVER = "server"
    # Unreachable, or the connection dropped beyond retries.
    CONNECTION = "connection"
    # The provider sent something malformed or invalid.
    PROTOCOL = "protocol"
    # The provider refused what we sent.
    REQUEST = "request"
    # The user's audio could not be transcribed.
    TRANSCRIPTION = "transcription"


class RealtimeError(Exception):
    """Base class for realtime session errors."""

    kind = ErrorKind.REQUEST


class AuthenticationError(RealtimeError):
    """The provider rejected the credentials (bad or revoked API key)."""

    kind = ErrorKind.AUTH


class ConnectError(RealtimeError):
    """The provider could not be reached or the handshake failed."""

    kind = ErrorKind.CONNECTION


class SessionClosedError(RealtimeError):
    """Input was sent to a session that has ended."""

    kind = ErrorKind.CONNECTION
