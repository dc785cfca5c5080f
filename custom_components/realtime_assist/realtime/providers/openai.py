"""OpenAI Realtime (GA protocol) over a raw websocket.

Event and field names follow the `openai` SDK's GA types
(`openai.types.realtime`); the tests validate every event we send against
them. Azure OpenAI's GA endpoint (`/openai/v1/realtime?model=<deployment>`
with an `api-key` header) speaks the same protocol; the deprecated Azure
preview path speaks the beta protocol and is not supported.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
import itertools
import json
import logging
import re
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ..audio import duration_ms
from ..config import Endpoint, SessionConfig, TurnDetectionMode
from ..errors import AuthenticationError, ConnectError, ErrorKind
from ..events import (
    AudioChunk,
    AwaitingToolResults,
    InputTranscript,
    ProviderError,
    ResponseDone,
    ResponseStarted,
    ResponseStatus,
    SessionEvent,
    SessionReady,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    TranscriptDelta,
    Usage,
)
from .base import (
    ConnectionLost,
    HistoryItem,
    HistoryKind,
    HistoryRole,
    Provider,
    ProviderConnection,
    decode_message,
    protocol_error,
    retry_after,
    send_frame,
    write_now,
)
from .listing import get_json, http_url
from .playback import MAX_CUT_ITEMS, PlaybackLedger
from .websocket import configure_or_close, endpoint_url, open_socket, provider_fault

_LOGGER = logging.getLogger(__name__)

DEFAULT_URL = "wss://api.openai.com/v1"
SAMPLE_RATE = 24000
# The hot path's event, formatted by hand as UTF-8 (base64 never needs escaping).
_APPEND_EVENT = b'{"type":"input_audio_buffer.append","audio":"%s"}'
# GA sessions end after 60 minutes; recycle well before.
MAX_CONNECTION_S = 55 * 60
# Close codes after which a new socket may succeed (as the SDK retries).
RECOVERABLE_CLOSE_CODES = frozenset({1001, 1005, 1006, 1011, 1012, 1013, 1015})
# The key itself is bad: only a new key helps. These end the session.
AUTH_ERROR_CODES = frozenset({"invalid_api_key", "account_deactivated"})
# Billing: the response fails, the session stays (credits may be added meanwhile).
QUOTA_ERROR_CODES = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"}
)
# Races that the protocol reports as errors but that leave nothing to do (an empty
# commit: the server's VAD had already committed the user's audio).
BENIGN_ERROR_CODES = frozenset(
    {
        "conversation_already_has_active_response",
        "response_cancel_not_active",
        "input_audio_buffer_commit_empty",
    }
)
# Reasoning models (the gpt-realtime-2 family) take `reasoning`; the others refuse it.
_REASONING_MODEL = re.compile(r"gpt-realtime-2(\.\d+)?(-|$)")
# Transcription models that take `keywords`; the others take a free-text `prompt`...
KEYWORD_TRANSCRIPTION_MODELS = frozenset({"gpt-transcribe", "gpt-live-transcribe"})
# ...except these, which take neither.
UNPROMPTED_TRANSCRIPTION_MODELS = frozenset({"gpt-realtime-whisper", "gpt-4o-transcribe-diarize"})
# Realtime models that transcribe or translate rather than converse.
_NOT_CONVERSATION = ("transcribe", "whisper", "translat")
_STATUS = {
    "completed": ResponseStatus.COMPLETED,
    "incomplete": ResponseStatus.INCOMPLETE,
    "failed": ResponseStatus.FAILED,
}


def error_kind(code: str | None, error_type: str | None) -> ErrorKind:
    """What an OpenAI error code (or, without one, its type) means for the owner."""
    if code in AUTH_ERROR_CODES or error_type == "authentication_error":
        return ErrorKind.AUTH
    if code in QUOTA_ERROR_CODES or error_type == "insufficient_quota":
        return ErrorKind.QUOTA
    if (code or "").startswith("rate_limit") or error_type == "rate_limit_error":
        return ErrorKind.RATE_LIMIT
    if error_type == "server_error" or code in ("server_error", "internal_error"):
        return ErrorKind.SERVER
    return ErrorKind.REQUEST


def realtime_url(endpoint: Endpoint, model: str) -> tuple[str, dict[str, str]]:
    """The websocket URL and auth headers for OpenAI or Azure OpenAI.

    Raises InvalidEndpointError or UnencryptedEndpointError (see `endpoint_url`).
    """
    parts = endpoint_url(endpoint, DEFAULT_URL)
    path = parts.path.rstrip("/")
    azure = parts.hostname is not None and (
        parts.hostname.endswith((".openai.azure.com", ".cognitiveservices.azure.com"))
        or path.endswith("/openai/v1")
    )
    if azure and not path.endswith("/openai/v1"):
        path += "/openai/v1"
    url = urlunsplit(
        parts._replace(path=f"{path}/realtime", query=f"model={quote(model)}", fragment="")
    )
    if azure:
        return url, {"api-key": endpoint.api_key}
    return url, {"Authorization": f"Bearer {endpoint.api_key}"}


def is_reasoning_model(model: str) -> bool:
    return _REASONING_MODEL.match(model) is not None


def is_realtime_model(model: str) -> bool:
    """Whether a listed model holds realtime conversations (not chat, speech or transcription)."""
    return "realtime" in model and not any(word in model for word in _NOT_CONVERSATION)


def transcription_payload(config: SessionConfig) -> dict[str, Any] | None:
    """`audio.input.transcription`: the model, the user's language and the home's names."""
    model = config.input_transcription_model
    if not model:
        return None
    transcription: dict[str, Any] = {"model": model}
    if config.language:
        transcription["language"] = config.language.split("-")[0].lower()
    names = config.transcription_vocabulary
    if names and model in KEYWORD_TRANSCRIPTION_MODELS:
        transcription["keywords"] = list(names)
    elif names and model not in UNPROMPTED_TRANSCRIPTION_MODELS:
        transcription["prompt"] = f"Names that may be said: {', '.join(names)}."
    return transcription


def session_payload(config: SessionConfig, *, include_voice: bool) -> dict[str, Any]:
    """The GA `session` object for `session.update`."""
    turn = config.turn_detection
    turn_detection: dict[str, Any] | None
    if turn.mode is TurnDetectionMode.SERVER_VAD:
        turn_detection = {
            "type": "server_vad",
            "threshold": turn.threshold,
            "prefix_padding_ms": turn.prefix_padding_ms,
            "silence_duration_ms": turn.silence_ms,
            "create_response": turn.create_response,
            "interrupt_response": turn.interrupt_response,
        }
    elif turn.mode is TurnDetectionMode.SEMANTIC_VAD:
        turn_detection = {
            "type": "semantic_vad",
            "eagerness": str(turn.eagerness),
            "create_response": turn.create_response,
            "interrupt_response": turn.interrupt_response,
        }
    else:
        turn_detection = None
    pcm = {"type": "audio/pcm", "rate": SAMPLE_RATE}
    output: dict[str, Any] = {"format": pcm}
    if include_voice and config.custom_voice_id:
        output["voice"] = {"id": config.custom_voice_id}
    elif include_voice and config.voice:
        output["voice"] = config.voice
    noise = config.noise_reduction
    payload: dict[str, Any] = {
        "type": "realtime",
        "instructions": config.instructions,
        "output_modalities": [str(config.output_modality)],
        "audio": {
            "input": {
                "format": pcm,
                "noise_reduction": {"type": str(noise)} if noise else None,
                "transcription": transcription_payload(config),
                "turn_detection": turn_detection,
            },
            "output": output,
        },
        "tools": [
            {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            }
            for tool in config.tools
        ],
        "tool_choice": "auto",
    }
    if config.reasoning_effort and is_reasoning_model(config.model):
        payload["reasoning"] = {"effort": str(config.reasoning_effort)}
    return payload


class OpenAIRealtimeProvider(Provider):
    """Connects to OpenAI Realtime (or Azure OpenAI / compatible servers)."""

    name = "openai"

    async def connect(
        self, config: SessionConfig, resume: object | None = None
    ) -> OpenAIRealtimeConnection:
        """Open a GA session; nothing survives a socket on OpenAI, so `resume` is unused."""
        url, headers = realtime_url(self.endpoint, config.model)
        socket = await open_socket(url, headers, self.endpoint.ssl_context)
        connection = OpenAIRealtimeConnection(socket, config)
        await configure_or_close(socket, connection.configure())
        return connection

    async def list_models(self, http: aiohttp.ClientSession) -> list[str]:
        """`GET /models` at the endpoint (Azure: the resource's models), the realtime ones."""
        socket_url, headers = realtime_url(self.endpoint, "")
        path = urlsplit(socket_url).path.removesuffix("/realtime") + "/models"
        listed = await get_json(http, http_url(socket_url, path), headers)
        data = listed.get("data")
        if not isinstance(data, list):
            raise ConnectError("the model list has no `data`", kind=ErrorKind.PROTOCOL)
        return sorted(
            {
                str(model["id"])
                for model in data
                if isinstance(model, dict) and is_realtime_model(str(model.get("id", "")))
            }
        )


@dataclass(slots=True)
class _Response:
    """The response in flight: its transcript and the tool calls it made."""

    response_id: str
    transcript: list[str] = field(default_factory=list)
    tool_calls: list[str] = field(default_factory=list)


class OpenAIRealtimeConnection(ProviderConnection):
    """One configured GA realtime socket."""

    input_sample_rate = SAMPLE_RATE
    max_duration_s = MAX_CONNECTION_S
    carries_tool_calls = True

    def __init__(self, socket: ClientConnection, config: SessionConfig) -> None:
        self._socket = socket
        self._config = config
        self._event_ids = itertools.count(1)
        self._closing = False
        self._session_id: str | None = None
        self._response: _Response | None = None
        self._playback = PlaybackLedger()
        # Items an interruption cut, and where their audio ends now (a later, exact
        # report of what was heard may cut one shorter; truncate never lengthens).
        self._cut_at: dict[str, int] = {}
        self._has_audio = False
        # Tool calls of the last completed response still waiting for results.
        self._awaiting_results: set[str] = set()
        self._continue_after_results = False
        # A response was asked for while another was in flight.
        self._response_requested = False
        # Input of ours (text, an image, tool results) was added while a response
        # ran: that response did not read it, the next one will.
        self._unread_input = False
        # The event id of our last `response.create`, until a response starts.
        self._response_request: str | None = None

    # -- setup ---------------------------------------------------------------

    async def configure(self) -> None:
        """Wait for `session.created`, send our configuration, wait for `session.updated`."""
        created = await self._receive_json()
        if created.get("type") == "error":
            raise _configure_error(created)
        self._session_id = (created.get("session") or {}).get("id")
        await self._send(
            {
                "type": "session.update",
                "session": session_payload(self._config, include_voice=True),
            }
        )
        while True:
            event = await self._receive_json()
            if event.get("type") == "session.updated":
                return
            if event.get("type") == "error":
                raise _configure_error(event)

    async def _receive_json(self) -> dict[str, Any]:
        try:
            raw = await self._socket.recv()
        except ConnectionClosed as err:
            if err.rcvd is not None and err.rcvd.code == 1008:
                raise AuthenticationError(err.rcvd.reason) from err
            raise ConnectError(f"closed during setup: {err}") from err
        event = decode_message(raw)
        if isinstance(event, ProviderError):
            raise ConnectError(event.message, kind=ErrorKind.PROTOCOL)
        return event

    # -- output --------------------------------------------------------------

    async def events(self) -> AsyncIterator[SessionEvent]:
        yield SessionReady(self._session_id)
        try:
            async for raw in self._socket:
                for output in await self._translate(raw):
                    yield output
        except ConnectionClosed as err:
            if self._closing:
                return
            if (fault := provider_fault(err)) is not None:
                raise fault from err
            code = err.rcvd.code if err.rcvd else 1006
            reason = (err.rcvd.reason if err.rcvd else "") or f"closed with code {code}"
            raise ConnectionLost(reason, retryable=code in RECOVERABLE_CLOSE_CODES) from err
        if not self._closing:
            raise ConnectionLost("closed by server", retryable=True)

    async def _translate(self, raw: str | bytes) -> list[SessionEvent]:
        """One server event as session events; malformed ones become a protocol error."""
        event = decode_message(raw)
        if isinstance(event, ProviderError):
            return [event]
        kind = event.get("type")
        if not isinstance(kind, str):
            return [protocol_error("an event without a type", raw)]
        handler = self._handlers.get(kind)
        if handler is None:
            return []  # events we do not use, and newer ones: forward compatible
        try:
            return await handler(self, event)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            return [protocol_error(f"an invalid {kind} event ({err!r})", raw)]

    async def _on_speech_started(self, event: dict[str, Any]) -> list[SessionEvent]:
        # With server VAD the server has already cancelled the response; it is
        # ours to make the model forget what the user did not hear.
        if self._config.turn_detection.interrupt_response:
            await self._cut_unheard({})
        return [SpeechStarted(event.get("audio_start_ms"))]

    async def _on_speech_stopped(self, event: dict[str, Any]) -> list[SessionEvent]:
        return [SpeechStopped(event.get("audio_end_ms"))]

    async def _on_transcript_delta(self, event: dict[str, Any]) -> list[SessionEvent]:
        delta = event.get("delta") or ""
        return [InputTranscript(delta, final=False, item_id=event.get("item_id"))] if delta else []

    async def _on_transcript_completed(self, event: dict[str, Any]) -> list[SessionEvent]:
        return [InputTranscript(event["transcript"], final=True, item_id=event.get("item_id"))]

    async def _on_transcript_failed(self, event: dict[str, Any]) -> list[SessionEvent]:
        error = event.get("error") or {}
        return [
            ProviderError(
                str(error.get("code") or "transcription_failed"),
                str(error.get("message") or "Transcription of the user's audio failed"),
                kind=ErrorKind.TRANSCRIPTION,
            )
        ]

    async def _on_response_created(self, event: dict[str, Any]) -> list[SessionEvent]:
        response_id = event["response"]["id"]
        self._response = _Response(response_id)
        self._response_request = None
        self._unread_input = False  # it reads the whole conversation so far
        return [ResponseStarted(response_id)]

    async def _on_item_added(self, event: dict[str, Any]) -> list[SessionEvent]:
        if self._response is not None and _is_our_input(event["item"]):
            self._unread_input = True
        return []

    async def _on_audio_delta(self, event: dict[str, Any]) -> list[SessionEvent]:
        pcm = base64.b64decode(event["delta"], validate=True)
        item_id = event["item_id"]
        response_id = event["response_id"]
        if not isinstance(item_id, str) or not isinstance(response_id, str):
            raise TypeError("item_id and response_id must be strings")
        self._has_audio = True
        self._playback.add_audio(item_id, duration_ms(len(pcm), SAMPLE_RATE))
        return [AudioChunk(response_id, pcm, SAMPLE_RATE, item_id)]

    async def _on_text_delta(self, event: dict[str, Any]) -> list[SessionEvent]:
        delta = event["delta"]
        if self._response is not None:
            self._response.transcript.append(delta)
        return [TranscriptDelta(event["response_id"], delta)]

    async def _on_arguments_done(self, event: dict[str, Any]) -> list[SessionEvent]:
        try:
            arguments = json.loads(event.get("arguments") or "{}")
        except ValueError:
            _LOGGER.warning("Model sent invalid JSON arguments for %s", event.get("name"))
            arguments = {}
        if not isinstance(arguments, dict):
            arguments = {"value": arguments}
        call_id = event["call_id"]
        if self._response is not None:
            self._response.tool_calls.append(call_id)
        return [ToolCall(event["response_id"], call_id, event["name"], arguments)]

    async def _on_response_done(self, event: dict[str, Any]) -> list[SessionEvent]:
        response = event["response"]
        details = response.get("status_details") or {}
        status = _STATUS.get(response.get("status", ""), ResponseStatus.FAILED)
        if response.get("status") == "cancelled":
            interrupted = details.get("reason") == "turn_detected"
            status = ResponseStatus.INTERRUPTED if interrupted else ResponseStatus.CANCELLED
        error = details.get("error") or {}
        reason = details.get("reason") or error.get("code") or error.get("message")
        kind: ErrorKind | None = None
        if status is ResponseStatus.FAILED:
            # Billing failures arrive only this way, with no `error` event.
            kind = error_kind(error.get("code"), error.get("type"))
        current = self._response or _Response(response["id"])
        self._response = None
        outputs: list[SessionEvent] = []
        if status is ResponseStatus.COMPLETED and current.tool_calls:
            # OpenAI knows a response's calls once it is done; results go in after.
            outputs.append(AwaitingToolResults(tuple(current.tool_calls)))
        outputs.append(
            ResponseDone(
                response["id"],
                status,
                transcript="".join(current.transcript),
                reason=reason,
                usage=usage_of(response.get("usage")),
                error_kind=kind,
                retry_after_s=retry_after(str(error.get("message") or "")) if kind else None,
            )
        )
        if status is ResponseStatus.COMPLETED and current.tool_calls:
            self._continue_after_results = True
            self._awaiting_results.update(current.tool_calls)
        await self._maybe_continue()
        return outputs

    async def _on_error(self, event: dict[str, Any]) -> list[SessionEvent]:
        error = event.get("error") or {}
        code = str(error.get("code") or error.get("type") or "error")
        message = str(error.get("message") or code)
        if code in BENIGN_ERROR_CODES:
            _LOGGER.debug("OpenAI reported a benign race: %s", message)
            if code == "conversation_already_has_active_response" and self._unread_input:
                # Our request raced a response the server began by itself (its VAD):
                # that one answers what it read, so ask again only for what it did not.
                self._response_requested = True
            return []
        if code == "session_expired":
            raise ConnectionLost(message, retryable=True)
        kind = error_kind(error.get("code"), error.get("type"))
        refused = self._response_request is not None and error.get("event_id") == (
            self._response_request
        )
        if refused:
            self._response_request = None
        _LOGGER.warning("OpenAI Realtime error %s: %s", code, message)
        return [
            ProviderError(
                code,
                message,
                fatal=kind is ErrorKind.AUTH,
                kind=kind,
                refused_response=refused,
                retry_after_s=retry_after(message),
            )
        ]

    async def _on_rate_limits(self, event: dict[str, Any]) -> list[SessionEvent]:
        for limit in event.get("rate_limits") or []:
            if limit.get("remaining") == 0:
                _LOGGER.info(
                    "OpenAI %s rate limit reached; resets in %ss",
                    limit.get("name"),
                    limit.get("reset_seconds"),
                )
        return []

    _handlers: ClassVar[
        dict[
            str,
            Callable[[OpenAIRealtimeConnection, dict[str, Any]], Awaitable[list[SessionEvent]]],
        ]
    ] = {
        "input_audio_buffer.speech_started": _on_speech_started,
        "input_audio_buffer.speech_stopped": _on_speech_stopped,
        "conversation.item.input_audio_transcription.delta": _on_transcript_delta,
        "conversation.item.input_audio_transcription.completed": _on_transcript_completed,
        "conversation.item.input_audio_transcription.failed": _on_transcript_failed,
        "conversation.item.added": _on_item_added,
        "response.created": _on_response_created,
        "response.output_audio.delta": _on_audio_delta,
        "response.output_audio_transcript.delta": _on_text_delta,
        "response.output_text.delta": _on_text_delta,
        "response.function_call_arguments.done": _on_arguments_done,
        "response.done": _on_response_done,
        "error": _on_error,
        "rate_limits.updated": _on_rate_limits,
    }

    # -- input ---------------------------------------------------------------

    async def _send(self, event: dict[str, Any]) -> str:
        """Send a client event; its event id (to match the server's errors to it)."""
        event_id: str = event.setdefault("event_id", f"ra_{next(self._event_ids)}")
        await send_frame(self._socket, json.dumps(event, separators=(",", ":")))
        return event_id

    async def send_audio(self, pcm: bytes) -> None:
        await send_frame(self._socket, _APPEND_EVENT % base64.b64encode(pcm))

    def send_audio_now(self, pcm: bytes) -> bool:
        return write_now(self._socket, _APPEND_EVENT % base64.b64encode(pcm))

    async def commit_audio(self) -> None:
        await self._send({"type": "input_audio_buffer.commit"})
        if self._config.turn_detection.mode is TurnDetectionMode.OFF:
            await self.create_response()

    async def clear_audio(self) -> None:
        await self._send({"type": "input_audio_buffer.clear"})

    async def send_text(self, text: str, *, respond: bool) -> None:
        await self._create_item(
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        )
        if respond:
            await self.create_response()

    async def send_image(self, image: bytes, mime_type: str) -> None:
        data_url = f"data:{mime_type};base64,{base64.b64encode(image).decode('ascii')}"
        content: dict[str, Any] = {"type": "input_image", "image_url": data_url}
        if self._config.image_detail:
            content["detail"] = str(self._config.image_detail)
        await self._create_item({"type": "message", "role": "user", "content": [content]})

    async def send_tool_result(self, call_id: str, name: str, result: dict[str, Any]) -> None:
        await self._create_item(
            {"type": "function_call_output", "call_id": call_id, "output": json.dumps(result)}
        )
        self._awaiting_results.discard(call_id)
        await self._maybe_continue()

    async def _maybe_continue(self) -> None:
        """Ask for the next response once nothing is in flight and every tool answered."""
        if self._response is not None or self._awaiting_results:
            return
        if self._continue_after_results or self._response_requested:
            self._continue_after_results = False
            self._response_requested = False
            await self._request_response({"type": "response.create"})

    async def create_response(self, instructions: str | None = None) -> None:
        if self._response is not None:
            self._response_requested = True
            return
        event: dict[str, Any] = {"type": "response.create"}
        if instructions:
            event["response"] = {"instructions": instructions}
        await self._request_response(event)

    async def _request_response(self, event: dict[str, Any]) -> None:
        self._response_request = await self._send(event)

    async def interrupt(self, played: Mapping[str, int]) -> None:
        if self._response is not None:
            await self._send({"type": "response.cancel"})
        self._awaiting_results.clear()
        self._continue_after_results = False
        self._response_requested = False
        await self._cut_unheard(played)

    def report_played(self, item_id: str, played_ms: int) -> None:
        self._playback.report(item_id, played_ms)

    async def _cut_unheard(self, played: Mapping[str, int]) -> None:
        """Make the model forget the audio the listener did not hear.

        Each item that may still be playing is truncated to what was heard of it
        (deleted if nothing was: truncate rejects 0); fully played items are
        left alone. Nothing sent before plays on after an interruption. An item
        cut before on an estimate (the server's VAD heard the user: real time
        since its first audio, while the listener started late) is cut again to
        the listener's figure when that is shorter.
        """
        for item_id, end_ms in list(self._cut_at.items()):
            heard = played.get(item_id)
            if heard is not None and heard < end_ms:
                await self._cut(item_id, max(0, heard))
        for item in self._playback.take():
            heard = item.heard_ms(played.get(item.item_id))
            if heard >= item.received_ms:
                self._remember_cut(item.item_id, item.received_ms)
            else:
                await self._cut(item.item_id, heard)

    async def _cut(self, item_id: str, heard_ms: int) -> None:
        if heard_ms > 0:
            await self._send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": item_id,
                    "content_index": 0,
                    "audio_end_ms": heard_ms,
                }
            )
            self._remember_cut(item_id, heard_ms)
        else:
            self._cut_at.pop(item_id, None)
            await self._send({"type": "conversation.item.delete", "item_id": item_id})

    def _remember_cut(self, item_id: str, end_ms: int) -> None:
        self._cut_at.pop(item_id, None)
        self._cut_at[item_id] = end_ms
        while len(self._cut_at) > MAX_CUT_ITEMS:
            del self._cut_at[next(iter(self._cut_at))]

    async def _create_item(self, item: dict[str, Any]) -> None:
        await self._send({"type": "conversation.item.create", "item": item})

    async def restore(self, history: Sequence[HistoryItem]) -> None:
        """Replay the turns and tool rounds; calls of the last round still unanswered
        are awaited again, so their results bring the model's continuation."""
        calls: set[str] = set()
        waiting: set[str] = set()
        item: dict[str, Any]
        for entry in history:
            if entry.kind is HistoryKind.FUNCTION_CALL:
                calls.add(str(entry.call_id))
                waiting.add(str(entry.call_id))
                item = {
                    "type": "function_call",
                    "call_id": entry.call_id,
                    "name": entry.name,
                    "arguments": entry.text,
                }
            elif entry.kind is HistoryKind.FUNCTION_OUTPUT:
                if entry.call_id not in calls:
                    continue  # its call fell out of the remembered history
                waiting.discard(entry.call_id)
                item = {
                    "type": "function_call_output",
                    "call_id": entry.call_id,
                    "output": entry.text,
                }
            else:
                if entry.role is HistoryRole.USER:
                    waiting.clear()  # the user moved on: an unanswered round is over
                    content = {"type": "input_text", "text": entry.text}
                else:
                    content = {"type": "output_text", "text": entry.text}
                item = {"type": "message", "role": str(entry.role), "content": [content]}
            await self._create_item(item)
        self._awaiting_results = waiting
        self._continue_after_results = bool(waiting)

    async def update(self, config: SessionConfig) -> bool:
        # The voice is locked once the model has spoken (`cannot_update_voice`).
        self._config = config
        await self._send(
            {
                "type": "session.update",
                "session": session_payload(config, include_voice=not self._has_audio),
            }
        )
        return True

    async def close(self) -> None:
        self._closing = True
        await self._socket.close()


