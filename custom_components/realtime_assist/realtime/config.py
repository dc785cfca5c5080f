"""How a realtime session is configured: provider-neutral settings."""

from __future__ import annotations

from collections.abc import Iterable
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


class NoiseReduction(StrEnum):
    """The microphone the provider filters the user's audio for (OpenAI)."""

    # Close to the mouth: headsets, phones.
    NEAR_FIELD = "near_field"
    # Across the room: satellites, speakerphones.
    FAR_FIELD = "far_field"


class ReasoningEffort(StrEnum):
    """How long a reasoning model may think before it answers (OpenAI's reasoning models)."""

    MINIMAL = "minimal"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    XHIGH = "xhigh"


class ImageDetail(StrEnum):
    """How closely the model looks at an image (OpenAI): `low` costs a fixed few tokens."""

    LOW = "low"
    HIGH = "high"
    AUTO = "auto"


# What transcription vocabulary (names of the home) may hold: the providers bias
# recognition towards these terms, and long lists cost tokens on every turn.
MAX_VOCABULARY_TERMS = 100
MAX_VOCABULARY_CHARS = 1000


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
    """A function the model may call; `parameters` is a JSON schema object.

    `blocking`: the model waits for the result before it goes on, because what it
    says next depends on it (a question about the home). Otherwise the call may
    run in the background while the model keeps talking, where the protocol has
    that (Gemini 3.8), and the model mentions the result once it is idle.
    """

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    blocking: bool = False


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
    # The user's language (BCP-47 or ISO 639-1), for the transcription.
    language: str | None = None
    # Names the user may say (devices, areas): the transcription gets them right.
    # Bounded by `vocabulary_within_limits`.
    transcription_vocabulary: tuple[str, ...] = ()
    noise_reduction: NoiseReduction | None = None
    # Applies to reasoning models only; the others are not sent it.
    reasoning_effort: ReasoningEffort | None = None
    # A custom voice the provider made for the account (OpenAI `voice_…`); replaces `voice`.
    custom_voice_id: str | None = None
    image_detail: ImageDetail | None = None


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


def vocabulary_within_limits(terms: Iterable[str]) -> tuple[str, ...]:
    """The terms in order (the most wanted first), without blanks and repeats in any
    case, as many as the limits take."""
    kept: list[str] = []
    seen: set[str] = set()
    chars = 0
    for term in terms:
        cleaned = " ".join(term.split())
        if not cleaned or cleaned.casefold() in seen or chars + len(cleaned) > MAX_VOCABULARY_CHARS:
            continue
        seen.add(cleaned.casefold())
        kept.append(cleaned)
        chars += len(cleaned)
        if len(kept) == MAX_VOCABULARY_TERMS:
            break
    return tuple(kept)
