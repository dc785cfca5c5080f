"""A protocol-faithful fake of the Gemini Live API (`BidiGenerateContent`) over websockets.

Tests point the client at `server.url` (the client appends `server.endpoint_path`)
and script what the "model" says. The `google-genai` SDK is the spec in both
directions:

- Every client message is validated against `LiveClientMessage` (its models
  forbid unknown fields and accept both camelCase and snake_case names, like the
  server's protobuf JSON parser). Two SDK gaps are patched so the check matches
  the wire: `LiveClientSetup` lacks `realtime_input_config` although the SDK's
  own `_LiveConnectConfig_to_mldev` sends `setup.realtimeInputConfig`, and its
  `system_instruction`/`tools` unions accept SDK conveniences (plain strings,
  callables) that are not wire JSON. The SDK's enums accept unknown values with
  a warning; the fake rejects them, as the server does. A rejected message is
  recorded in `server.protocol_errors` and closes the socket with 1007, the
  way the real server answers (`Invalid JSON payload received. Unknown name
  "x" at 'setup.generation_config': Cannot find field.`).
- Every message the fake sends is validated against `LiveServerMessage`
  (camelCase only, as the server writes) before it goes out as JSON in a
  binary frame, so a bug in the fake fails loudly instead of teaching the
  client a wrong protocol. Client tests should end with
  `assert server.protocol_errors == []`.

What the real API does, and where that was checked:

- A bad API key does not fail the upgrade. The socket opens and the server
  closes it once the client has sent its first message (`setup`): 1007 "API key
  not valid. Please pass a valid API key." for a malformed key ("API Key not
  found. Please pass a valid API key." for a well-formed unknown one), and 1008
  "Method doesn't allow unregistered callers (callers without established
  identity). Please use API Key or other form of API c…" (cut at the close
  frame's 123 bytes) when no key is sent. Sources: an ADK bidi-streaming test
  report whose traceback fails in `google/genai/live.py` `connect()` at the
  `ws.recv()` after the setup was sent ("received 1007 (invalid frame payload
  data) API Key not found. Please pass a valid API key."); a public Live client
  test suite listing the exact close reasons it captured for a bad and an empty
  key; discuss.ai.google.dev "Gemini Live API - Method doesn't allow
  unregistered callers via websocket".
- An unknown model closes with 1008 "models/<name> is not found for API version
  v1beta, or is not supported for bidiGenerateContent. Call ListModels…" (the
  same sentence quoted by several independent public clients;
  livekit/agents#4611 on the bare "1008 (policy violation)" users see).
- `activityStart`/`activityEnd` while automatic activity detection is on close
  with 1007 "… not supported when automatic activity detection is enabled"
  (measured by a public client; the prefix of the sentence is the fake's).
- Session resumption: handles stay valid for 2 hours (ai.google.dev
  live-session). Resuming while the session's previous socket is still open is
  refused with 1011 (aicc2025/sip-to-ai#14, "verified against the live API").
  No public capture of an unknown or expired handle was found; the fake closes
  with `server.unknown_handle_close`, 1007 "Request contains an invalid
  argument." by default.
- After `goAway` the connection is closed with 1011 "Deadline expired before
  operation could complete." (pipecat#3112, googleapis/python-genai#760); some
  clients also report 1008 there, so `send_go_away` takes the code.
- After a `toolCall` some models end the turn at once (`generationComplete`,
  `turnComplete`) and continue in a new turn after the `toolResponse`, others
  keep the turn open until the continuation is done (livekit/agents#3192 and
  #7195, BerriAI/litellm#26590): `server.complete_turn_on_tool_call` picks one.
- Models differ (`MODEL_RULES`, from Google's model pages: gemini-3.8-live's
  "Migrating from Gemini 3.1 Flash Live", the Live API tools page). On 3.8
  function calls are asynchronous unless declared `behavior: BLOCKING`: the
  model keeps talking after the `toolCall` and ends its turn; each result is
  scheduled as its `scheduling` says (`WHEN_IDLE`, the default: a new turn once
  the model is idle; `INTERRUPT`: the turn in progress is interrupted and a new
  one starts; `SILENT`: into the context only), and `willContinue` keeps a call
  open for more results. Background calls are not cancelled when the user
  speaks (the point of them is that the conversation goes on). 3.8 refuses
  `thinkingConfig`, `enableAffectiveDialog` and `proactivity.proactiveAudio:
  false` (1007), reports the user's speech as `voiceActivity` and sends
  `interactionStatus` with `turnComplete`. 3.1 runs calls synchronously only,
  has neither affective dialog nor proactivity, and takes `clientContent` only
  as initial history (its early docs; `historyConfig.initialHistoryInClientContent`).
  No public capture of these refusals' close reasons was found: the fake's are
  `INVALID_ARGUMENT` with the field named.
- `malformed_next_function_call` ends the next turn that would call a tool
  with `turnComplete` and `turnCompleteReason: MALFORMED_FUNCTION_CALL`, no call
  and no `generationComplete`.
- Input transcription honours `inputAudioTranscription.customVocabulary`: a
  name the fake "mishears" (`server.mishearings`) comes out right only when the
  vocabulary holds it.
- `models.list` (`GET /v1beta/models`, `x-goog-api-key` or `key=`) is served on
  the same port, paged (`pageSize`, `pageToken`), every entry checked against
  the SDK's `Model` through its own wire converter. A bad key gets 400
  INVALID_ARGUMENT "API key not valid…", none 403 PERMISSION_DENIED (Google's
  REST errors); `listing_failure` answers with another status.
- Results for calls the server cancelled (`toolCallCancellation`) are ignored
  without error: a client cannot avoid sending one in the race. A result for an
  id never issued, a second result for one id, or a result whose `name` is
  missing or wrong (newer models treat a nameless result as a failed call,
  roomkit-live/roomkit#42) is a protocol error; the session goes on.

Limits of the fake: input audio must be PCM16 mono at 16 kHz; activity
detection is an energy VAD (see `tests.fakes.audio_samples`; `prefixPaddingMs`,
`silenceDurationMs` and `END_SENSITIVITY_LOW` are honoured); output audio is
streamed faster than real time and `turnComplete` follows `generationComplete`
at once unless `turn_complete_delay_s` stands in for the playback the real
server waits for. `contextUpdate` (newer SDKs) is not modelled: it is recorded
as a protocol error so a client that starts sending it notices.
"""

import asyncio
import base64
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
import contextlib
import copy
from dataclasses import dataclass, field
import enum
from http import HTTPStatus
import json
import logging
import math
import random
import re
import string
import time
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit
import warnings

from google.genai import models as genai_models, types
import pydantic
from pydantic import alias_generators
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from tests.fakes.audio_samples import VAD_RMS_THRESHOLD, duration_ms, rms, speech_like
from tests.fakes.loopback import (
    Dropped,
    FakeServerBugError,
    LoopbackServer,
    ModelPacing,
    drop,
    wait_until,
)

_LOGGER = logging.getLogger(__name__)

ENDPOINT_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
_PATH = re.compile(
    r"/ws/google\.ai\.generativelanguage\.(?P<version>v1alpha|v1beta)"
    r"\.GenerativeService\.BidiGenerateContent"
)
_MODELS_PATH = re.compile(r"/(?:v1alpha|v1beta)/models")
_MAX_PAGE_SIZE = 1000

KNOWN_MODELS = frozenset(
    {
        "gemini-2.5-flash-native-audio-preview-12-2025",
        "gemini-2.5-flash-native-audio-preview-09-2025",
        "gemini-2.5-flash-native-audio-latest",
        "gemini-3.1-flash-live-preview",
        "gemini-3.8-live",
    }
)
"""Live models of the Gemini API (names without `models/`) as of the research notes;
`server.models` starts with these. (`gemini-live-2.5-flash-preview` is retired: 1008.)"""
OTHER_MODELS = ("gemini-3.8-flash", "gemini-3.8-flash-tts", "gemini-embedding-002")
"""Models `models.list` shows that do not speak the Live API (`generateContent` and such)."""


