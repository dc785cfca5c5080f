"""Sessions against either fake provider: the settings the session-level tests share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from custom_components.realtime_assist.realtime.config import SessionConfig
from custom_components.realtime_assist.realtime.providers import PROVIDER_GEMINI, PROVIDER_OPENAI
from custom_components.realtime_assist.realtime.session import (
    RealtimeSession,
    ReconnectPolicy,
    Subscription,
)

RATE = 16000
MODELS = {PROVIDER_OPENAI: "gpt-realtime", PROVIDER_GEMINI: "gemini-3.8-live"}
FAST = ReconnectPolicy(attempts=3, first_delay_s=0.01, max_delay_s=0.05)

type OpenSession = Callable[..., Awaitable[tuple[RealtimeSession, Subscription]]]


def session_config(name: str, **changes: Any) -> SessionConfig:
    settings: dict[str, Any] = {
        "model": MODELS[name],
        "instructions": "You run a home.",
        "input_transcription_model": "gpt-4o-mini-transcribe",
    }
    return SessionConfig(**(settings | changes))
