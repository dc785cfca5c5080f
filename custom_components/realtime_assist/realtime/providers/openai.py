"""OpenAI Realtime (GA protocol) over a raw websocket.

Event and field names follow the `openai` SDK's GA types
(`openai.types.realtime`); the tests validate every event we send against
them. Azure OpenAI's GA endpoint (`/openai/v1/realtime?model=<deployment>`
with an `api-key` header) speaks the same protocol; the deprecated Azure
preview path speaks the beta protocol and is not supported.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
import itertools
import json
import logging
import time
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ..audio import duration_ms
from ..config import Endpoint, SessionConfig, TurnDetectionMode
from ..errors import AuthenticationError, ConnectError
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
from .base import ConnectionLost, HistoryItem, HistoryRole, Provider, ProviderConnection
from .websocket import configure_or_close, open_socket

_LOGGER = logging.getLogger(__name__)

DEFAULT_URL = "wss://api.openai.com/v1"
SAMPLE_RATE = 24000
# GA sessions end after 60 minutes; recycle well before.
MAX_CONNECTION_S = 55 * 60
# Close codes after which a new socket may succeed (as the SDK retries).
RECOVERABLE_CLOSE_CODES = frozenset({1001, 1005, 1006, 1011, 1012, 1013, 1015})
# The key itself is bad: only a new key helps.
AUTH_ERROR_CODES = frozenset({"invalid_api_key", "account_deactivated"})
# Errors that end the session: retrying cannot help.
FATAL_ERROR_CODES = frozenset(
    {"invalid_api_key", "insufficient_quota", "account_deactivated", "billing_hard_limit_reached"}
)
# Races that the protocol reports as errors but that leave nothing to do.
BENIGN_ERROR_CODES = frozenset(
    {"conversation_already_has_active_response", "response_cancel_not_active"}
)
_STATUS = {
    "completed": ResponseStatus.COMPLETED,
    "incomplete": ResponseStatus.INCOMPLETE,
    "failed": ResponseStatus.FAILED,
}


def realtime_url(endpoint: Endpoint, model: str) -> tuple[str, dict[str, str]]:
    """The websocket URL and auth headers for OpenAI or Azure OpenAI."""
    parts = urlsplit(endpoint.url or DEFAULT_URL)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    azure = parts.hostname is not None and (
        parts.hostname.endswith((".openai.azure.com", ".cognitiveservices.azure.com"))
        or path.endswith("/openai/v1")
    )
    if azure and not path.endswith("/openai/v1"):
        path += "/openai/v1"
    url = urlunsplit((scheme, parts.netloc, f"{path}/realtime", f"model={quote(model)}", ""))
    if azure:
        return url, {"api-key": endpoint.api_key}
    return url, {"Authorization": f"Bearer {endpoint.api_key}"}


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
    transcription: dict[str, Any] | None = None
    if config.input_transcription_model:
        transcription = {"model": config.input_transcription_model}
        if config.language:
            transcription["language"] = config.language.split("-")[0]
    pcm = {"type": "audio/pcm", "rate": SAMPLE_RATE}
    output: dict[str, Any] = {"format": pcm}
    if include_voice and config.voice:
        output["voice"] = config.voice
    return {
        "type": "realtime",
        "instructions": config.instructions,
        "output_modalities": [str(config.output_modality)],
        "audio": {
            "input": {
                "format": pcm,
                "transcription": transcription,
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


class OpenAIRealtimeProvider(Provider):
    """Connects to OpenAI Realtime (or Azure OpenAI / compatible servers)."""

    name = "openai"

    async def connect(
        self, config: SessionConfig, resume: object | None = None
    ) -> OpenAIRealtimeConnection:
        """Open a GA session; nothing survives a socket on OpenAI, so `resume` is unused."""
        url, headers = realtime_url(self.endpoint, config.model)
        socket = await open_socket(url, headers)
        connection = OpenAIRealtimeConnection(socket, config)
        await configure_or_close(socket, connection.configure())
        return connection


@dataclass(slots=True)
class _AudioLedger:
    """What the model has sent of one assistant audio item, to truncate it honestly."""

    item_id: str
    received_bytes: int = 0
    first_delta_at: float | None = None
    played_ms: int | None = None

    def heard_ms(self) -> int:
        """What the user heard: reported playback, else wall clock, never beyond what arrived."""
        received = int(duration_ms(self.received_bytes, SAMPLE_RATE))
        if self.played_ms is not None:
            played = self.played_ms
        elif self.first_delta_at is not None:
            played = int((time.monotonic() - self.first_delta_at) * 1000)
        else:
            played = 0
        return max(0, min(played, received))


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

    def __init__(self, socket: ClientConnection, config: SessionConfig) -> None:
        self._socket = socket
        self._config = config
        self._event_ids = itertools.count(1)
        self._closing = False
        self._session_id: str | None = None
        self._response: _Response | None = None
        self._audio: _AudioLedger | None = None
        self._has_audio = False
        # Tool calls of the last completed response still waiting for results.
        self._awaiting_results: set[str] = set()
        self._continue_after_results = False
        # A response was asked for while another was in flight.
        self._response_requested = False

    # -- setup ---------------------------------------------------------------

    async def configure(self) -> None:
        """Wait for `session.created`, send our configuration, wait for `session.updated`."""
        created = await self._receive_json()
        if created.get("type") == "error":
            raise _configure_error(created)
        self._session_id = created.get("session", {}).get("id")
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
        event: dict[str, Any] = json.loads(raw)
        return event

    # -- output --------------------------------------------------------------

    async def events(self) -> AsyncIterator[SessionEvent]:
        yield SessionReady(self._session_id)
        try:
            async for raw in self._socket:
                try:
                    event = json.loads(raw)
                    kind = event["type"]
                except ValueError, KeyError, TypeError:
                    _LOGGER.warning("Ignoring malformed event from OpenAI: %.200r", raw)
                    continue
                handler = self._handlers.get(kind)
                if handler is None:
                    continue
                try:
                    outputs = await handler(self, event)
                except (KeyError, TypeError, ValueError) as err:
                    _LOGGER.warning("Ignoring malformed %s event (%s): %.200r", kind, err, raw)
                    continue
                for output in outputs:
                    yield output
        except ConnectionClosed as err:
            if self._closing:
                return
            code = err.rcvd.code if err.rcvd else 1006
            reason = (err.rcvd.reason if err.rcvd else "") or f"closed with code {code}"
            raise ConnectionLost(reason, retryable=code in RECOVERABLE_CLOSE_CODES) from err
        if not self._closing:
            raise ConnectionLost("closed by server", retryable=True)

    async def _on_speech_started(self, event: dict[str, Any]) -> list[SessionEvent]:
        # With server VAD the server has already cancelled the response; it is
        # ours to make the model forget what the user did not hear.
        if self._audio is not None and self._config.turn_detection.interrupt_response:
            await self._truncate(self._audio)
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
            )
        ]

    async def _on_response_created(self, event: dict[str, Any]) -> list[SessionEvent]:
        response_id = event["response"]["id"]
        self._response = _Response(response_id)
        self._audio = None
        return [ResponseStarted(response_id)]

    async def _on_audio_delta(self, event: dict[str, Any]) -> list[SessionEvent]:
        pcm = base64.b64decode(event["delta"])
        item_id = event["item_id"]
        self._has_audio = True
        # A response may hold several audio items: the newest is what plays.
        if self._audio is None or self._audio.item_id != item_id:
            self._audio = _AudioLedger(item_id, first_delta_at=time.monotonic())
        self._audio.received_bytes += len(pcm)
        return [AudioChunk(event["response_id"], pcm, SAMPLE_RATE, item_id)]

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
                usage=_usage(response.get("usage")),
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
            if code == "conversation_already_has_active_response":
                self._response_requested = True
            return []
        if code == "session_expired":
            raise ConnectionLost(message, retryable=True)
        _LOGGER.warning("OpenAI Realtime error %s: %s", code, message)
        return [ProviderError(code, message, fatal=code in FATAL_ERROR_CODES)]

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

    async def _send(self, event: dict[str, Any]) -> None:
        event.setdefault("event_id", f"ra_{next(self._event_ids)}")
        await self._socket.send(json.dumps(event, separators=(",", ":")))

    async def send_audio(self, pcm: bytes) -> None:
        # The hot path: format the event by hand (base64 never needs escaping).
        audio = base64.b64encode(pcm).decode("ascii")
        await self._socket.send(f'{{"type":"input_audio_buffer.append","audio":"{audio}"}}')

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
        await self._create_item(
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_image", "image_url": data_url}],
            }
        )

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
            await self._send({"type": "response.create"})

    async def create_response(self, instructions: str | None = None) -> None:
        if self._response is not None:
            self._response_requested = True
            return
        event: dict[str, Any] = {"type": "response.create"}
        if instructions:
            event["response"] = {"instructions": instructions}
        await self._send(event)

    async def interrupt(self, played_ms: int | None) -> None:
        if self._response is not None:
            await self._send({"type": "response.cancel"})
        self._awaiting_results.clear()
        self._continue_after_results = False
        self._response_requested = False
        if self._audio is not None:
            if played_ms is not None:
                self._audio.played_ms = played_ms
            await self._truncate(self._audio)

    def report_played(self, played_ms: int) -> None:
        if self._audio is not None:
            self._audio.played_ms = played_ms

    async def _truncate(self, ledger: _AudioLedger) -> None:
        """Cut the item to what was heard; delete it if nothing was (truncate rejects 0)."""
        self._audio = None
        heard = ledger.heard_ms()
        if heard > 0:
            await self._send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": ledger.item_id,
                    "content_index": 0,
                    "audio_end_ms": heard,
                }
            )
        else:
            await self._send({"type": "conversation.item.delete", "item_id": ledger.item_id})

    async def _create_item(self, item: dict[str, Any]) -> None:
        await self._send({"type": "conversation.item.create", "item": item})

    async def restore(self, history: Sequence[HistoryItem]) -> None:
        for entry in history:
            if entry.role is HistoryRole.USER:
                content = {"type": "input_text", "text": entry.text}
            else:
                content = {"type": "output_text", "text": entry.text}
            await self._create_item(
                {"type": "message", "role": str(entry.role), "content": [content]}
            )

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


def _configure_error(event: dict[str, Any]) -> Exception:
    error = event.get("error") or {}
    message = str(error.get("message") or error.get("code") or "session rejected")
    if error.get("code") in AUTH_ERROR_CODES:
        return AuthenticationError(message)
    return ConnectError(message)


def _usage(usage: dict[str, Any] | None) -> Usage | None:
    if not usage:
        return None
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        total_tokens=int(usage.get("total_tokens") or 0),
        details={
            key: usage[key]
            for key in ("input_token_details", "output_token_details")
            if usage.get(key)
        },
    )
