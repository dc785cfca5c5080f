"""How a realtime session is configured: provider-neutral settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
import ssl
from typing import Any


class TurnDetectionMode(StrEnum):
    """Who decides that the user finished speaking."""

    # The provider's voice activity detection on audio energy and silence.
    SERVER_VAD = "server_vad"
    # The provider's model judges whether the user is done (OpenAI only).
    SEMANTIC_VAD = "semantic_vad"
    # The client commits the audio itself (Home Assistant's own VAD).
    OFF = "off"


class Eagerness(StrEnum):
    """How quickly semantic VAD ends a turn."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    AUTO = "auto"


class OutputModality(StrEnum):
    """What the model answers with."""

    AUDIO = "audio"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class TurnDetection:
    """Turn detection settings; which fields apply depends on the mode."""

    mode: TurnDetectionMode = TurnDetectionMode.SERVER_VAD
    eagerness: Eagerness = Eagerness.AUTO
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_ms: int = 500
    # Let the provider start a response when the user stops speaking.
    create_response: bool = True
    # Let the provider cancel the response when the user speaks over it.
    interrupt_response: bool = True


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call; `parameters` is a JSON schema object."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Everything the model is told when a session (re)connects."""

    model: str
    instructions: str = ""
    voice: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    turn_detection: TurnDetection = TurnDetection()
    output_modality: OutputModality = OutputModality.AUDIO
    # Transcribe the user's audio (the STT result comes from this).
    input_transcription_model: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to connect.

    `url` overrides the provider's default base URL (Azure OpenAI, compatible
    servers, and the fake servers in tests). An `http://`/`ws://` URL would send
    the key in clear text: it is refused unless the host is this machine or the
    user allowed it (`allow_unencrypted`). `ssl_context` is the client TLS
    context, built once by the owner (building one loads the CA bundle from
    disk, which must not happen in an event loop); None lets `websockets` build
    one per connection.
    """

    # Never in a repr: an endpoint may end up in a log line.
    api_key: str = field(repr=False)
    url: str | None = field(default=None, repr=False)
    allow_unencrypted: bool = False
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
