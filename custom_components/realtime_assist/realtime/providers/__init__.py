"""Realtime providers: one module per wire protocol."""

from ..config import Endpoint
from .base import Provider
from .gemini import GeminiLiveProvider
from .openai import OpenAIRealtimeProvider

PROVIDER_OPENAI = "openai"
PROVIDER_GEMINI = "gemini"

PROVIDERS: dict[str, type[Provider]] = {
    PROVIDER_OPENAI: OpenAIRealtimeProvider,
    PROVIDER_GEMINI: GeminiLiveProvider,
}


def create_provider(name: str, endpoint: Endpoint) -> Provider:
    """Build the provider registered under `name` (a config entry's `provider`)."""
    return PROVIDERS[name](endpoint)