@dataclass(frozen=True)
class ModelRules:
    """What one model accepts and does differently (see the module docstring)."""

    background_calls_by_default: bool = False
    """Calls without a declared `behavior` run in the background (3.8's NON_BLOCKING)."""
    background_calls: bool = True
    """`behavior: NON_BLOCKING` is honoured (3.1 is synchronous only)."""
    refused_setup_fields: tuple[str, ...] = ()
    """Setup fields (dotted camelCase paths) the model refuses with 1007."""
    refuses_proactive_audio_off: bool = False
    voice_activity: bool = False
    """The user's speech is reported as `voiceActivity`, and `turnComplete` carries
    `interactionStatus`."""
    initial_history_only: bool = False
    """`clientContent` only as initial history (else 1007)."""


MODEL_RULES: dict[str, ModelRules] = {
    "gemini-3.8-live": ModelRules(
        background_calls_by_default=True,
        refused_setup_fields=(
            "generationConfig.thinkingConfig",
            "generationConfig.enableAffectiveDialog",
        ),
        refuses_proactive_audio_off=True,
        voice_activity=True,
    ),
    "gemini-3.1-flash-live-preview": ModelRules(
        background_calls=False,
        refused_setup_fields=("generationConfig.enableAffectiveDialog", "proactivity"),
        initial_history_only=True,
    ),
}
"""Models that differ from the 2.5 native-audio models' rules (`ModelRules()`)."""

INPUT_RATE = 16_000
OUTPUT_RATE = 24_000
DEFAULT_INPUT_TRANSCRIPT = "Hello."
DEFAULT_SILENCE_MS = 500
LOW_END_SENSITIVITY_SILENCE_MS = 800
"""End of speech after this much silence, unless `silenceDurationMs` says otherwise;
`END_SENSITIVITY_LOW` ends speech less often, so it waits longer."""

