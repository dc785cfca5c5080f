"""A protocol-faithful fake of the OpenAI Realtime API (GA) over websockets.

Tests point the client at `server.url` and script what the "model" says.
The fake checks both directions against the `openai` SDK's GA types, which
are the spec: every client event is validated against `RealtimeClientEvent`
(unknown fields included; the real API answers `unknown_parameter`), and
every event the fake sends is validated against `RealtimeServerEvent` first,
so a bug in the fake fails loudly instead of teaching the client a wrong
protocol. Client tests should end with `assert server.protocol_errors == []`.

What the real API does on a bad credential or model (sources checked):
- OpenAI (`/v1/realtime`) does NOT reject the handshake. It completes the
  upgrade, sends one `error` event (`invalid_request_error` /
  `invalid_api_key`, "Incorrect API key provided: sk-…. You can find your API
  key at https://platform.openai.com/account/api-keys.") and closes with code
  3000, reason `invalid_request_error.invalid_api_key`. Seen in
  twilio-samples/speech-assistant-openai-realtime-api-python#4 ("received
  3000 (registered) invalid_request_error.invalid_api_key") and
  openai/openai-realtime-api-beta#2 ("with a random string for the API key I
  get a successful connection and a different error message as a websocket
  message"); a captured log of the full event is in several public client
  repositories. The same "error event, then close `<type>.<code>`" shape
  appears for other fatal setup errors, e.g. close 4000
  `invalid_request_error.invalid_intent` (BerriAI/litellm#13471). A missing
  header gives the error "Missing bearer or basic authentication in header"
  with `code: null` (davidmigloz/langchain_dart#599).
- Unknown model: error `model_not_found` and close 4004
  `invalid_request_error.model_not_found` (reported by two independent public
  client code bases that verified it live; hurttlocker/o8#2165 shows a model
  that exists but is not realtime-capable gets `invalid_model` instead).
- Azure OpenAI (`/openai/v1/realtime`) rejects at the HTTP level: a bad key
  fails the upgrade with 401 (Azure-Samples/aisearch-openai-rag-audio#48)
  and an unknown deployment with 404 `DeploymentNotFound`.

Per model, from the SDK's docstrings: `reasoning` is only for reasoning
models (the gpt-realtime-2 family; others get `unsupported_parameter`, as the
API answers parameters a model lacks); transcription `keywords` and
`languages` only with `gpt-transcribe` and `gpt-live-transcribe`, `delay` only
with `gpt-realtime-whisper`, which (like `gpt-4o-transcribe-diarize`) takes no
`prompt`. Input transcription honours the vocabulary: a name the fake
"mishears" (`server.mishearings`) comes out right only when the session's
`keywords` or `prompt` names it.

`GET /v1/models` (and Azure's `/openai/v1/models`) is served on the same port:
`{"object": "list", "data": [...]}`, every entry checked against the SDK's
`Model`; the realtime models the server accepts plus others (chat,
transcription, speech). A bad key gets 401 `invalid_api_key`;
`listing_failure` answers with another status.

Limits of the fake: input audio is assumed to be `audio/pcm` (PCM16 24 kHz
mono); VAD is an energy detector (see `tests.fakes.audio_samples`); output
audio is streamed faster than real time, like the real server.
"""

import asyncio
import base64
import binascii
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
import contextlib
import copy
from dataclasses import dataclass, field
from http import HTTPStatus
import json
import logging
import math
import random
import re
import string
import time
from typing import Annotated, Any, Literal, Union, get_args
from urllib.parse import parse_qs, urlsplit

from openai.types import Model
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from openai.types.realtime.realtime_session_create_request import RealtimeSessionCreateRequest
import pydantic
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.fakes.audio_samples import (
    SAMPLE_RATE,
    VAD_RMS_THRESHOLD,
    duration_ms,
    rms,
    speech_like,
)
from tests.fakes.loopback import (
    Dropped,
    FakeServerBugError,
    LoopbackServer,
    ModelPacing,
    drop,
    wait_until,
)

_LOGGER = logging.getLogger(__name__)

OPENAI_PATH = "/v1/realtime"
AZURE_PATH = "/openai/v1/realtime"

KNOWN_MODELS = frozenset(
    name
    for arg in get_args(RealtimeSessionCreateRequest.model_fields["model"].annotation)
    for name in get_args(arg)
)
"""Every realtime model the SDK names; `server.models` starts with these."""

OTHER_MODELS = ("gpt-5.2", "gpt-4o-mini-transcribe", "gpt-realtime-whisper", "gpt-4o-mini-tts")
"""Models `GET /v1/models` lists that hold no realtime conversation."""
_REASONING_MODEL = re.compile(r"gpt-realtime-2(\.\d+)?(-|$)")
_KEYWORD_TRANSCRIPTION_MODELS = frozenset({"gpt-transcribe", "gpt-live-transcribe"})
_UNPROMPTED_TRANSCRIPTION_MODELS = frozenset({"gpt-realtime-whisper", "gpt-4o-transcribe-diarize"})
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
_MAX_FUNCTION_NAME = 64
OPENAI_MODELS_PATH = "/v1/models"
AZURE_MODELS_PATH = "/openai/v1/models"

DEFAULT_INPUT_TRANSCRIPT = "Hello."
IMAGE_TOKENS = 765
"""Input tokens the fake bills per image (GPT-4o's count for a high-detail 1024 px
image, 85 + 4 x 170; OpenAI documents no realtime-specific count)."""
SEMANTIC_VAD_SILENCE_MS = 300
"""semantic_vad has no silence setting; the fake ends a turn after this."""

_BYTES_PER_MS = 2 * SAMPLE_RATE // 1000
_VAD_FRAME_MS = 20
_MIN_COMMIT_MS = 100
_SYNTH_MS_PER_CHAR = 50
_PCM_FORMAT = {"type": "audio/pcm", "rate": SAMPLE_RATE}
_TURN_DETECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "server_vad": {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    },
    "semantic_vad": {
        "type": "semantic_vad",
        "eagerness": "auto",
        "create_response": True,
        "interrupt_response": True,
    },
}
_DEFAULT_INSTRUCTIONS = (
    "Your knowledge cutoff is 2023-10. You are a helpful, witty, and friendly AI."
)
# Fields the real server sends on the session object that the SDK's request
# model does not declare.
_SERVER_EXTRA_FIELDS = frozenset({"session.object", "session.id", "session.expires_at"})
_ID_ALPHABET = string.ascii_letters + string.digits
_GARBAGE = (
    "this is not json",
    "[1, 2, 3]",
    '{"no_type": true}',
    '{"type": "response.brand_new_event", "event_id": "event_new"}',
    '{"type": "response.output_audio.delta", "event_id": "event_broken"}',
)
"""What `send_garbage_before_next_reply` sends: broken, then merely unknown, events."""


def _strict_union(union: Any) -> pydantic.TypeAdapter[Any]:
    """A pydantic adapter for an SDK event union, discriminated on `type`.

    The SDK marks its unions with its own `PropertyInfo`, which pydantic
    ignores; a real discriminator gives one precise error per bad event.
    """
    members = get_args(get_args(union)[0])
    return pydantic.TypeAdapter(
        Annotated[Union[members], pydantic.Field(discriminator="type")]  # noqa: UP007
    )


_CLIENT_EVENT = _strict_union(RealtimeClientEvent)
_SERVER_EVENT = _strict_union(RealtimeServerEvent)