def _is_our_input(item: dict[str, Any]) -> bool:
    """An item we add (typed text, an image, a tool's result), not the user's audio that
    the server commits, nor a response's own output."""
    if item.get("type") == "function_call_output":
        return True
    return (
        item.get("type") == "message"
        and item.get("role") != "assistant"
        and not any(part.get("type") == "input_audio" for part in item.get("content") or [])
    )


def _configure_error(event: dict[str, Any]) -> Exception:
    error = event.get("error") or {}
    message = str(error.get("message") or error.get("code") or "session rejected")
    kind = error_kind(error.get("code"), error.get("type"))
    if kind is ErrorKind.AUTH:
        return AuthenticationError(message)
    return ConnectError(message, kind=kind)


def usage_of(usage: dict[str, Any] | None) -> Usage | None:
    """`response.usage` by modality; tokens the details leave out count as text."""
    if not usage:
        return None
    given = usage.get("input_token_details") or {}
    cached = given.get("cached_tokens_details") or {}
    said = usage.get("output_token_details") or {}
    audio_in, image_in = _count(given, "audio_tokens"), _count(given, "image_tokens")
    text_in = max(_count(given, "text_tokens"), _count(usage, "input_tokens") - audio_in - image_in)
    cached_audio = min(_count(cached, "audio_tokens"), audio_in)
    cached_image = min(_count(cached, "image_tokens"), image_in)
    cached_text = max(
        _count(cached, "text_tokens"),
        _count(given, "cached_tokens") - cached_audio - cached_image,
    )
    audio_out = _count(said, "audio_tokens")
    return Usage(
        input_text=text_in,
        input_audio=audio_in,
        input_image=image_in,
        cached_text=min(cached_text, text_in),
        cached_audio=cached_audio,
        cached_image=cached_image,
        output_text=max(_count(said, "text_tokens"), _count(usage, "output_tokens") - audio_out),
        output_audio=audio_out,
    )


def _count(counts: dict[str, Any], key: str) -> int:
    return int(counts.get(key) or 0)
