"""What comes out of a realtime session: typed, provider-neutral events.

Providers translate their wire events into these; consumers (the Home
Assistant glue, benchmarks, tests) never see provider JSON.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from enum import StrEnum
from typing import Any

from .errors import ErrorKind


class ResponseStatus(StrEnum):
    """How a model response ended."""

    COMPLETED = "completed"
    # Stopped on request (response.cancel, a new text turn).
    CANCELLED = "cancelled"
    # The user spoke over the model (server VAD barge-in).
    INTERRUPTED = "interrupted"
    # Ended early by a limit (max output tokens, content filter).
    INCOMPLETE = "incomplete"
    # The provider failed, or the connection dropped mid-response.
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens the provider billed for one response (or, added up, for several), by modality.

    Input counts include the cached input tokens; `cached_*` says how many of them
    the provider served from its prompt cache (billed at a lower rate). Only the
    provider's own reports make one: nothing here is estimated.
    """

    input_text: int = 0
    input_audio: int = 0
    input_image: int = 0
    cached_text: int = 0
    cached_audio: int = 0
    cached_image: int = 0
    output_text: int = 0
    output_audio: int = 0

    @property
    def input_tokens(self) -> int:
        return self.input_text + self.input_audio + self.input_image

    @property
    def cached_tokens(self) -> int:
        return self.cached_text + self.cached_audio + self.cached_image

    @property
    def output_tokens(self) -> int:
        return self.output_text + self.output_audio

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            *(mine + theirs for mine, theirs in zip(astuple(self), astuple(other), strict=True))
        )


@dataclass(frozen=True, slots=True)
class SessionReady:
    """The provider accepted the configuration; input may flow."""

    provider_session_id: str | None = None


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The provider's VAD heard the user start speaking."""

    audio_start_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The provider's VAD decided the user stopped speaking: the turn ended."""

    audio_end_ms: int | None = None


@dataclass(frozen=True, slots=True)
class InputTranscript:
    """The provider's transcript of what the user said (partial or final)."""

    text: str
    final: bool
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    """The model started a response."""

    response_id: str


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Model audio: 16-bit little-endian mono PCM at `sample_rate`.

    `item_id` names the audio item it belongs to (OpenAI: the output item; Gemini:
    one per response), the unit in which playback is reported and truncated.
    """

    response_id: str
    pcm: bytes
    sample_rate: int
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """A piece of the model's reply text (audio transcript or text output)."""

    response_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for a tool; answer with `RealtimeSession.send_tool_result`."""

    response_id: str
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AwaitingToolResults:
    """The model has asked for all the calls it will ask for now; their results bring its
    continuation, a new response after the one that asked.

    The model either waits for the results, or (calls that run in the background,
    Gemini 3.8) keeps talking to the end of its response and answers the results
    once idle. Consumers that collect a batch of tool calls (Home Assistant's chat
    log runs them concurrently and records them per message) close it here.
    """

    call_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ToolCallsCancelled:
    """The provider withdrew tool calls (Gemini): don't start them, drop their results."""

    call_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """A response ended; `transcript` is what the model said (or wrote).

    A FAILED response says why in `error_kind` (quota, rate_limit, server,
    connection…); `retry_after_s` is the provider's own "try again in" hint.
    `usage` is what the provider billed for it, as far as it has said;
    `usage_follows`: it reports (the rest of) that later, in a UsageReported
    (Gemini: with `turnComplete`, after the playback it waits for).
    """

    response_id: str
    status: ResponseStatus
    transcript: str = ""
    reason: str | None = None
    usage: Usage | None = None
    error_kind: ErrorKind | None = None
    retry_after_s: float | None = None
    usage_follows: bool = False


@dataclass(frozen=True, slots=True)
class UsageReported:
    """Usage the provider reported after the response ended (`response_id` None: none had)."""

    response_id: str | None
    usage: Usage


@dataclass(frozen=True, slots=True)
class ResponseRetrying:
    """A rate-limited response is asked for again in `delay_s`; its ResponseDone never comes.

    `response_id` is None when the provider refused the request before a
    response existed. What the model answers then starts as a new response.
    """

    response_id: str | None
    delay_s: float


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The user barged in: audio of `response_id` already queued was discarded."""

    response_id: str | None


@dataclass(frozen=True, slots=True)
class ProviderError:
    """An error the provider reported; the session carries on unless `fatal`.

    `refused_response`: it answered our request for a response, so no response
    follows (OpenAI's `error` event for a `response.create`). Malformed data from
    the provider is reported here too (kind PROTOCOL) and then ignored.
    """

    code: str
    message: str
    fatal: bool = False
    kind: ErrorKind = ErrorKind.SERVER
    refused_response: bool = False
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The connection dropped (or was recycled) and a new one carries on.

    `restored_items` conversation items were replayed into the new connection;
    `lost_response` is true when a response in progress was lost with the old one.
    """

    reason: str
    restored_items: int
    lost_response: bool


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session ended; no more events follow. `error` and `kind` say why, if it failed."""

    error: str | None = None
    kind: ErrorKind | None = None


type SessionEvent = (
    SessionReady
    | SpeechStarted
    | SpeechStopped
    | InputTranscript
    | ResponseStarted
    | AudioChunk
    | TranscriptDelta
    | ToolCall
    | AwaitingToolResults
    | ToolCallsCancelled
    | ResponseDone
    | UsageReported
    | ResponseRetrying
    | Interrupted
    | ProviderError
    | Reconnected
    | SessionClosed
)