def _unknown_fields(value: Any, path: str = "") -> list[str]:
    """Dotted paths of fields the SDK models do not declare (they allow extras)."""
    if isinstance(value, pydantic.BaseModel):
        found = [f"{path}.{name}".lstrip(".") for name in value.model_extra or {}]
        for name in type(value).model_fields:
            found += _unknown_fields(getattr(value, name), f"{path}.{name}")
        return found
    if isinstance(value, list):
        return [
            bad for i, entry in enumerate(value) for bad in _unknown_fields(entry, f"{path}[{i}]")
        ]
    return []


def _param(loc: tuple[str | int, ...]) -> str:
    """`session.audio.input` from a pydantic location, minus union member names."""
    param = ""
    for part in loc:
        if isinstance(part, int):
            param += f"[{part}]"
        elif re.fullmatch(r"[a-z_][a-z0-9_]*", part) and part not in {
            "str",
            "int",
            "float",
            "bool",
        }:
            param += f".{part}"
    return param.lstrip(".")


def _describe(err: pydantic.ValidationError) -> tuple[str, str, str | None]:
    """(code, message, param) in the real API's style for a schema violation."""
    errors = err.errors()
    if errors[0]["type"] == "union_tag_invalid":
        ctx = errors[0].get("ctx", {})
        return (
            "invalid_value",
            f"Invalid value: '{ctx.get('tag')}'. Supported values are: {ctx.get('expected_tags')}.",
            "type",
        )
    if errors[0]["type"] == "union_tag_not_found":
        return "missing_required_parameter", "Missing required parameter: 'type'.", "type"
    # A union reports every member's complaints; the member with the fewest is
    # the one the client meant, and its deepest complaint is the precise one.
    by_member: dict[str, list[Any]] = {}
    for error in errors:
        member = next((p for p in error["loc"] if isinstance(p, str) and p[:1].isupper()), "")
        by_member.setdefault(member, []).append(error)
    closest = min(by_member.values(), key=len)
    error = max(closest, key=lambda e: len(e["loc"]))
    param = _param(error["loc"][1:])
    kind = error["type"]
    if kind == "missing":
        return "missing_required_parameter", f"Missing required parameter: '{param}'.", param
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected")
        message = f"Invalid value: {error['input']!r}. Supported values are: {expected}."
        return "invalid_value", message, param
    if kind.endswith(("_type", "_parsing")):
        return "invalid_type", f"Invalid type for '{param}': {error['msg']}.", param
    return "invalid_value", f"Invalid value for '{param}': {error['msg']}.", param