INVALID_ARGUMENT = "Request contains an invalid argument."
INTERNAL_ERROR = "Internal error encountered."
DEADLINE_EXPIRED = "Deadline expired before operation could complete."
BAD_KEY_REASON = "API key not valid. Please pass a valid API key."
NO_KEY_REASON = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
ACTIVITY_WITH_VAD_REASON = (
    "Explicit activity control is not supported when automatic activity detection is enabled."
)
# How the fake closes for `fail_next_reply_with`: no public capture of the Live API's
# RESOURCE_EXHAUSTED close was found, so these follow Google's REST error wording.
FAILURE_CLOSES: dict[str, tuple[int, str]] = {
    "rate_limit": (1011, "Resource has been exhausted (e.g. check quota)."),
    "quota": (
        1011,
        "You exceeded your current quota, please check your plan and billing details. For "
        "more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    ),
    "server": (1011, INTERNAL_ERROR),
}
_GARBAGE = (
    "this is not json",
    "[1, 2, 3]",
    '{"brandNewMessage": {"someField": 1}}',
    '{"serverContent": "not an object"}',
)
"""What `send_garbage_before_next_reply` sends: broken, then merely unknown, messages."""

_MAX_REASON_BYTES = 123
_IN_BYTES_PER_MS = 2 * INPUT_RATE // 1000
_OUT_BYTES_PER_MS = 2 * OUTPUT_RATE // 1000
_VAD_FRAME_MS = 20
_SYNTH_MS_PER_CHAR = 50
_AUDIO_TOKENS_PER_S = 32
IMAGE_TOKENS = 258
_CHARS_PER_TOKEN = 4
_HANDLE_ALPHABET = string.ascii_letters + string.digits + "-_"
_FIELD = re.compile(r"[a-z][A-Za-z0-9_]*")
_RATE = re.compile(r"rate=(\d+)")
_ROLES = frozenset({"user", "model"})
_TYPE_LABELS = {
    "string": "TYPE_STRING",
    "bool": "TYPE_BOOL",
    "int": "TYPE_INT32",
    "float": "TYPE_FLOAT",
    "bytes": "TYPE_BYTES",
}


class _WireSetup(types.LiveClientSetup):
    """`setup` as it travels: the SDK type plus the field its converter sends,
    and only the wire forms of its SDK-convenience unions."""

    system_instruction: types.Content | None = None
    tools: list[types.Tool] | None = None  # type: ignore[assignment]
    realtime_input_config: types.RealtimeInputConfig | None = None


class _WireClientMessage(types.LiveClientMessage):
    setup: _WireSetup | None = None


# -- validation ----------------------------------------------------------------


def _proto_path(loc: list[str | int]) -> str:
    """`setup.generation_config.response_modalities[0]`, as the server names fields."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{alias_generators.to_snake(part)}"
    return path.lstrip(".")


def _invalid_enums(value: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """(path, value, enum name) of every enum value the SDK let through with a warning."""
    if isinstance(value, pydantic.BaseModel):
        for name in type(value).model_fields:
            yield from _invalid_enums(getattr(value, name), f"{path}.{name}".lstrip("."))
    elif isinstance(value, list):
        for index, entry in enumerate(value):
            yield from _invalid_enums(entry, f"{path}[{index}]")
    elif isinstance(value, enum.Enum) and value.value not in type(value)._value2member_map_:
        yield path, str(value.value), type(value).__name__


def _describe(err: pydantic.ValidationError) -> str:
    """The close reason the server gives for the first schema violation."""
    error = err.errors()[0]
    loc = [part for part in error["loc"] if isinstance(part, int) or _FIELD.fullmatch(part)]
    kind = error["type"]
    if kind == "extra_forbidden":
        where = _proto_path(loc[:-1])
        at = f" at '{where}'" if where else ""
        return f'Invalid JSON payload received. Unknown name "{loc[-1]}"{at}: Cannot find field.'
    path = _proto_path(loc)
    if kind == "bytes_invalid_encoding":
        value = json.dumps(error["input"])[:60]
        return f"Invalid value at '{path}' (TYPE_BYTES), Base64 decoding failed for {value}"
    label = next(
        (label for prefix, label in _TYPE_LABELS.items() if kind.startswith(prefix)),
        "TYPE_MESSAGE",
    )
    return f"Invalid value at '{path}' ({label}), {json.dumps(error['input'])[:60]}"


def _standard_base64(model: pydantic.BaseModel, dumped: dict[str, Any]) -> None:
    """Put bytes back as standard base64, as the client sent them (pydantic's
    JSON form is the URL-safe alphabet)."""
    for name, info in type(model).model_fields.items():
        value, key = getattr(model, name), info.alias or name
        if isinstance(value, bytes):
            dumped[key] = base64.b64encode(value).decode("ascii")
        elif isinstance(value, pydantic.BaseModel):
            _standard_base64(value, dumped[key])
        elif isinstance(value, list):
            for entry, dumped_entry in zip(value, dumped[key], strict=True):
                if isinstance(entry, pydantic.BaseModel):
                    _standard_base64(entry, dumped_entry)


def _parse_client_message(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(canonical camelCase message, None), or (None, the server's 1007 reason)."""
    try:
        raw = json.loads(text)
    except ValueError:
        return None, "Invalid JSON payload received. Unexpected token."
    if not isinstance(raw, dict):
        return None, "Invalid JSON payload received. Root element must be a message."
    with warnings.catch_warnings():
        # The SDK warns about unknown enum values; they are reported below.
        warnings.simplefilter("ignore")
        try:
            model = _WireClientMessage.model_validate_json(text)
        except pydantic.ValidationError as err:
            return None, _describe(err)
    bad_enum = next(_invalid_enums(model), None)
    if bad_enum is not None:
        path, value, enum_name = bad_enum
        return None, (
            f"Invalid value at '{path}' "
            f'(type.googleapis.com/google.ai.generativelanguage.v1beta.{enum_name}), "{value}"'
        )
    message = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    _standard_base64(model, message)
    if len(message) > 1:
        return None, (
            "Invalid JSON payload received. Oneof field 'message_type' is already set. "
            f"Cannot set '{list(message)[1]}'"
        )
    if not message:
        return None, INVALID_ARGUMENT
    return message, None


def _checked_frame(message: dict[str, Any]) -> bytes:
    """The message as the JSON bytes of a binary frame, after proving it a valid one."""
    text = json.dumps(message, separators=(",", ":"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = types.LiveServerMessage.model_validate_json(text, by_alias=True, by_name=False)
        except pydantic.ValidationError as err:
            raise FakeServerBugError(f"fake sent an invalid message {text[:200]}: {err}") from err
    if not message or list(_invalid_enums(model)):
        raise FakeServerBugError(f"fake sent an invalid message {text[:200]}")
    return text.encode()


def _checked_model(entry: dict[str, Any]) -> dict[str, Any]:
    """A `models.list` entry, after proving the SDK reads every field of it as a `Model`
    (its converter also copies the whole entry into `tuned_model_info`, whose fields it
    then drops as unknown: that copy is no field of ours)."""
    unknown = [
        key
        for key in entry
        if not set(genai_models._Model_from_mldev({key: entry[key]})) - {"tuned_model_info"}
    ]
    try:
        # The SDK strips what it does not read from the entry in place: give it a copy.
        converted = genai_models._Model_from_mldev(copy.deepcopy(entry))
        types.Model._from_response(response=converted, kwargs={})
    except pydantic.ValidationError as err:
        raise FakeServerBugError(f"fake listed an invalid model {entry}: {err}") from err
    if unknown:
        raise FakeServerBugError(f"fake listed fields the SDK does not read: {unknown}")
    return entry


def _model_entry(name: str, methods: list[str]) -> dict[str, Any]:
    """How `models.list` describes one model."""
    return _checked_model(
        {
            "name": f"models/{name}",
            "version": "001",
            "displayName": name.replace("-", " ").title(),
            "description": f"The {name} model.",
            "inputTokenLimit": 131_072,
            "outputTokenLimit": 65_536,
            "supportedGenerationMethods": methods,
        }
    )


def _reason(text: str) -> str:
    """A close reason cut, like the server's, to the 123 bytes a close frame holds."""
    return text.encode()[:_MAX_REASON_BYTES].decode(errors="ignore")


def _duration(seconds: float) -> str:
    """A protobuf JSON Duration to the millisecond: "50s", "0.250s"."""
    whole, millis = divmod(round(seconds * 1000), 1000)
    return f"{whole}.{millis:03d}s" if millis else f"{whole}s"


def _dig(data: Any, *keys: str) -> Any:
    """`data[k1][k2]…`, or None where a level is missing."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    """Until the first of `waits` is done (the others are cancelled)."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _words(text: str) -> list[str]:
    """Text split into transcription-sized pieces that join back to the exact text."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def _text_tokens(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def _audio_tokens(audio_ms: float) -> int:
    return math.ceil(audio_ms * _AUDIO_TOKENS_PER_S / 1000)


# -- what tests script -------------------------------------------------------


@dataclass(frozen=True)
class SpeechPart:
    """Something the model says; `pcm` (PCM16 24 kHz) None means synthesise
    speech-like audio lasting about 50 ms per character of `transcript`. With
    `responseModalities: ["TEXT"]` the transcript is written instead."""

    transcript: str
    pcm: bytes | None = None


@dataclass(frozen=True)
class ToolCallPart:
    """A function call; `id` None gets a fresh `function-call-…` id. Consecutive
    calls go out together in one `toolCall` message."""

    name: str
    args: dict[str, Any]
    id: str | None = None


type ModelPart = SpeechPart | ToolCallPart


class ScriptedTurn:
    """What the model does in one go: speech, then optionally one batch of tool
    calls, then (only if the calls run in the background) more speech. What it
    says after the results is the next scripted turn (queue, then responder,
    then "OK.")."""

    def __init__(self, *parts: ModelPart) -> None:
        first_call = next(
            (i for i, part in enumerate(parts) if isinstance(part, ToolCallPart)), len(parts)
        )
        last_call = max(
            (i for i, part in enumerate(parts) if isinstance(part, ToolCallPart)), default=-1
        )
        if any(isinstance(part, SpeechPart) for part in parts[first_call:last_call]):
            raise ValueError("one batch of calls per turn; script a next turn")
        self.speech: list[SpeechPart] = [p for p in parts[:first_call] if isinstance(p, SpeechPart)]
        self.calls: list[ToolCallPart] = [p for p in parts if isinstance(p, ToolCallPart)]
        self.speech_after_calls: list[SpeechPart] = (
            [p for p in parts[last_call + 1 :] if isinstance(p, SpeechPart)] if self.calls else []
        )

    def __repr__(self) -> str:
        return f"ScriptedTurn{(*self.speech, *self.calls, *self.speech_after_calls)!r}"


# -- what tests inspect ------------------------------------------------------

type TurnTrigger = Literal["audio", "activity", "text", "client_content", "tool_response"]


@dataclass
class TurnRecord:
    """One scripted turn as the fake emitted it (up to an interruption)."""

    trigger: TurnTrigger
    status: Literal["in_progress", "completed", "interrupted"] = "in_progress"
    transcript: str = ""
    """What was spoken (or written) so far."""
    pcm: bytearray = field(default_factory=bytearray)
    """The exact PCM16 24 kHz bytes sent in `inlineData` parts."""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """The `functionCalls` sent ({id, name, args})."""

    @property
    def audio_ms(self) -> float:
        return duration_ms(bytes(self.pcm), OUTPUT_RATE)


@dataclass(frozen=True)
class UserTurn:
    """A user turn taken from realtime input: what VAD (or the activity
    signals) captured, and the transcript the fake made up for it."""

    source: Literal["audio", "activity", "text"]
    text: str
    pcm: bytes = b""
    """PCM16 16 kHz audio of the turn (empty for text)."""


@dataclass(frozen=True)
class VideoFrame:
    """One `realtimeInput.video` frame, for tests of what the camera sent and when."""

    mime_type: str
    data: bytes
    received_at: float
    """`time.monotonic()` when the frame arrived."""


@dataclass(frozen=True)
class ResumptionHandle:
    """A handle the server issued, and the conversation it resumes."""

    handle: str
    session_id: str
    history: list[dict[str, Any]]


@dataclass
class _Turn:
    """The model's turn on the wire: from its first output to `turnComplete`."""

    records: list[TurnRecord] = field(default_factory=list)
    interrupted: asyncio.Event = field(default_factory=asyncio.Event)
    completed: bool = False
    reason: str | None = None
    """`turnCompleteReason`, when the turn ends other than normally."""


@dataclass
class _CallBatch:
    """One `toolCall` the model is blocked on."""

    names: dict[str, str]
    answered: set[str] = field(default_factory=set)
    cancelled: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Speech:
    """VAD state: audio since activity started, and the silence at its end."""

    pcm: bytearray = field(default_factory=bytearray)
    silence_ms: int = 0


class FakeGeminiConnection:
    """One Live session socket on the fake server, with everything it saw and did."""

    def __init__(self, server: FakeGeminiLiveServer, ws: ServerConnection, version: str) -> None:
        self.server = server
        self.ws = ws
        self.api_version = version
        self.headers: Headers = ws.request.headers if ws.request else Headers()
        self.number = server.accept()
        self.setup: dict[str, Any] = {}
        """The validated `setup`, in canonical camelCase whatever casing the client used."""
        self.session_id = server.new_id(16)
        """Shared by every connection of one resumed session."""
        self.resumed_from: str | None = None
        self.received: list[dict[str, Any]] = []
        """Every client message that parsed as a JSON object, exactly as sent."""
        self.messages: list[dict[str, Any]] = []
        """Every valid client message, canonical camelCase (what handlers act on)."""
        self.sent: list[dict[str, Any]] = []
        """Every validated message sent (raw `server.inject` frames excluded)."""
        self.history: list[dict[str, Any]] = []
        """The conversation as `Content` dicts ({role, parts}); audio is held as its transcript."""
        self.turns: list[TurnRecord] = []
        self.user_turns: list[UserTurn] = []
        self.tool_responses: list[dict[str, Any]] = []
        """Every `functionResponses` entry received, in order (ignored ones included)."""
        self.context_updates: list[dict[str, Any]] = []
        """`clientContent` turns sent mid-session without asking for an answer (notes to
        the model, not things the user said); they are in `history` too."""
        self.cancelled_call_ids: set[str] = set()
        self.video_frames: list[VideoFrame] = []
        self.audio_ms_received = 0.0
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._turn: _Turn | None = None
        self._calls: _CallBatch | None = None
        # Calls running in the background, by id: their names.
        self._background_calls: dict[str, str] = {}
        self._answered_ids: set[str] = set()
        self._model_task: asyncio.Task[None] | None = None
        self._vad_buffer = bytearray()
        # Audio the VAD has looked at (ms): where `voiceActivity` says speech starts and ends.
        self._vad_ms = 0
        self._loud_run = bytearray()
        self._speech: _Speech | None = None
        self._activity: bytearray | None = None
        self._started = False
        self._handlers: dict[str, Callable[[Any], Awaitable[None]]] = {
            "setup": self._on_second_setup,
            "clientContent": self._on_client_content,
            "realtimeInput": self._on_realtime_input,
            "toolResponse": self._on_tool_response,
            "contextUpdate": self._on_context_update,
        }

    # -- public helpers --------------------------------------------------

    @property
    def model(self) -> str:
        """The model as `setup` named it (`models/…`)."""
        return str(self.setup.get("model", ""))

    @property
    def rules(self) -> ModelRules:
        return MODEL_RULES.get(self.model.removeprefix("models/"), ModelRules())

    @property
    def active_turn(self) -> TurnRecord | None:
        """The scripted turn being emitted or waiting for tool results."""
        return self._turn.records[-1] if self._turn and self._turn.records else None

    def last_user_text(self) -> str | None:
        """The newest user words in the conversation (spoken, typed or seeded)."""
        for content in reversed(self.history):
            if content.get("role") != "user":
                continue
            for part in reversed(content.get("parts", [])):
                if part.get("text"):
                    return str(part["text"])
        return None

    async def wait_for_message(
        self,
        kind: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
        count: int = 1,
    ) -> dict[str, Any]:
        """The `count`-th valid client message of this kind (`realtimeInput`,
        `toolResponse`…; matched in camelCase whatever the client sent) for which
        `predicate(message[kind])` holds, waiting for it if need be."""

        def matches() -> list[dict[str, Any]]:
            return [
                message
                for message in self.messages
                if kind in message and (predicate is None or predicate(message[kind]))
            ]

        await wait_until(
            self._changed, lambda: len(matches()) >= count, timeout, f"client {kind!r}"
        )
        return matches()[count - 1]

    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the model is neither talking nor waiting for tool results."""
        await wait_until(self._changed, self._idle, timeout, "the model to be idle")

    async def send(self, message: dict[str, Any]) -> None:
        """Send a server message (validated) as JSON in a binary frame."""
        frame = _checked_frame(message)
        await self.ws.send(frame)
        self.sent.append(json.loads(frame))
        await self._notify()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the websocket from the server side (reason cut to 123 bytes)."""
        await self.ws.close(code, _reason(reason))

    def close_abruptly(self) -> None:
        """Drop the TCP connection with no close frame (client sees 1006)."""
        self.ws.transport.abort()

    # -- connection lifecycle --------------------------------------------

    async def start(self, first_frame: str | bytes) -> None:
        """Handle the first message, which must be a valid `setup`: register the
        connection on the server and answer `setupComplete`, or close."""
        message = await self._parse(first_frame)
        if message is None:
            return
        if "setup" not in message:
            await self._reject(
                f"first message is {next(iter(message))!r}, not 'setup'", 1007, INVALID_ARGUMENT
            )
            return
        self.setup = message["setup"]
        problem = self._setup_problem()
        if problem is not None:
            code, reason, mistake = problem
            if mistake is not None:
                self.server.protocol_errors.append(mistake)
            await self.close(code, reason)
            return
        handle = _dig(self.setup, "sessionResumption", "handle")
        if handle is not None:
            resumed = self.server.handles[handle]
            self.resumed_from, self.session_id = handle, resumed.session_id
            self.history = copy.deepcopy(resumed.history)
        # Registered first, so a test that has seen `setupComplete` finds it.
        await self.server._register(self)
        await self.server.wait_until_admitted()
        await self.send({"setupComplete": {}})
        if "sessionResumption" in self.setup:
            if self.setup["sessionResumption"].get("transparent"):
                self.server.protocol_errors.append(
                    "sessionResumption.transparent is Vertex-only (the SDK refuses it)"
                )
            await self._issue_handle()

    async def serve(self) -> None:
        """Run the session until the socket closes."""
        try:
            await self._guard(self._serve())
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._notify()

    async def _serve(self) -> None:
        if self.server.connection_lifetime_s is not None:
            lifetime = self.server.connection_lifetime_s
            notice = min(lifetime, self.server.go_away_notice_s)
            self._spawn(self._go_away_after(lifetime - notice, notice))
        async for frame in self.ws:
            await self.server.wait_until_reading(self.number)
            message = await self._parse(frame)
            if message is None:
                return
            kind = next(iter(message))
            await self._handlers[kind](message[kind])
            await self._notify()

    async def _guard(self, work: Coroutine[Any, Any, None]) -> None:
        """Run fake work; a closed socket ends it quietly, a fake bug loudly."""
        try:
            await work
        except ConnectionClosed, Dropped:
            pass
        except Exception as err:
            _LOGGER.exception("fake Gemini Live server failed")
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

    def _idle(self) -> bool:
        return self._turn is None and self._calls is None and self._model_task is None

    async def _parse(self, frame: str | bytes) -> dict[str, Any] | None:
        """The canonical message, or None after closing the socket over it."""
        try:
            text = frame.decode() if isinstance(frame, bytes) else frame
        except UnicodeDecodeError:
            await self._reject(
                f"binary frame of {len(frame)} bytes is not UTF-8",
                1007,
                "Invalid JSON payload received. Unexpected token.",
            )
            return None
        with contextlib.suppress(ValueError):
            if isinstance(raw := json.loads(text), dict):
                self.received.append(raw)
        message, reason = _parse_client_message(text)
        if message is None:
            assert reason is not None
            await self._reject(f"{reason} in {text[:300]}", 1007, reason)
            return None
        self.messages.append(message)
        return message

    async def _reject(self, description: str, code: int, reason: str) -> None:
        """Record a client mistake and close the socket the way the server does."""
        self.server.protocol_errors.append(description)
        await self.close(code, reason)

    async def go_away(
        self, time_left_s: float, *, close_code: int = 1011, reason: str = DEADLINE_EXPIRED
    ) -> None:
        """Send `goAway {timeLeft}` now and close the socket when the time is up."""
        await self.send({"goAway": {"timeLeft": _duration(time_left_s)}})
        self._spawn(self._close_after(time_left_s, close_code, reason))

    async def _close_after(self, delay_s: float, code: int, reason: str) -> None:
        await asyncio.sleep(delay_s)
        await self.close(code, reason)

    async def _go_away_after(self, delay_s: float, time_left_s: float) -> None:
        await asyncio.sleep(delay_s)
        await self.go_away(time_left_s)

    # -- setup -------------------------------------------------------------

    def _setup_problem(self) -> tuple[int, str, str | None] | None:
        """(close code, reason, protocol error or None) if the real server refuses
        this setup. An unknown model or a stale handle is not a protocol error."""
        model = self.setup.get("model")
        if not model:
            return 1007, INVALID_ARGUMENT, "setup without a model"
        if model.removeprefix("models/") not in self.server.models:
            reason = (
                f"{model} is not found for API version {self.api_version}, or is not supported "
                "for bidiGenerateContent. Call ListModels to see the list of available models "
                "and their supported methods."
            )
            return 1008, _reason(reason), None
        modalities = _dig(self.setup, "generationConfig", "responseModalities")
        if modalities is not None and len(modalities) != 1:
            return 1007, INVALID_ARGUMENT, f"responseModalities {modalities} is not exactly one"
        rules = self.rules
        for path in rules.refused_setup_fields:
            if _dig(self.setup, *path.split(".")) is not None:
                reason = f"{path} is not supported by {model}. {INVALID_ARGUMENT}"
                return 1007, _reason(reason), f"setup.{path} sent to {model}, which refuses it"
        if rules.refuses_proactive_audio_off and (
            _dig(self.setup, "proactivity", "proactiveAudio") is False
        ):
            reason = f"Proactive audio cannot be disabled for {model}. {INVALID_ARGUMENT}"
            return 1007, _reason(reason), f"proactiveAudio false sent to {model}"
        handle = _dig(self.setup, "sessionResumption", "handle")
        if handle is not None:
            resumed = None if self.server.refuse_handles else self.server.handles.get(handle)
            if resumed is None:
                return (*self.server.unknown_handle_close, None)
            if any(
                c.session_id == resumed.session_id and c.ws.state is State.OPEN
                for c in self.server.connections
            ):
                return 1011, INTERNAL_ERROR, None
        return None

    async def _on_second_setup(self, setup: dict[str, Any]) -> None:
        await self._reject("a second setup message", 1007, INVALID_ARGUMENT)

    async def _on_context_update(self, update: dict[str, Any]) -> None:
        self.server.protocol_errors.append("contextUpdate is not supported by the fake")

    def _vad_config(self) -> dict[str, Any]:
        return _dig(self.setup, "realtimeInputConfig", "automaticActivityDetection") or {}

    def _vad_enabled(self) -> bool:
        return not self._vad_config().get("disabled", False)

    def _modality(self) -> str:
        modalities = _dig(self.setup, "generationConfig", "responseModalities")
        return str(modalities[0]) if modalities else "AUDIO"

    def _barge_in_allowed(self) -> bool:
        handling = _dig(self.setup, "realtimeInputConfig", "activityHandling")
        return bool(handling != "NO_INTERRUPTION")

    # -- realtime input ------------------------------------------------------

    async def _on_realtime_input(self, realtime: dict[str, Any]) -> None:
        self._started = True
        if len(realtime) != 1:
            self.server.protocol_errors.append(
                f"realtimeInput with {sorted(realtime)}: send exactly one field per message"
            )
        for key, value in realtime.items():
            if key == "mediaChunks":
                self.server.protocol_errors.append(
                    "realtimeInput.mediaChunks is deprecated; send audio or video"
                )
                for blob in value:
                    await self._on_blob(blob)
            elif key in ("audio", "video"):
                await self._on_blob(value, key)
            elif key == "text":
                await self._on_text(value)
            elif key == "audioStreamEnd":
                await self._on_audio_stream_end()
            elif key in ("activityStart", "activityEnd"):
                await self._on_activity_signal(key)

    async def _on_blob(self, blob: dict[str, Any], kind: str | None = None) -> None:
        mime = str(blob.get("mimeType", ""))
        data = base64.b64decode(blob.get("data", ""))
        if kind == "video" or (kind is None and mime.startswith("image/")):
            if not mime.startswith("image/"):
                self.server.protocol_errors.append(f"realtimeInput.video with mimeType {mime!r}")
            self.video_frames.append(VideoFrame(mime, data, time.monotonic()))
            return
        rate = _RATE.search(mime)
        if not mime.startswith("audio/pcm") or (rate and int(rate[1]) != INPUT_RATE):
            self.server.protocol_errors.append(
                f"realtimeInput.audio with mimeType {mime!r}: the fake takes audio/pcm;rate=16000"
            )
            return
        self.audio_ms_received += duration_ms(data, INPUT_RATE)
        if self._activity is not None:
            self._activity += data
        elif self._vad_enabled():
            self._vad_buffer += data
            await self._run_vad()

    async def _run_vad(self) -> None:
        """Energy VAD over whole 20 ms frames: speech starts once it has lasted
        `prefixPaddingMs` (the SDK: "the required duration of detected speech
        before start-of-speech is committed", not OpenAI's pre-roll), and ends
        after `silenceDurationMs` of silence."""
        config = self._vad_config()
        low_end = config.get("endOfSpeechSensitivity") == "END_SENSITIVITY_LOW"
        silence_limit = config.get("silenceDurationMs") or (
            LOW_END_SENSITIVITY_SILENCE_MS if low_end else DEFAULT_SILENCE_MS
        )
        confirm_bytes = max(_VAD_FRAME_MS, config.get("prefixPaddingMs") or 0) * _IN_BYTES_PER_MS
        frame_bytes = _VAD_FRAME_MS * _IN_BYTES_PER_MS
        while len(self._vad_buffer) >= frame_bytes:
            frame = bytes(self._vad_buffer[:frame_bytes])
            del self._vad_buffer[:frame_bytes]
            loud = rms(frame) >= VAD_RMS_THRESHOLD
            self._vad_ms += _VAD_FRAME_MS
            if self._speech is None:
                if not loud:
                    self._loud_run.clear()
                    continue
                self._loud_run += frame
                if len(self._loud_run) >= confirm_bytes:
                    self._speech = _Speech(bytearray(self._loud_run))
                    started_ms = self._vad_ms - len(self._loud_run) // _IN_BYTES_PER_MS
                    self._loud_run.clear()
                    self.server.start_burst(self.ws)
                    await self._report_voice_activity("ACTIVITY_START", started_ms)
                    await self._activity_started()
                continue
            self._speech.pcm += frame
            self._speech.silence_ms = 0 if loud else self._speech.silence_ms + _VAD_FRAME_MS
            if self._speech.silence_ms >= silence_limit:
                await self._end_speech()

    async def _end_speech(self) -> None:
        assert self._speech is not None
        speech, self._speech = self._speech, None
        await self._report_voice_activity("ACTIVITY_END", self._vad_ms)
        await self._user_turn("audio", self.server.next_input_transcript(), bytes(speech.pcm))

    async def _report_voice_activity(self, kind: str, at_ms: int) -> None:
        """Where the model reports it (3.8), what its activity detection heard, and when."""
        if self.rules.voice_activity:
            activity = {"voiceActivityType": kind, "audioOffset": _duration(at_ms / 1000)}
            await self.send({"voiceActivity": activity})

    async def _on_audio_stream_end(self) -> None:
        """The microphone paused: what was heard so far is flushed as a turn."""
        if not self._vad_enabled():
            self.server.protocol_errors.append(
                "audioStreamEnd with automatic activity detection disabled (send activityEnd)"
            )
            return
        self._vad_buffer.clear()
        self._loud_run.clear()
        if self._speech is not None:
            await self._end_speech()

    async def _on_activity_signal(self, key: str) -> None:
        if self._vad_enabled():
            await self._reject(
                f"realtimeInput.{key} while automatic activity detection is on",
                1007,
                ACTIVITY_WITH_VAD_REASON,
            )
            return
        if key == "activityStart":
            if self._activity is not None:
                self.server.protocol_errors.append("activityStart during an activity")
                return
            self._activity = bytearray()
            await self._activity_started()
            return
        if self._activity is None:
            self.server.protocol_errors.append("activityEnd without activityStart")
            return
        pcm, self._activity = bytes(self._activity), None
        await self._user_turn("activity", self.server.next_input_transcript(), pcm)

    async def _on_text(self, text: str) -> None:
        """Realtime text counts as user activity and is a turn of its own."""
        await self._activity_started()
        await self._user_turn("text", text)

    async def _activity_started(self) -> None:
        """The user started talking: barge in on the model unless told not to."""
        if self.server.take_fault("drop_mid_user_speech"):
            drop(self.ws)
        if self._barge_in_allowed():
            await self._interrupt()

    async def _user_turn(
        self, source: Literal["audio", "activity", "text"], text: str, pcm: bytes = b""
    ) -> None:
        self.user_turns.append(UserTurn(source, text, pcm))
        self.history.append({"role": "user", "parts": [{"text": text}]})
        transcribe = "inputAudioTranscription" in self.setup and source != "text"
        if transcribe and (
            self.server.take_fault("no_transcript") or self.server.take_fault("failed_transcript")
        ):
            transcribe = False  # Gemini reports no transcription failures: nothing comes
        if transcribe:
            vocabulary = _dig(self.setup, "inputAudioTranscription", "customVocabulary") or []
            heard = self.server.transcribed(text, " ".join(vocabulary))
            for piece in _words(heard):
                await self.send({"serverContent": {"inputTranscription": {"text": piece}}})
        self._start_model(source)

    # -- client content and tool responses ------------------------------------

    async def _on_client_content(self, content: dict[str, Any]) -> None:
        turns = content.get("turns", [])
        for index, turn in enumerate(turns):
            if turn.get("role") not in _ROLES:
                await self._reject(
                    f"clientContent.turns[{index}].role {turn.get('role')!r}",
                    1007,
                    "Please use a valid role: user, model.",
                )
                return
        if (self.server.initial_history_only or self.rules.initial_history_only) and (
            self._started or not _dig(self.setup, "historyConfig", "initialHistoryInClientContent")
        ):
            await self._reject(
                "clientContent is only initial history on this model "
                "(historyConfig.initialHistoryInClientContent, before any other input)",
                1007,
                INVALID_ARGUMENT,
            )
            return
        self.history += turns
        if self._started and not content.get("turnComplete"):
            self.context_updates += turns
        if content.get("turnComplete"):
            # A new generation replaces one in progress (documented for 3.1).
            self._started = True
            await self._interrupt()
            self._start_model("client_content")

    async def _on_tool_response(self, tool_response: dict[str, Any]) -> None:
        batch = self._calls
        wake: str | None = None  # how a background result brings the model back
        for response in tool_response.get("functionResponses", []):
            self.tool_responses.append(response)
            call_id = response.get("id")
            if call_id in self.cancelled_call_ids:
                continue  # cancelled: the server ignores late results
            if call_id in self._answered_ids:
                self.server.protocol_errors.append(f"a second result for tool call {call_id!r}")
                continue
            names = dict(self._background_calls) | (batch.names if batch is not None else {})
            if call_id not in names:
                self.server.protocol_errors.append(f"result for unknown tool call id {call_id!r}")
                continue
            if response.get("name") != names[call_id]:
                self.server.protocol_errors.append(
                    f"result for {call_id!r} named {response.get('name')!r}, not {names[call_id]!r}"
                )
            self.history.append({"role": "user", "parts": [{"functionResponse": response}]})
            if call_id in self._background_calls:
                if not response.get("willContinue"):
                    del self._background_calls[call_id]
                    self._answered_ids.add(call_id)
                scheduling = response.get("scheduling") or "WHEN_IDLE"
                if scheduling == "INTERRUPT" or (scheduling == "WHEN_IDLE" and wake is None):
                    wake = scheduling
                continue
            assert batch is not None
            self._answered_ids.add(call_id)
            batch.answered.add(call_id)
        if batch is not None and batch.answered == set(batch.names):
            batch.done.set()
        if wake == "INTERRUPT" and self._turn is not None and not self._turn.completed:
            self._turn.interrupted.set()
        if wake is not None:
            self._start_model("tool_response")

    async def _interrupt(self) -> None:
        """Cancel pending tool calls, then stop the model's turn; the model task
        sends `interrupted` and `turnComplete` once it notices."""
        batch = self._calls
        if batch is not None and not batch.cancelled:
            ids = [call_id for call_id in batch.names if call_id not in batch.answered]
            batch.cancelled = True
            self.cancelled_call_ids.update(ids)
            await self.send({"toolCallCancellation": {"ids": ids}})
            batch.done.set()
        if self._turn is not None and not self._turn.completed:
            self._turn.interrupted.set()

    # -- the model -------------------------------------------------------------

    def _start_model(self, trigger: TurnTrigger) -> None:
        """Answer after whatever the model is still doing (an interrupted turn ends first)."""
        self._model_task = self._spawn(self._model(self._model_task, trigger))

    async def _model(self, previous: asyncio.Task[None] | None, trigger: TurnTrigger) -> None:
        if previous is not None:
            await asyncio.wait({previous})
        await self._run_model(trigger)
        if self._model_task is asyncio.current_task():
            self._model_task = None
            await self._notify()

    async def _run_model(self, trigger: TurnTrigger) -> None:
        if (failure := self.server.take_failure()) is not None:
            await self.close(*FAILURE_CLOSES[failure])
            return
        if self.server.take_fault("garbage"):
            for raw in _GARBAGE:
                await self.server.inject(self, raw)
        turn = self._open_turn()
        while True:
            record = TurnRecord(trigger)
            self.turns.append(record)
            turn.records.append(record)
            scripted = self.server.next_response(self)
            await self._emit_speeches(turn, record, scripted.speech)
            if turn.interrupted.is_set() or not scripted.calls:
                break
            if self.server.take_malformed_call():
                turn.reason = "MALFORMED_FUNCTION_CALL"
                break
            batch = await self._emit_tool_calls(record, scripted.calls)
            if batch is None:
                # In the background: the model goes on talking, then its turn ends.
                await self._emit_speeches(turn, record, scripted.speech_after_calls)
                break
            if scripted.speech_after_calls:
                raise FakeServerBugError(f"{scripted!r}: a blocking call stops the model")
            if self.server.complete_turn_on_tool_call:
                await self._finish(turn)
            await batch.done.wait()
            self._calls = None
            if batch.cancelled:
                break
            trigger = "tool_response"
            if turn.completed:
                turn = self._open_turn()
        await self._finish(turn)

    def _open_turn(self) -> _Turn:
        self._turn = _Turn()
        return self._turn

    async def _pace(self, turn: _Turn) -> None:
        """Let the receive loop run between messages; wait `chunk_delay_s` unless interrupted."""
        if self.server.chunk_delay_s <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(turn.interrupted.wait(), self.server.chunk_delay_s)

    async def _emit_speeches(
        self, turn: _Turn, record: TurnRecord, parts: list[SpeechPart]
    ) -> None:
        for part in parts:
            if turn.interrupted.is_set():
                return
            await self._emit_speech(turn, record, part)

    async def _emit_speech(self, turn: _Turn, record: TurnRecord, part: SpeechPart) -> None:
        words = _words(part.transcript)
        spoken = ""
        if self._modality() == "TEXT":
            for word in words:
                if turn.interrupted.is_set():
                    break
                await self.send({"serverContent": {"modelTurn": {"parts": [{"text": word}]}}})
                spoken += word
                record.transcript += word
                await self._pace(turn)
        else:
            spoken = await self._emit_audio(turn, record, part, words)
        if spoken:
            self.history.append({"role": "model", "parts": [{"text": spoken}]})

    async def _emit_audio(
        self, turn: _Turn, record: TurnRecord, part: SpeechPart, words: list[str]
    ) -> str:
        """Audio chunks, each followed by the transcription words due by then."""
        pcm = part.pcm
        if pcm is None:
            characters = len(part.transcript)
            pcm = speech_like(
                max(0.2, characters * _SYNTH_MS_PER_CHAR / 1000), OUTPUT_RATE, seed=characters
            )
        chunk_bytes = max(2, self.server.audio_chunk_ms * _OUT_BYTES_PER_MS)
        chunks = [pcm[i : i + chunk_bytes] for i in range(0, len(pcm), chunk_bytes)]
        transcribe = "outputAudioTranscription" in self.setup
        spoken = ""
        sent_words = 0
        pacing = self.server.pacing
        await pacing.before_first_chunk(turn.interrupted)
        for number, chunk in enumerate(chunks, 1):
            if turn.interrupted.is_set():
                break
            rate = 0 if number == 1 and self.server.take_fault("corrupt_audio") else OUTPUT_RATE
            blob = {
                "mimeType": f"audio/pcm;rate={rate}",
                "data": base64.b64encode(chunk).decode("ascii"),
            }
            await self.send({"serverContent": {"modelTurn": {"parts": [{"inlineData": blob}]}}})
            if rate != OUTPUT_RATE:
                continue  # the client cannot play it; the rest of the reply follows
            record.pcm += chunk
            if number == 1 and self.server.take_fault("drop_mid_reply"):
                drop(self.ws)
            due = math.ceil(len(words) * number / len(chunks))
            for word in words[sent_words:due]:
                if transcribe:
                    await self.send({"serverContent": {"outputTranscription": {"text": word}}})
                spoken += word
                record.transcript += word
            sent_words = max(sent_words, due)
            await pacing.after_chunk(
                number, len(chunk) / _OUT_BYTES_PER_MS, self.server.chunk_delay_s, turn.interrupted
            )
        return spoken

    async def _emit_tool_calls(
        self, record: TurnRecord, calls: list[ToolCallPart]
    ) -> _CallBatch | None:
        """Send one `toolCall`: the batch the model then waits on, or None if every call
        runs in the background (the model does not wait)."""
        function_calls: list[dict[str, Any]] = [
            {"id": call.id or self.server.new_call_id(), "name": call.name, "args": call.args}
            for call in calls
        ]
        record.tool_calls = function_calls
        names = {call["id"]: call["name"] for call in function_calls}
        batch = None
        if all(self._in_background(call.name) for call in calls):
            self._background_calls.update(names)
        else:
            batch = self._calls = _CallBatch(names)
        self.history.append(
            {"role": "model", "parts": [{"functionCall": call} for call in function_calls]}
        )
        await self.send({"toolCall": {"functionCalls": function_calls}})
        if batch is not None and "sessionResumption" in self.setup:
            # Not resumable while the model waits for results.
            await self.send({"sessionResumptionUpdate": {}})
        self.server.end_burst(self.ws)
        if self.server.take_fault("drop_after_tool_call"):
            drop(self.ws)
        return batch

    def _in_background(self, name: str) -> bool:
        """Whether a call of this function runs while the model goes on (its declared
        `behavior`, else the model's default)."""
        rules = self.rules
        behavior = next(
            (
                declaration.get("behavior")
                for tool in self.setup.get("tools", [])
                for declaration in tool.get("functionDeclarations", [])
                if declaration.get("name") == name
            ),
            None,
        )
        if not rules.background_calls or behavior == "BLOCKING":
            return False
        return behavior == "NON_BLOCKING" or rules.background_calls_by_default

    async def _finish(self, turn: _Turn) -> None:
        """End the turn on the wire: `generationComplete` (unless interrupted),
        `turnComplete` with `usageMetadata`, then a fresh resumption handle."""
        if turn.completed:
            return
        if not turn.interrupted.is_set() and turn.reason is None:
            await self.send({"serverContent": {"generationComplete": True}})
            # The real server waits for playback; a barge-in now still interrupts.
            if (hold := self.server.turn_complete_hold) is not None:
                await _first_of(hold.wait(), turn.interrupted.wait())
            elif self.server.turn_complete_delay_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        turn.interrupted.wait(), self.server.turn_complete_delay_s
                    )
        interrupted = turn.interrupted.is_set()
        if interrupted:
            await self.send({"serverContent": {"interrupted": True}})
        turn.completed = True
        for record in turn.records:
            record.status = "completed"
        if interrupted:
            turn.records[-1].status = "interrupted"
        if self._turn is turn:
            self._turn = None
        content: dict[str, Any] = {"turnComplete": True}
        if turn.reason is not None:
            content["turnCompleteReason"] = turn.reason
        if self.rules.voice_activity:
            # Results still to come from background calls may make the model speak again.
            content["interactionStatus"] = "IN_PROGRESS" if self._background_calls else "IDLE"
        await self.send({"serverContent": content, "usageMetadata": self._usage(turn)})
        if "sessionResumption" in self.setup and self._calls is None:
            await self._issue_handle()

    def _usage(self, turn: _Turn) -> dict[str, Any]:
        """Plausible token counts: ~4 characters, 1/32 s of audio or one image frame
        (258 tokens, Gemini's count for an image up to 384 px) per token. The prompt is
        the whole context, every turn (billing is per turn, ai.google.dev Live API
        best practices)."""
        prompt_text = _text_tokens(json.dumps(self.setup.get("systemInstruction", ""))) + sum(
            _text_tokens(json.dumps(content)) for content in self.history
        )
        prompt_audio = sum(
            _audio_tokens(duration_ms(user.pcm, INPUT_RATE)) for user in self.user_turns
        )
        prompt_image = IMAGE_TOKENS * len(self.video_frames)
        out_audio = sum(_audio_tokens(record.audio_ms) for record in turn.records)
        out_text = sum(_text_tokens(record.transcript) for record in turn.records)
        prompt, response = prompt_text + prompt_audio + prompt_image, out_audio + out_text
        return {
            "promptTokenCount": prompt,
            "responseTokenCount": response,
            "totalTokenCount": prompt + response,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": prompt_text},
                {"modality": "AUDIO", "tokenCount": prompt_audio},
                *([{"modality": "IMAGE", "tokenCount": prompt_image}] if prompt_image else []),
            ],
            "responseTokensDetails": [
                {"modality": "AUDIO" if out_audio else "TEXT", "tokenCount": response}
            ],
        }

    async def _issue_handle(self) -> None:
        handle = self.server.new_handle()
        self.server.handles[handle] = ResumptionHandle(
            handle, self.session_id, copy.deepcopy(self.history)
        )
        await self.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})


