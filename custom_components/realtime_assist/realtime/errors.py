"""Errors a realtime session raises to its owner."""


class RealtimeError(Exception):
    """Base class for realtime session errors."""


class AuthenticationError(RealtimeError):
    """The provider rejected the credentials (bad or revoked API key)."""


class ConnectError(RealtimeError):
    """The provider could not be reached or the handshake failed."""


class SessionClosedError(RealtimeError):
    """Input was sent to a session that has ended."""