def _check_client_event(event: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """Why the real API would reject this client event, or None if it is valid."""
    try:
        model = _CLIENT_EVENT.validate_python(event)
    except pydantic.ValidationError as err:
        return _describe(err)
    unknown = _unknown_fields(model)
    if unknown:
        return "unknown_parameter", f"Unknown parameter: '{unknown[0]}'.", unknown[0]
    return _check_function_names(event)


def _check_function_names(event: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """Why the real API would reject the event's function names (the SDK types leave
    them unchecked): the API's schema takes `^[a-zA-Z0-9_-]+$`, at most 64 characters.

    The message is the API's (Chat Completions' "Invalid 'tools[0].function.name':
    string too long…", code `string_above_max_length`, as public client reports show
    it), with the realtime event's parameter path.
    """
    for key in ("session", "response"):
        tools = _dig(event, key, "tools") or []
        for i, tool in enumerate(tools):
            name = tool.get("name") if tool.get("type") == "function" else None
            if name is None:
                continue
            param = f"{key}.tools[{i}].name"
            if len(name) > _MAX_FUNCTION_NAME:
                return (
                    "string_above_max_length",
                    f"Invalid '{param}': string too long. Expected a string with maximum "
                    f"length {_MAX_FUNCTION_NAME}, but got a string with length {len(name)} "
                    "instead.",
                    param,
                )
            if not _FUNCTION_NAME.fullmatch(name):
                return (
                    "invalid_value",
                    f"Invalid '{param}': string does not match pattern. Expected a string "
                    f"that matches the pattern '{_FUNCTION_NAME.pattern}'.",
                    param,
                )
    return None


def _checked_json(event: dict[str, Any]) -> str:
    """The event as JSON, after proving it is a valid GA server event."""
    try:
        model = _SERVER_EVENT.validate_python(event)
    except pydantic.ValidationError as err:
        raise FakeServerBugError(f"fake sent an invalid {event.get('type')!r}: {err}") from err
    unknown = [p for p in _unknown_fields(model) if p not in _SERVER_EXTRA_FIELDS]
    if unknown:
        raise FakeServerBugError(f"fake sent undeclared fields {unknown} in {event.get('type')!r}")
    return json.dumps(event)


def _error(
    code: str | None,
    message: str,
    *,
    error_type: str = "invalid_request_error",
    param: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """An `error` event; `event_id` echoes the client event that caused it."""
    return {
        "type": "error",
        "error": {
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    }


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge a `session.update`; an object whose `type` changes is replaced."""
    merged = dict(base)
    for key, value in update.items():
        old = merged.get(key)
        if (
            isinstance(value, dict)
            and isinstance(old, dict)
            and old.get("type") == value.get("type")
        ):
            merged[key] = _merge(old, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _dig(data: Any, *keys: str) -> Any:
    """`data[k1][k2]…`, or None where a level is missing or null."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _words(text: str) -> list[str]:
    """Text split into delta-sized pieces that join back to the exact text."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def _ms(byte_offset: int) -> int:
    return byte_offset // _BYTES_PER_MS


def _mask(key: str) -> str:
    """A key shown the way the API's error message shows it."""
    return f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else "*****"


# -- what tests script -------------------------------------------------------


@dataclass(frozen=True)
class SpeechItem:
    """An assistant message the model speaks; `pcm` None means synthesise
    speech-like audio lasting about 50 ms per character of `transcript`.
    In a text-only response it is written instead."""

    transcript: str
    pcm: bytes | None = None


@dataclass(frozen=True)
class TextItem:
    """An assistant message for `output_modalities: ["text"]` (spoken, with
    synthesised audio, if the response is an audio one)."""

    text: str


@dataclass(frozen=True)
class FunctionCallItem:
    """A tool call; `call_id` None gets a fresh `call_…` id."""

    name: str
    arguments: dict[str, Any]
    call_id: str | None = None


type OutputItem = SpeechItem | TextItem | FunctionCallItem


class ScriptedResponse:
    """What the model answers to one `response.create`: its output items, in order."""

    def __init__(self, *items: OutputItem) -> None:
        self.items = list(items)

    def __repr__(self) -> str:
        return f"ScriptedResponse{tuple(self.items)!r}"


# -- what tests inspect ------------------------------------------------------


@dataclass
class SentItem:
    """One output item as the fake streamed it (up to a cancellation)."""

    item_id: str
    kind: Literal["audio", "text", "function_call"]
    text: str = ""
    """Transcript (audio) or text sent so far."""
    pcm: bytearray = field(default_factory=bytearray)
    """The exact PCM16 bytes sent in `response.output_audio.delta` events."""
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None

    @property
    def audio_ms(self) -> float:
        return duration_ms(bytes(self.pcm))


@dataclass
class ResponseRecord:
    """One response the fake produced."""

    response_id: str
    request: dict[str, Any]
    """The `response` object of `response.create` ({} when VAD created it)."""
    trigger: Literal["client", "vad"]
    items: list[SentItem] = field(default_factory=list)
    status: str = "in_progress"
    reason: str | None = None
    """`status_details.reason` (`turn_detected`, `client_cancelled`) if cancelled."""

    @property
    def item_ids(self) -> list[str]:
        return [item.item_id for item in self.items]

    @property
    def pcm(self) -> bytes:
        return b"".join(bytes(item.pcm) for item in self.items)


@dataclass
class _Failure:
    code: str
    message: str
    error_type: str
    in_response: bool


@dataclass
class _Speech:
    item_id: str
    start: int
    """Session byte offset where the committed audio will start (with padding)."""
    silence_ms: int = 0


@dataclass
class _ActiveResponse:
    record: ResponseRecord
    modalities: list[str]
    voice: Any
    out_of_band: bool
    cancel_reason: str | None = None
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
            self.cancelled.set()


class FakeConnection:
    """One client session on the fake server, with everything it saw and did."""

    def __init__(
        self, server: FakeOpenAIRealtimeServer, ws: ServerConnection, model: str, azure: bool
    ) -> None:
        self.server = server
        self.ws = ws
        self.model = model
        self.azure = azure
        self.headers: Headers = ws.request.headers if ws.request else Headers()
        self.number = server.accept()
        self.session: dict[str, Any] = {
            "type": "realtime",
            "object": "realtime.session",
            "id": server.new_id("sess"),
            "model": model,
            "output_modalities": ["audio"],
            "instructions": _DEFAULT_INSTRUCTIONS,
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "include": None,
            "expires_at": int(time.time()) + 3600,
            "audio": {
                "input": {
                    "format": dict(_PCM_FORMAT),
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": dict(_TURN_DETECTION_DEFAULTS["server_vad"]),
                },
                "output": {"format": dict(_PCM_FORMAT), "voice": "alloy", "speed": 1.0},
            },
        }
        self.received: list[dict[str, Any]] = []
        """Every client event that parsed as JSON, valid or not."""
        self.sent: list[dict[str, Any]] = []
        """Every validated event sent (raw `server.inject` frames excluded)."""
        self.items: list[dict[str, Any]] = []
        """The conversation, in order, as the server holds it (no audio bytes)."""
        self.input_audio: dict[str, bytes] = {}
        """PCM16 of every committed or created user audio item, by item id."""
        self.images: list[tuple[str, bytes]] = []
        """(mime type, bytes) of every `input_image` the client sent."""
        self.responses: list[ResponseRecord] = []
        self.truncations: list[tuple[str, int]] = []
        # The input (by token kind) the previous response read: its prefix is cached.
        self._read: dict[str, int] = {}
        self.audio_ms_received = 0.0
        """Total input audio appended in this session."""
        self._conversation_id = server.new_id("conv")
        self._changed = asyncio.Condition()
        self._active: _ActiveResponse | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._buffer = bytearray()
        self._buffer_start = 0
        self._vad_pos = 0
        self._speech: _Speech | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self._on_append,
            "input_audio_buffer.commit": self._on_commit,
            "input_audio_buffer.clear": self._on_clear,
            "output_audio_buffer.clear": self._on_output_audio_buffer_clear,
            "conversation.item.create": self._on_item_create,
            "conversation.item.retrieve": self._on_item_retrieve,
            "conversation.item.truncate": self._on_item_truncate,
            "conversation.item.delete": self._on_item_delete,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
        }

    # -- public helpers --------------------------------------------------

    @property
    def active_response(self) -> ResponseRecord | None:
        return self._active.record if self._active else None

    @property
    def errors_sent(self) -> list[dict[str, Any]]:
        """The `error` objects of every error event sent so far."""
        return [event["error"] for event in self.sent if event["type"] == "error"]

    def last_user_text(self) -> str | None:
        """The newest user words: typed text or an audio item's transcript."""
        for item in reversed(self.items):
            if item.get("role") != "user":
                continue
            for part in reversed(item.get("content", [])):
                text = (
                    part.get("text") if part.get("type") == "input_text" else part.get("transcript")
                )
                if text:
                    return str(text)
        return None

    async def wait_for_event(
        self,
        event_type: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
        count: int = 1,
    ) -> dict[str, Any]:
        """The `count`-th client event of this type (and predicate) received,
        waiting for it if need be; earlier events count too."""

        def matches() -> list[dict[str, Any]]:
            return [
                event
                for event in self.received
                if event.get("type") == event_type and (predicate is None or predicate(event))
            ]

        await wait_until(
            self._changed, lambda: len(matches()) >= count, timeout, f"client {event_type!r}"
        )
        return matches()[count - 1]

    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until no response is in progress."""
        await wait_until(self._changed, lambda: self._active is None, timeout, "no active response")

    async def send(self, event: dict[str, Any]) -> None:
        """Send a server event (validated; `event_id` added)."""
        event = {"event_id": self.server.new_id("event"), **event}
        text = _checked_json(event)
        await self.ws.send(text)
        # The wire form: items the fake keeps mutating must not change history.
        self.sent.append(json.loads(text))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the websocket cleanly from the server side."""
        await self.ws.close(code, reason)

    def close_abruptly(self) -> None:
        """Drop the TCP connection with no close frame (client sees 1006)."""
        self.ws.transport.abort()

    # -- connection lifecycle --------------------------------------------

    async def serve(self) -> None:
        """Run the session until the socket closes."""
        if "openai-beta" in self.headers:
            self.server.protocol_errors.append(
                f"OpenAI-Beta header {self.headers['openai-beta']!r} sent to the GA endpoint"
            )
        try:
            await self._guard(self._serve())
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._notify()

    async def _serve(self) -> None:
        await self.send({"type": "session.created", "session": self.session})
        if self.server.session_ttl_s is not None:
            self._spawn(self._expire_after(self.server.session_ttl_s))
        async for message in self.ws:
            await self.server.wait_until_reading(self.number)
            await self._on_frame(message)

    async def _guard(self, work: Coroutine[Any, Any, None]) -> None:
        """Run fake work; a closed socket ends it quietly, a fake bug loudly."""
        try:
            await work
        except ConnectionClosed, Dropped:
            pass
        except Exception as err:
            _LOGGER.exception("fake OpenAI Realtime server failed")
            self.server.internal_errors.append(err)
            with contextlib.suppress(Exception):
                await self.ws.close(1011, "fake server bug")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(self._guard(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _expire_after(self, ttl_s: float) -> None:
        await asyncio.sleep(ttl_s)
        await self.send(
            _error("session_expired", "Your session hit the maximum duration of 60 minutes.")
        )
        await self.ws.close(1001, "invalid_request_error.session_expired")

    async def _protocol_error(
        self, description: str, code: str | None, message: str, param: str | None, event_id: Any
    ) -> None:
        self.server.protocol_errors.append(description)
        await self.send(
            _error(
                code, message, param=param, event_id=event_id if isinstance(event_id, str) else None
            )
        )

    async def _on_frame(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            await self._protocol_error(
                f"binary frame of {len(message)} bytes",
                "invalid_event",
                "Expected a text WebSocket message; binary frames are not supported.",
                None,
                None,
            )
            return
        try:
            event = json.loads(message)
        except ValueError as err:
            await self._protocol_error(
                f"malformed JSON {message[:100]!r}",
                "invalid_json",
                f"Invalid event: failed to parse JSON value ({err}).",
                None,
                None,
            )
            return
        if not isinstance(event, dict):
            await self._protocol_error(
                f"non-object JSON {message[:100]!r}",
                "invalid_event",
                "Invalid event: expected a JSON object.",
                None,
                None,
            )
            return
        self.received.append(event)
        await self._notify()
        problem = _check_client_event(event)
        if problem is not None:
            code, text, param = problem
            summary = {k: v for k, v in event.items() if k != "audio"}
            await self._protocol_error(
                f"invalid {event.get('type')!r}: {text} in {str(summary)[:300]}",
                code,
                text,
                param,
                event.get("event_id"),
            )
            return
        await self._handlers[event["type"]](event)

    async def _reply_error(
        self,
        event: dict[str, Any],
        code: str | None,
        message: str,
        param: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        await self.send(
            _error(
                code, message, error_type=error_type, param=param, event_id=event.get("event_id")
            )
        )

    # -- session -----------------------------------------------------------

    def _turn_detection(self) -> dict[str, Any] | None:
        turn_detection = _dig(self.session, "audio", "input", "turn_detection")
        return turn_detection if isinstance(turn_detection, dict) else None

    def _assistant_audio_exists(self) -> bool:
        return any(item.pcm for record in self.responses for item in record.items)

    async def _on_session_update(self, event: dict[str, Any]) -> None:
        update: dict[str, Any] = event["session"]
        if update["type"] != self.session["type"]:
            await self._reply_error(
                event,
                "invalid_value",
                f"Cannot change the session type to '{update['type']}'.",
                "session.type",
            )
            return
        modalities = update.get("output_modalities")
        if modalities is not None and len(set(modalities)) != 1:
            await self._reply_error(
                event,
                "invalid_value",
                "Invalid 'session.output_modalities': expected exactly one of 'audio' or 'text'.",
                "session.output_modalities",
            )
            return
        merged = _merge(self.session, update)
        refused = self._refused_for_model(merged)
        if refused is not None:
            param, message = refused
            await self._protocol_error(
                f"session.update with {param} for {self.model}: {message}",
                "unsupported_parameter",
                message,
                param,
                event.get("event_id"),
            )
            return
        old_voice = _dig(self.session, "audio", "output", "voice")
        if _dig(merged, "audio", "output", "voice") != old_voice and self._assistant_audio_exists():
            await self._reply_error(
                event,
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                "session.audio.output.voice",
            )
            return
        turn_detection = _dig(merged, "audio", "input", "turn_detection")
        if isinstance(turn_detection, dict):
            # Fields left out or null take the server's defaults.
            merged["audio"]["input"]["turn_detection"] = _TURN_DETECTION_DEFAULTS[
                turn_detection["type"]
            ] | {key: value for key, value in turn_detection.items() if value is not None}
        else:
            self._speech = None
        self.session = merged
        await self.send({"type": "session.updated", "session": self.session})

    def _refused_for_model(self, session: dict[str, Any]) -> tuple[str, str] | None:
        """(param, message) of a setting this session's models do not take, if any."""
        if session.get("reasoning") is not None and not _REASONING_MODEL.match(self.model):
            return "session.reasoning", (
                f"Unsupported parameter: 'reasoning' is not supported with {self.model}."
            )
        transcription = _dig(session, "audio", "input", "transcription") or {}
        model = transcription.get("model")
        refused = []
        if model not in _KEYWORD_TRANSCRIPTION_MODELS:
            refused += ["keywords", "languages"]
        if model in _UNPROMPTED_TRANSCRIPTION_MODELS:
            refused.append("prompt")
        if model != "gpt-realtime-whisper":
            refused.append("delay")
        for name in refused:
            if transcription.get(name) is not None:
                return f"session.audio.input.transcription.{name}", (
                    f"Unsupported parameter: '{name}' is not supported with {model}."
                )
        return None

    # -- input audio and VAD -------------------------------------------------

    async def _on_append(self, event: dict[str, Any]) -> None:
        try:
            pcm = base64.b64decode(event["audio"], validate=True)
        except binascii.Error:
            await self._protocol_error(
                "input_audio_buffer.append with invalid base64",
                "invalid_value",
                "Invalid 'audio': expected base64-encoded audio.",
                "audio",
                event.get("event_id"),
            )
            return
        self._buffer += pcm
        self.audio_ms_received += duration_ms(pcm)
        turn_detection = self._turn_detection()
        if turn_detection is not None:
            await self._run_vad(turn_detection)

    async def _run_vad(self, turn_detection: dict[str, Any]) -> None:
        """Energy VAD over whole 20 ms frames not yet examined."""
        server_vad = turn_detection["type"] == "server_vad"
        threshold = VAD_RMS_THRESHOLD * (turn_detection.get("threshold") or 0.5) / 0.5
        silence_limit = (
            turn_detection["silence_duration_ms"] if server_vad else SEMANTIC_VAD_SILENCE_MS
        )
        padding = (
            turn_detection["prefix_padding_ms"]
            if server_vad
            else _TURN_DETECTION_DEFAULTS["server_vad"]["prefix_padding_ms"]
        )
        frame_bytes = _VAD_FRAME_MS * _BYTES_PER_MS
        while self._vad_pos + frame_bytes <= len(self._buffer):
            loud = (
                rms(bytes(self._buffer[self._vad_pos : self._vad_pos + frame_bytes])) >= threshold
            )
            frame_start = self._buffer_start + self._vad_pos
            self._vad_pos += frame_bytes
            if self._speech is None:
                if loud:
                    await self._speech_started(frame_start, padding, turn_detection)
            elif loud:
                self._speech.silence_ms = 0
            else:
                self._speech.silence_ms += _VAD_FRAME_MS
                if self._speech.silence_ms >= silence_limit:
                    await self._speech_stopped(turn_detection)

    async def _speech_started(
        self, frame_start: int, padding_ms: int, turn_detection: dict[str, Any]
    ) -> None:
        start = max(self._buffer_start, frame_start - padding_ms * _BYTES_PER_MS)
        self._speech = _Speech(self.server.new_id("item"), start)
        self.server.start_burst(self.ws)
        await self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": _ms(start),
                "item_id": self._speech.item_id,
            }
        )
        if self.server.take_fault("drop_mid_user_speech"):
            drop(self.ws)
        # Only responses writing to the default conversation are interrupted.
        active = self._active
        if active and not active.out_of_band and turn_detection.get("interrupt_response", True):
            active.cancel("turn_detected")

    async def _speech_stopped(self, turn_detection: dict[str, Any]) -> None:
        assert self._speech is not None
        speech, self._speech = self._speech, None
        end = self._buffer_start + self._vad_pos
        await self.send(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": _ms(end),
                "item_id": speech.item_id,
            }
        )
        if self.server.pause_after_speech_stopped_s:
            # The commit and transcript arrive in a later read, as over a real network
            # (never, if the connection drops meanwhile).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.server.pause_after_speech_stopped_s):
                    await self.ws.wait_closed()
        audio = bytes(self._buffer[speech.start - self._buffer_start : self._vad_pos])
        del self._buffer[: self._vad_pos]
        self._buffer_start, self._vad_pos = end, 0
        await self._commit(speech.item_id, audio)
        if turn_detection.get("create_response", True):
            await self._create_response({}, "vad", None)

    async def _on_commit(self, event: dict[str, Any]) -> None:
        buffered_ms = duration_ms(bytes(self._buffer))
        if buffered_ms < _MIN_COMMIT_MS:
            await self._reply_error(
                event,
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{_MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
            )
            return
        item_id = self._speech.item_id if self._speech else self.server.new_id("item")
        audio = bytes(self._buffer)
        self._reset_buffer()
        await self._commit(item_id, audio)

    async def _on_clear(self, event: dict[str, Any]) -> None:
        self._reset_buffer()
        await self.send({"type": "input_audio_buffer.cleared"})

    def _reset_buffer(self) -> None:
        self._buffer_start += len(self._buffer)
        self._buffer.clear()
        self._vad_pos = 0
        self._speech = None

    async def _commit(self, item_id: str, audio: bytes) -> None:
        previous = self.items[-1]["id"] if self.items else None
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self.input_audio[item_id] = audio
        self.items.append(item)
        await self.send(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": previous,
            }
        )
        for kind in ("conversation.item.added", "conversation.item.done"):
            await self.send({"type": kind, "item": item, "previous_item_id": previous})
        transcription = _dig(self.session, "audio", "input", "transcription")
        if isinstance(transcription, dict) and self.server.take_fault("no_transcript"):
            return
        if isinstance(transcription, dict) and self.server.take_fault("failed_transcript"):
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.failed",
                    "item_id": item_id,
                    "content_index": 0,
                    "error": {
                        "type": "transcription_error",
                        "code": "audio_unintelligible",
                        "message": "The audio could not be transcribed.",
                        "param": None,
                    },
                }
            )
            return
        if isinstance(transcription, dict):
            vocabulary = " ".join(
                [*(transcription.get("keywords") or []), transcription.get("prompt") or ""]
            )
            text = self.server.transcribed(self.server.next_input_transcript(), vocabulary)
            model = str(transcription.get("model") or "whisper-1")
            if self.server.transcription_delay_s is None:
                await self._transcribe(item, text, model, duration_ms(audio))
            else:
                self._spawn(
                    self._transcribe(
                        item, text, model, duration_ms(audio), self.server.transcription_delay_s
                    )
                )

    async def _transcribe(
        self, item: dict[str, Any], text: str, model: str, audio_ms: float, delay_s: float = 0.0
    ) -> None:
        await asyncio.sleep(delay_s)
        base = {"item_id": item["id"], "content_index": 0}
        # whisper-1 does not stream: its one delta is the whole transcript.
        for delta in [text] if model == "whisper-1" else _words(text):
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    **base,
                    "delta": delta,
                }
            )
        usage: dict[str, Any]
        if model == "whisper-1":
            usage = {"type": "duration", "seconds": round(audio_ms / 1000, 3)}
        else:
            audio_tokens = math.ceil(audio_ms / 100)
            text_tokens = len(_words(text)) + 1
            usage = {
                "type": "tokens",
                "input_tokens": audio_tokens,
                "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
                "output_tokens": text_tokens,
                "total_tokens": audio_tokens + text_tokens,
            }
        item["content"][0]["transcript"] = text
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                **base,
                "transcript": text,
                "usage": usage,
            }
        )

    async def _on_output_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        await self._protocol_error(
            "output_audio_buffer.clear sent over a websocket (WebRTC/SIP only)",
            "invalid_value",
            "output_audio_buffer.clear is only supported for WebRTC and SIP connections.",
            "type",
            event.get("event_id"),
        )

    # -- conversation items ---------------------------------------------------

    def _index_of(self, item_id: str) -> int | None:
        return next((i for i, item in enumerate(self.items) if item["id"] == item_id), None)

    async def _on_item_create(self, event: dict[str, Any]) -> None:
        item: dict[str, Any] = copy.deepcopy(event["item"])
        previous_id = event.get("previous_item_id")
        if previous_id is None:
            position = len(self.items)
        elif previous_id == "root":
            position = 0
        elif (index := self._index_of(previous_id)) is not None:
            position = index + 1
        else:
            await self._reply_error(
                event,
                "invalid_value",
                f"Item with item_id '{previous_id}' not found.",
                "previous_item_id",
            )
            return
        if item.get("id") and self._index_of(item["id"]) is not None:
            await self._reply_error(
                event, "invalid_value", f"Item with id '{item['id']}' already exists.", "item.id"
            )
            return
        item_id = item.get("id") or self.server.new_id("item")
        audio = b""
        images: list[tuple[str, bytes]] = []
        for index, part in enumerate(item.get("content") or []):
            param = f"item.content[{index}]"
            if part.get("type") == "output_audio":
                await self._reply_error(
                    event,
                    "invalid_value",
                    "Assistant audio cannot be added to the conversation; use output_text.",
                    f"{param}.type",
                )
                return
            if part.get("type") == "input_audio":
                try:
                    audio += base64.b64decode(part.pop("audio", None) or "", validate=True)
                except binascii.Error:
                    await self._reply_error(
                        event, "invalid_value", "Invalid base64 audio.", f"{param}.audio"
                    )
                    return
                part.setdefault("transcript", None)
            if part.get("type") == "input_image":
                image = self._decode_image(str(part.get("image_url") or ""))
                if image is None:
                    await self._reply_error(
                        event,
                        "invalid_value",
                        "Invalid 'image_url': expected a base64 data URL of an image/png or "
                        "image/jpeg image.",
                        f"{param}.image_url",
                    )
                    return
                images.append(image)
        self.images += images
        if audio:
            self.input_audio[item_id] = audio
        item |= {"id": item_id, "object": "realtime.item", "status": "completed"}
        self.items.insert(position, item)
        previous = self.items[position - 1]["id"] if position else None
        for kind in ("conversation.item.added", "conversation.item.done"):
            await self.send({"type": kind, "item": item, "previous_item_id": previous})

    @staticmethod
    def _decode_image(url: str) -> tuple[str, bytes] | None:
        match = re.fullmatch(r"data:(image/(?:png|jpeg));base64,(.*)", url, re.DOTALL)
        if match is None:
            return None
        try:
            return match[1], base64.b64decode(match[2], validate=True)
        except binascii.Error:
            return None

    async def _on_item_retrieve(self, event: dict[str, Any]) -> None:
        index = self._index_of(event["item_id"])
        if index is None:
            await self._reply_error(
                event,
                "item_retrieve_invalid_item_id",
                f"Item with item_id '{event['item_id']}' not found.",
                "item_id",
            )
            return
        await self.send({"type": "conversation.item.retrieved", "item": self.items[index]})

    async def _on_item_delete(self, event: dict[str, Any]) -> None:
        index = self._index_of(event["item_id"])
        if index is None:
            await self._reply_error(
                event,
                "item_delete_invalid_item_id",
                f"Item with item_id '{event['item_id']}' not found.",
                "item_id",
            )
            return
        del self.items[index]
        await self.send({"type": "conversation.item.deleted", "item_id": event["item_id"]})

    def _sent_item(self, item_id: str) -> SentItem | None:
        return next(
            (item for record in self.responses for item in record.items if item.item_id == item_id),
            None,
        )

    async def _on_item_truncate(self, event: dict[str, Any]) -> None:
        item_id, content_index, end_ms = (
            event["item_id"],
            event["content_index"],
            event["audio_end_ms"],
        )
        if end_ms < 0:
            await self._reply_error(
                event,
                "integer_below_min_value",
                "Invalid 'audio_end_ms': integer below minimum value. "
                f"Expected a value >= 0, but got {end_ms} instead.",
                "audio_end_ms",
            )
            return
        index = self._index_of(item_id)
        if index is None:
            await self._reply_error(
                event,
                "item_truncate_invalid_item_id",
                f"Item with item_id '{item_id}' not found.",
                "item_id",
            )
            return
        item = self.items[index]
        content = item.get("content") or []
        sent = self._sent_item(item_id)
        if (
            item.get("role") != "assistant"
            or content_index >= len(content)
            or content[content_index].get("type") != "output_audio"
            or sent is None
        ):
            await self._reply_error(
                event,
                "invalid_value",
                "Only assistant messages with audio content can be truncated.",
                "content_index",
            )
            return
        # A truncated item's audio ends where it was cut: it can only be cut shorter.
        audio_ms = min(
            [int(sent.audio_ms)] + [end for cut, end in self.truncations if cut == item_id]
        )
        if end_ms > audio_ms:
            await self._reply_error(
                event,
                "invalid_value",
                f"Audio content of {audio_ms}ms is already shorter than {end_ms}ms",
                "audio_end_ms",
            )
            return
        # The server forgets the transcript so unheard words leave the context.
        content[content_index]["transcript"] = None
        self.truncations.append((item_id, end_ms))
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": content_index,
                "audio_end_ms": end_ms,
            }
        )

    # -- responses --------------------------------------------------------------

    async def _on_response_create(self, event: dict[str, Any]) -> None:
        await self._create_response(event.get("response") or {}, "client", event.get("event_id"))

    async def _on_response_cancel(self, event: dict[str, Any]) -> None:
        active = self._active
        wanted = event.get("response_id")
        if (
            active is None
            or active.cancel_reason is not None
            or (wanted and wanted != active.record.response_id)
        ):
            await self._reply_error(
                event,
                "response_cancel_not_active",
                "Cancellation failed: no active response found.",
            )
            return
        active.cancel("client_cancelled")

    async def _create_response(
        self, request: dict[str, Any], trigger: Literal["client", "vad"], event_id: str | None
    ) -> None:
        active = self._active
        if active is not None and trigger == "vad" and active.cancel_reason and active.task:
            # Barge-in: the interrupted response is already ending.
            await asyncio.wait({active.task})
        if self._active is not None:
            if trigger == "client":
                await self.send(
                    _error(
                        "conversation_already_has_active_response",
                        "Conversation already has an active response in progress: "
                        f"{self._active.record.response_id}. Wait until the response is finished "
                        "before creating a new one.",
                        event_id=event_id,
                    )
                )
            return
        failure = self.server.take_failure()
        if failure is not None and not failure.in_response:
            await self.send(
                _error(
                    failure.code, failure.message, error_type=failure.error_type, event_id=event_id
                )
            )
            return
        script = None if failure else self.server.next_response(self)
        record = ResponseRecord(self.server.new_id("resp"), request, trigger)
        self.responses.append(record)
        self._active = _ActiveResponse(
            record,
            modalities=list(request.get("output_modalities") or self.session["output_modalities"]),
            voice=_dig(request, "audio", "output", "voice")
            or _dig(self.session, "audio", "output", "voice"),
            out_of_band=request.get("conversation") == "none",
        )
        # Created now, before the next client event is read: items added after it are not
        # its input (a response reads the conversation as it was when it began).
        await self.send(
            {
                "type": "response.created",
                "response": self._response_object(self._active, [], None, None),
            }
        )
        self._active.task = self._spawn(self._stream_response(self._active, script, failure))

    def _response_object(
        self,
        active: _ActiveResponse,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        status_details: dict[str, Any] | None,
    ) -> dict[str, Any]:
        request = active.record.request
        return {
            "object": "realtime.response",
            "id": active.record.response_id,
            "status": active.record.status,
            "status_details": status_details,
            "output": output,
            "conversation_id": None if active.out_of_band else self._conversation_id,
            "output_modalities": active.modalities,
            "max_output_tokens": request.get(
                "max_output_tokens", self.session["max_output_tokens"]
            ),
            "audio": {
                "output": {
                    "format": _dig(self.session, "audio", "output", "format") or dict(_PCM_FORMAT),
                    # A custom voice ({"id": …}) is named by its id.
                    "voice": active.voice["id"] if isinstance(active.voice, dict) else active.voice,
                }
            },
            "usage": usage,
            "metadata": request.get("metadata"),
        }

    async def _stream_response(
        self, active: _ActiveResponse, script: ScriptedResponse | None, failure: _Failure | None
    ) -> None:
        record = active.record
        try:
            if self.server.take_fault("garbage"):
                for raw in _GARBAGE:
                    await self.server.inject(self, raw)
            output: list[dict[str, Any]] = []
            for index, scripted in enumerate(script.items if script else []):
                if active.cancel_reason:
                    break
                if isinstance(scripted, FunctionCallItem):
                    output.append(await self._emit_function_call(active, index, scripted))
                else:
                    output.append(await self._emit_message(active, index, scripted))
            details: dict[str, Any] | None = None
            if failure is not None:
                record.status = "failed"
                details = {
                    "type": "failed",
                    "error": {
                        "type": failure.error_type,
                        "code": failure.code,
                        "message": failure.message,
                    },
                }
            elif active.cancel_reason:
                record.status, record.reason = "cancelled", active.cancel_reason
                details = {"type": "cancelled", "reason": active.cancel_reason}
            else:
                record.status = "completed"
            usage = self._usage(record)
            # Idle before `response.done` goes out: a client may answer it at once.
            self._active = None
            await self.send(
                {
                    "type": "response.done",
                    "response": self._response_object(active, output, usage, details),
                }
            )
            await self._notify()
            called = any(item.kind == "function_call" for item in record.items)
            if called:
                self.server.end_burst(self.ws)
            if called and self.server.take_fault("drop_after_tool_call"):
                drop(self.ws)
            remaining = 0 if failure and failure.code == "rate_limit_exceeded" else 40_000
            await self.send(
                {
                    "type": "rate_limits.updated",
                    "rate_limits": [
                        {
                            "name": "tokens",
                            "limit": 40_000,
                            "remaining": max(0, remaining - usage["total_tokens"]),
                            "reset_seconds": 0.5,
                        }
                    ],
                }
            )
        finally:
            if self._active is active:
                self._active = None
                await self._notify()

    def _usage(self, record: ResponseRecord) -> dict[str, Any]:
        """Plausible token counts: ~4 characters, ~50 ms of audio or a fixed count per image.

        The whole conversation is each response's input (the realtime-costs guide);
        what the connection's previous response already read counts as cached, as
        the server's prompt caching would have it (it caches prefixes of 1024+
        tokens; the fake caches any, so small tests see cached tokens too).
        """
        parts = [part for item in self.items for part in item.get("content") or []]
        text_in = sum(len(str(part.get("text") or part.get("transcript") or "")) for part in parts)
        read = {
            "text_tokens": 1 + (text_in + len(str(self.session.get("instructions") or ""))) // 4,
            "audio_tokens": int(
                sum(duration_ms(audio) for audio in self.input_audio.values()) // 50
            ),
            "image_tokens": IMAGE_TOKENS * sum(part.get("type") == "input_image" for part in parts),
        }
        cached = {kind: min(count, self._read.get(kind, 0)) for kind, count in read.items()}
        self._read = read
        out_text = sum(1 + len(item.text or item.arguments or "") // 4 for item in record.items)
        out_audio = int(sum(item.audio_ms for item in record.items) // 50)
        return {
            "total_tokens": sum(read.values()) + out_text + out_audio,
            "input_tokens": sum(read.values()),
            "output_tokens": out_text + out_audio,
            "input_token_details": {
                **read,
                "cached_tokens": sum(cached.values()),
                "cached_tokens_details": cached,
            },
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
        }

    async def _pace(self, active: _ActiveResponse) -> None:
        """Let the receive loop run between chunks; wait `chunk_delay_s` unless cancelled."""
        if self.server.chunk_delay_s <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(active.cancelled.wait(), self.server.chunk_delay_s)

    async def _add_output_item(
        self, active: _ActiveResponse, index: int, item: dict[str, Any]
    ) -> None:
        await self.send(
            {
                "type": "response.output_item.added",
                "response_id": active.record.response_id,
                "output_index": index,
                "item": item,
            }
        )
        if not active.out_of_band:
            previous = self.items[-1]["id"] if self.items else None
            self.items.append(item)
            await self.send(
                {"type": "conversation.item.added", "item": item, "previous_item_id": previous}
            )

    async def _finish_output_item(
        self, active: _ActiveResponse, index: int, item: dict[str, Any]
    ) -> None:
        await self.send(
            {
                "type": "response.output_item.done",
                "response_id": active.record.response_id,
                "output_index": index,
                "item": item,
            }
        )
        position = self._index_of(item["id"])
        if not active.out_of_band and position is not None:
            self.items[position] = item
            previous = self.items[position - 1]["id"] if position else None
            await self.send(
                {"type": "conversation.item.done", "item": item, "previous_item_id": previous}
            )

    async def _emit_message(
        self, active: _ActiveResponse, index: int, scripted: SpeechItem | TextItem
    ) -> dict[str, Any]:
        audio = active.modalities == ["audio"]
        text = scripted.transcript if isinstance(scripted, SpeechItem) else scripted.text
        sent = SentItem(self.server.new_id("item"), "audio" if audio else "text")
        active.record.items.append(sent)
        item: dict[str, Any] = {
            "id": sent.item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        await self._add_output_item(active, index, item)
        base = {
            "response_id": active.record.response_id,
            "item_id": sent.item_id,
            "output_index": index,
            "content_index": 0,
        }
        empty_part = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        await self.send({"type": "response.content_part.added", **base, "part": empty_part})
        # The conversation holds the part from now on (so it can be truncated mid-stream).
        item["content"] = [
            {"type": "output_audio", "transcript": ""} if audio else {"type": "output_text"}
        ]
        words = _words(text)
        if audio:
            await self._stream_audio(active, sent, base, scripted, words)
        else:
            for word in words:
                if active.cancel_reason:
                    break
                await self.send({"type": "response.output_text.delta", **base, "delta": word})
                sent.text += word
                await self._pace(active)
        if audio:
            await self.send({"type": "response.output_audio.done", **base})
            await self.send(
                {"type": "response.output_audio_transcript.done", **base, "transcript": sent.text}
            )
            part = {"type": "audio", "transcript": sent.text}
            content = {"type": "output_audio", "transcript": sent.text}
        else:
            await self.send({"type": "response.output_text.done", **base, "text": sent.text})
            part = {"type": "text", "text": sent.text}
            content = {"type": "output_text", "text": sent.text}
        await self.send({"type": "response.content_part.done", **base, "part": part})
        done = item | {
            "status": "incomplete" if active.cancel_reason else "completed",
            "content": [content],
        }
        await self._finish_output_item(active, index, done)
        return done

    async def _stream_audio(
        self,
        active: _ActiveResponse,
        sent: SentItem,
        base: dict[str, Any],
        scripted: SpeechItem | TextItem,
        words: list[str],
    ) -> None:
        """Audio deltas with the transcript running slightly ahead, as the real server does."""
        pcm = scripted.pcm if isinstance(scripted, SpeechItem) else None
        if pcm is None:
            characters = len("".join(words))
            pcm = speech_like(max(0.2, characters * _SYNTH_MS_PER_CHAR / 1000), seed=characters)
        chunk_bytes = max(2, self.server.audio_chunk_ms * _BYTES_PER_MS)
        chunks = [pcm[i : i + chunk_bytes] for i in range(0, len(pcm), chunk_bytes)]
        sent_words = 0
        pacing = self.server.pacing
        await pacing.before_first_chunk(active.cancelled)
        for number, chunk in enumerate(chunks, 1):
            if active.cancel_reason:
                break
            if number == 1 and self.server.take_fault("corrupt_audio"):
                await self.server.inject(
                    self,
                    json.dumps({"type": "response.output_audio.delta", **base, "delta": "***"}),
                )
            due = math.ceil(len(words) * number / len(chunks))
            for word in words[sent_words:due]:
                await self.send(
                    {"type": "response.output_audio_transcript.delta", **base, "delta": word}
                )
                sent.text += word
            sent_words = max(sent_words, due)
            await self.send(
                {
                    "type": "response.output_audio.delta",
                    **base,
                    "delta": base64.b64encode(chunk).decode("ascii"),
                }
            )
            sent.pcm += chunk
            if number == 1 and self.server.take_fault("drop_mid_reply"):
                drop(self.ws)
            await pacing.after_chunk(
                number, duration_ms(chunk), self.server.chunk_delay_s, active.cancelled
            )
        if not active.cancel_reason:
            for word in words[sent_words:]:
                await self.send(
                    {"type": "response.output_audio_transcript.delta", **base, "delta": word}
                )
                sent.text += word

    async def _emit_function_call(
        self, active: _ActiveResponse, index: int, scripted: FunctionCallItem
    ) -> dict[str, Any]:
        arguments = json.dumps(scripted.arguments)
        sent = SentItem(
            self.server.new_id("item"),
            "function_call",
            call_id=scripted.call_id or self.server.new_id("call", 16),
            name=scripted.name,
            arguments=arguments,
        )
        active.record.items.append(sent)
        item: dict[str, Any] = {
            "id": sent.item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": scripted.name,
            "call_id": sent.call_id,
            "arguments": "",
        }
        await self._add_output_item(active, index, item)
        base = {
            "response_id": active.record.response_id,
            "item_id": sent.item_id,
            "output_index": index,
            "call_id": sent.call_id,
        }
        step = max(1, math.ceil(len(arguments) / 3))
        for start in range(0, len(arguments), step):
            await self.send(
                {
                    "type": "response.function_call_arguments.delta",
                    **base,
                    "delta": arguments[start : start + step],
                }
            )
        await self.send(
            {
                "type": "response.function_call_arguments.done",
                **base,
                "name": scripted.name,
                "arguments": arguments,
            }
        )
        done = item | {"status": "completed", "arguments": arguments}
        await self._finish_output_item(active, index, done)
        return done


class FakeOpenAIRealtimeServer(LoopbackServer):
    """A real websocket server on 127.0.0.1 speaking the Realtime GA protocol.

    `url` is the base URL (`ws://127.0.0.1:PORT/v1`): clients connect to
    `{url}/realtime?model=…` with `Authorization: Bearer <key>`. Azure's GA
    path is served at `azure_url` (`…/openai/v1`) with an `api-key` header.
    """

    API_KEY = "sk-test-valid"

    description = "the fake OpenAI server"

    def __init__(self, *, api_key: str = API_KEY, seed: int = 0) -> None:
        super().__init__()
        self.api_key = api_key
        self.models: set[str] = set(KNOWN_MODELS)
        """Models (and Azure deployment names) the server accepts."""
        self.connections: list[FakeConnection] = []
        self.protocol_errors: list[str] = []
        """Client mistakes: schema-invalid events, bad frames, beta headers."""
        self.responses: deque[ScriptedResponse] = deque()
        self.responder: Callable[[FakeConnection], ScriptedResponse | None] | None = None
        """Consulted when `responses` is empty; None from it means "OK."."""
        self.input_transcripts: deque[str] = deque()
        """What the user "said", per committed turn (default DEFAULT_INPUT_TRANSCRIPT)."""
        self.audio_chunk_ms = 40
        self.chunk_delay_s = 0.0
        """Pause between output chunks, so tests can interrupt mid-response."""
        self.pacing = ModelPacing()
        """How fast replies are generated (default: at once)."""
        self.transcription_delay_s: float | None = None
        """None: the input transcript arrives right after the item, before any
        response. A delay sends it later, interleaved with the response."""
        self.session_ttl_s: float | None = None
        self.pause_after_speech_stopped_s = 0.0
        self._failures: deque[_Failure] = deque()
        self._reject_status: int | None = None
        self._reject_times: int | None = None
        self._rng = random.Random(seed)
        self._changed = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/v1"

    @property
    def azure_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/openai/v1"

    # -- scripting ----------------------------------------------------------

    def new_id(self, prefix: str, length: int = 21) -> str:
        """An id shaped like the real ones (`item_…`, `resp_…`, `event_…`)."""
        return f"{prefix}_" + "".join(self._rng.choices(_ID_ALPHABET, k=length))

    def add_response(self, response: ScriptedResponse) -> None:
        self.responses.append(response)

    def add_input_transcript(self, text: str) -> None:
        self.input_transcripts.append(text)

    def next_input_transcript(self) -> str:
        return (
            self.input_transcripts.popleft() if self.input_transcripts else DEFAULT_INPUT_TRANSCRIPT
        )

    def next_response(self, conn: FakeConnection) -> ScriptedResponse:
        """The queue first, then the responder, then a short "OK."."""
        if self.responses:
            return self.responses.popleft()
        scripted = self.responder(conn) if self.responder else None
        return scripted or ScriptedResponse(SpeechItem("OK."))

    def fail_next_responses_with(
        self,
        code: str,
        message: str,
        error_type: str = "invalid_request_error",
        *,
        count: int = 1,
        in_response: bool = False,
    ) -> None:
        """Answer the next `count` responses with an `error` event instead, or,
        with `in_response`, with `response.created` then a `response.done`
        whose status is `failed` (how the API reports e.g. rate limits)."""
        self._failures.extend(
            _Failure(code, message, error_type, in_response) for _ in range(count)
        )

    def send_rate_limit_error(self) -> None:
        """Make the next response fail the way a rate-limited one does."""
        self.fail_next_responses_with(
            "rate_limit_exceeded",
            "Rate limit reached for gpt-realtime on tokens per min (TPM): Limit 40000, "
            "Used 40000, Requested 1200. Please try again in 1.8s.",
            "tokens",
            in_response=True,
        )

    def rate_limit_next_response(
        self, *, in_response: bool = True, retry_after_s: float = 0.05
    ) -> None:
        """The next response is rate-limited (failed `response.done`, or an `error` event)."""
        self.fail_next_responses_with(
            "rate_limit_exceeded",
            "Rate limit reached for gpt-realtime on tokens per min (TPM): Limit 40000, "
            f"Used 40000, Requested 1200. Please try again in {retry_after_s}s.",
            "tokens",
            in_response=in_response,
        )

    def exhaust_quota_next_response(self, *, in_response: bool = True) -> None:
        """The next response fails for billing: a failed `response.done` (how billing
        failures arrive, with no `error` event) or, with `in_response=False`, an `error`."""
        self.fail_next_responses_with(
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            in_response=in_response,
        )

    def server_error_next_response(self, *, in_response: bool = False) -> None:
        """The next response fails on the server's side (`server_error`)."""
        self.fail_next_responses_with(
            "server_error",
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            in_response=in_response,
        )

    def take_failure(self) -> _Failure | None:
        return self._failures.popleft() if self._failures else None

    def reject_connections_with_status(
        self, status: int | None, *, times: int | None = None
    ) -> None:
        """Fail the next `times` handshakes (None: all until reset) with this
        HTTP status; `status=None` accepts connections again."""
        self._reject_status, self._reject_times = status, times

    async def inject(self, conn: FakeConnection, raw_text: str) -> None:
        """Send a raw frame, unvalidated (malformed JSON, unknown event types…)."""
        await conn.ws.send(raw_text)

    async def wait_for_connection(self, n: int = 1, timeout: float = 5.0) -> FakeConnection:  # noqa: ASYNC109
        """The n-th connection (1-based) once it has been accepted."""
        await wait_until(
            self._changed, lambda: len(self.connections) >= n, timeout, f"connection {n}"
        )
        return self.connections[n - 1]

    # -- handshake ------------------------------------------------------------

    @staticmethod
    def _json_response(
        connection: ServerConnection, status: HTTPStatus, body: dict[str, Any]
    ) -> Response:
        response = connection.respond(status, json.dumps(body))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Reject at the HTTP level what the real services reject there."""
        if self._reject_status is not None:
            status = HTTPStatus(self._reject_status)
            if self._reject_times is not None:
                self._reject_times -= 1
                if self._reject_times <= 0:
                    self._reject_status = None
            body = {"error": {"message": status.phrase, "type": "server_error", "code": None}}
            return self._json_response(connection, status, body)
        parts = urlsplit(request.path)
        if parts.path in (OPENAI_MODELS_PATH, AZURE_MODELS_PATH):
            return self._list_models(connection, request)
        if parts.path not in (OPENAI_PATH, AZURE_PATH):
            body = {
                "error": {
                    "message": f"Invalid URL (GET {parts.path})",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            }
            return self._json_response(connection, HTTPStatus.NOT_FOUND, body)
        if parts.path == AZURE_PATH:
            if self._presented_key(request.headers) != self.api_key:
                body = {
                    "error": {
                        "code": "401",
                        "message": "Access denied due to invalid subscription key or wrong API "
                        "endpoint. Make sure to provide a valid key for an active subscription "
                        "and use a correct regional API endpoint for your resource.",
                    }
                }
                return self._json_response(connection, HTTPStatus.UNAUTHORIZED, body)
            if self._model(request) not in self.models:
                body = {
                    "error": {
                        "code": "DeploymentNotFound",
                        "message": "The API deployment for this resource does not exist. If you "
                        "created the deployment within the last 5 minutes, please wait a moment "
                        "and try again.",
                    }
                }
                return self._json_response(connection, HTTPStatus.NOT_FOUND, body)
        return None

    def _list_models(self, connection: ServerConnection, request: Request) -> Response:
        """`GET /models`: every model the key may use, realtime or not."""
        key = self._presented_key(request.headers)
        if key != self.api_key:
            message = (
                f"Incorrect API key provided: {_mask(key or '')}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            error = _error("invalid_api_key" if key else None, message)["error"]
            del error["event_id"]
            return self._json_response(connection, HTTPStatus.UNAUTHORIZED, {"error": error})
        if self.listing_failure is not None:
            status = HTTPStatus(self.listing_failure)
            error = {"message": status.phrase, "type": "server_error", "param": None, "code": None}
            return self._json_response(connection, status, {"error": error})
        data = [
            {"id": name, "object": "model", "created": 1_767_225_600, "owned_by": "system"}
            for name in (*sorted(self.models), *OTHER_MODELS)
        ]
        for entry in data:
            model = Model.model_validate(entry)
            if model.model_extra:
                raise FakeServerBugError(f"fake listed undeclared fields {model.model_extra}")
        return self._json_response(connection, HTTPStatus.OK, {"object": "list", "data": data})

    @staticmethod
    def _model(request: Request) -> str:
        return parse_qs(urlsplit(request.path).query).get("model", [""])[0]

    @staticmethod
    def _presented_key(headers: Headers) -> str | None:
        authorization = headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            return authorization.removeprefix("Bearer ")
        return headers.get("api-key")

    def _setup_failure(self, ws: ServerConnection) -> tuple[dict[str, Any], int] | None:
        """The in-band error and close code the OpenAI endpoint answers a bad setup with."""
        assert ws.request is not None
        key = self._presented_key(ws.request.headers)
        model = self._model(ws.request)
        if key is None:
            return _error(None, "Missing bearer or basic authentication in header"), 3000
        if key != self.api_key:
            message = (
                f"Incorrect API key provided: {_mask(key)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            return _error("invalid_api_key", message), 3000
        if not model:
            message = (
                "You must provide a model parameter, for example "
                "wss://api.openai.com/v1/realtime?model=gpt-realtime"
            )
            return _error("missing_model", message), 4000
        if model not in self.models:
            message = f"The model `{model}` does not exist or you do not have access to it."
            return _error("model_not_found", message), 4004
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        azure = urlsplit(ws.request.path).path == AZURE_PATH
        failure = None if azure else self._setup_failure(ws)
        if failure is not None:
            event, close_code = failure
            error = event["error"]
            with contextlib.suppress(ConnectionClosed):
                await ws.send(_checked_json({"event_id": self.new_id("event"), **event}))
                reason = ".".join(part for part in (error["type"], error["code"]) if part)
                await ws.close(close_code, reason)
            return
        conn = FakeConnection(self, ws, self._model(ws.request), azure)
        self.connections.append(conn)
        async with self._changed:
            self._changed.notify_all()
        await self.wait_until_admitted()
        await conn.serve()