class FakeGeminiLiveServer(LoopbackServer):
    """A real websocket server on 127.0.0.1 speaking the Live API protocol.

    Clients connect to `{url}{endpoint_path}` (v1alpha is served too) with the
    key in an `x-goog-api-key` header or a `key` query parameter.
    """

    API_KEY = "AIza-fake-gemini-key"

    description = "the fake Gemini Live server"

    def __init__(self, *, api_key: str = API_KEY, seed: int = 0) -> None:
        super().__init__()
        self.api_key = api_key
        self.models: set[str] = set(KNOWN_MODELS)
        """Model names (without `models/`) the server accepts."""
        self.connections: list[FakeGeminiConnection] = []
        """Connections whose `setup` was accepted, in order."""
        self.protocol_errors: list[str] = []
        """Client mistakes: schema-invalid or out-of-order messages, bad tool results."""
        self.handles: dict[str, ResumptionHandle] = {}
        """Every resumption handle issued, with the conversation it carries."""
        self.responses: deque[ScriptedTurn] = deque()
        self.responder: Callable[[FakeGeminiConnection], ScriptedTurn | None] | None = None
        """Consulted when `responses` is empty; None from it means "OK."."""
        self.input_transcripts: deque[str] = deque()
        """What the user "said", per spoken turn (default DEFAULT_INPUT_TRANSCRIPT)."""
        self.audio_chunk_ms = 40
        self.chunk_delay_s = 0.0
        """Pause between output messages, so tests can barge in mid-turn."""
        self.pacing = ModelPacing()
        """How fast replies are generated (default: at once)."""
        self.turn_complete_delay_s = 0.0
        self.turn_complete_hold: asyncio.Event | None = None
        """Set: `turnComplete` (and the turn's usage) waits for it, as for a playback."""
        """Wait between `generationComplete` and `turnComplete` (the real server
        waits for playback); a barge-in then is still an interruption."""
        self.complete_turn_on_tool_call = False
        """End the turn right after a `toolCall` (some models do) instead of
        keeping it open until the continuation is done."""
        self.initial_history_only = False
        """Accept `clientContent` only as initial history, as early
        gemini-3.1-flash-live-preview docs say; otherwise close with 1007."""
        self.connection_lifetime_s: float | None = None
        """Close every connection (1011) this long after setup, sending `goAway`
        `go_away_notice_s` before (or at once, if the lifetime is shorter)."""
        self.go_away_notice_s = 60.0
        self.unknown_handle_close: tuple[int, str] = (1007, INVALID_ARGUMENT)
        self.refuse_handles = False
        """Fault: every resumption handle is refused as unknown (`unknown_handle_close`)."""
        self._failures: deque[str] = deque()
        self._malformed_calls = 0
        self._reject_status: int | None = None
        self._reject_times: int | None = None
        self._rng = random.Random(seed)
        self._changed = asyncio.Condition()

    @property
    def url(self) -> str:
        """The base URL (`ws://127.0.0.1:PORT`); the client appends `endpoint_path`."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def endpoint_path(self) -> str:
        return ENDPOINT_PATH

    # -- scripting ----------------------------------------------------------

    def new_id(self, length: int) -> str:
        return "".join(self._rng.choices(string.ascii_lowercase + string.digits, k=length))

    def new_call_id(self) -> str:
        """An id shaped like the real ones (`function-call-` and 19 digits)."""
        return "function-call-" + "".join(self._rng.choices(string.digits, k=19))

    def new_handle(self) -> str:
        return "".join(self._rng.choices(_HANDLE_ALPHABET, k=48))

    def add_response(self, turn: ScriptedTurn) -> None:
        self.responses.append(turn)

    def add_input_transcript(self, text: str) -> None:
        self.input_transcripts.append(text)

    def next_input_transcript(self) -> str:
        return (
            self.input_transcripts.popleft() if self.input_transcripts else DEFAULT_INPUT_TRANSCRIPT
        )

    def next_response(self, conn: FakeGeminiConnection) -> ScriptedTurn:
        """The queue first, then the responder, then a short "OK."."""
        if self.responses:
            return self.responses.popleft()
        scripted = self.responder(conn) if self.responder else None
        return scripted or ScriptedTurn(SpeechPart("OK."))

    # -- faults ---------------------------------------------------------------

    def reject_connections_with_status(
        self, status: int | None, *, times: int | None = None
    ) -> None:
        """Fail the next `times` handshakes (None: all until reset) with this
        HTTP status; `status=None` accepts connections again."""
        self._reject_status, self._reject_times = status, times

    def fail_next_reply_with(self, kind: Literal["rate_limit", "quota", "server"]) -> None:
        """The next reply closes the connection instead, as the Live API reports errors."""
        self._failures.append(kind)

    def take_failure(self) -> str | None:
        return self._failures.popleft() if self._failures else None

    def malformed_next_function_call(self) -> None:
        """The next turn that would call tools ends instead with `turnCompleteReason:
        MALFORMED_FUNCTION_CALL` (no `toolCall`, no `generationComplete`)."""
        self._malformed_calls += 1

    def take_malformed_call(self) -> bool:
        taken = self._malformed_calls > 0
        self._malformed_calls -= taken
        return taken

    async def inject(
        self, conn: FakeGeminiConnection, raw: str | bytes, *, binary: bool = True
    ) -> None:
        """Send a raw frame, unvalidated; binary like the real server unless told not to."""
        if binary:
            await conn.ws.send(raw.encode() if isinstance(raw, str) else raw)
        else:
            await conn.ws.send(raw.decode() if isinstance(raw, bytes) else raw)

    async def close_with(self, conn: FakeGeminiConnection, code: int, reason: str) -> None:
        """Close a connection the way the server reports errors: a code and a reason."""
        await conn.close(code, reason)

    async def send_go_away(
        self,
        conn: FakeGeminiConnection,
        time_left_s: float,
        *,
        close_code: int = 1011,
        reason: str = DEADLINE_EXPIRED,
    ) -> None:
        """Send `goAway {timeLeft}` now and close the connection when the time is up."""
        await conn.go_away(time_left_s, close_code=close_code, reason=reason)

    async def wait_for_connection(self, n: int = 1, timeout: float = 5.0) -> FakeGeminiConnection:  # noqa: ASYNC109
        """The n-th connection (1-based) once its setup was accepted."""
        await wait_until(
            self._changed, lambda: len(self.connections) >= n, timeout, f"connection {n}"
        )
        return self.connections[n - 1]

    # -- handshake ------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Reject at the HTTP level only what the real service rejects there."""
        if self._reject_status is not None:
            status = HTTPStatus(self._reject_status)
            if self._reject_times is not None:
                self._reject_times -= 1
                if self._reject_times <= 0:
                    self._reject_status = None
            return self._error_response(connection, status, status.phrase)
        if _MODELS_PATH.fullmatch(urlsplit(request.path).path) is not None:
            return self._list_models(connection, request)
        if _PATH.fullmatch(urlsplit(request.path).path) is None:
            return self._error_response(
                connection, HTTPStatus.NOT_FOUND, "The requested URL was not found on this server."
            )
        return None

    def _list_models(self, connection: ServerConnection, request: Request) -> Response:
        """`models.list`: a page of the models, Live ones and others."""
        key = self._presented_key(request)
        if not key:
            return self._error_response(
                connection, HTTPStatus.FORBIDDEN, NO_KEY_REASON, "PERMISSION_DENIED"
            )
        if key != self.api_key:
            return self._error_response(
                connection, HTTPStatus.BAD_REQUEST, BAD_KEY_REASON, "INVALID_ARGUMENT"
            )
        if self.listing_failure is not None:
            status = HTTPStatus(self.listing_failure)
            return self._error_response(connection, status, status.phrase)
        query = parse_qs(urlsplit(request.path).query)
        size = min(int(query.get("pageSize", ["50"])[0]), _MAX_PAGE_SIZE)
        start = int(query.get("pageToken", ["0"])[0])
        entries = [
            *(
                _model_entry(name, ["bidiGenerateContent", "countTokens"])
                for name in sorted(self.models)
            ),
            *(_model_entry(name, ["generateContent", "countTokens"]) for name in OTHER_MODELS),
        ]
        body: dict[str, Any] = {"models": entries[start : start + size]}
        if start + size < len(entries):
            body["nextPageToken"] = str(start + size)
        return self._json_response(connection, HTTPStatus.OK, body)

    @staticmethod
    def _error_response(
        connection: ServerConnection,
        status: HTTPStatus,
        message: str,
        status_name: str | None = None,
    ) -> Response:
        """Google's REST error body; `status_name` is its canonical code (`INVALID_ARGUMENT`)."""
        body = {
            "error": {
                "code": status.value,
                "message": message,
                "status": status_name or status.name,
            }
        }
        return FakeGeminiLiveServer._json_response(connection, status, body)

    @staticmethod
    def _json_response(
        connection: ServerConnection, status: HTTPStatus, body: dict[str, Any]
    ) -> Response:
        response = connection.respond(status, json.dumps(body))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json; charset=UTF-8"
        return response

    @staticmethod
    def _presented_key(request: Request) -> str | None:
        key = request.headers.get("x-goog-api-key")
        if key is None:
            key = parse_qs(urlsplit(request.path).query).get("key", [None])[0]
        return key

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        match = _PATH.fullmatch(urlsplit(ws.request.path).path)
        assert match is not None
        try:
            # The key is checked once the first message (the setup) arrives.
            first = await ws.recv()
        except ConnectionClosed:
            return
        key = self._presented_key(ws.request)
        with contextlib.suppress(ConnectionClosed):
            if not key:
                await ws.close(1008, _reason(NO_KEY_REASON))
                return
            if key != self.api_key:
                await ws.close(1007, BAD_KEY_REASON)
                return
        conn = FakeGeminiConnection(self, ws, match["version"])
        await conn._guard(conn.start(first))
        if conn in self.connections:
            await conn.serve()

    async def _register(self, conn: FakeGeminiConnection) -> None:
        self.connections.append(conn)
        async with self._changed:
            self._changed.notify_all()
