"""Google Gemini Live (`BidiGenerateContent`) over a raw websocket.

Field names follow `google-genai`'s types and its wire converters (camelCase
on the wire); the tests validate every message we send against
`LiveClientMessage`. How Gemini maps onto the session's neutral model:

- Models differ (`model_traits`): 3.8 runs function calls in the background by
  default and takes role-tagged `clientContent` all session; 3.1 runs them
  blocking only and takes `clientContent` only as initial history (text goes in
  as `realtimeInput.text`). The setup carries only what the model accepts: no
  thinking configuration, affective dialog or proactivity.
- The user's speech: where the server sends `voiceActivity` (3.8) its start is
  SpeechStarted at once (a barge-in needs no wait for the model), and its end
  the offset of SpeechStopped. SpeechStopped itself comes when the model takes
  the turn, its first output (or a finished transcript), transcribed or not
  (Gemini may send no transcription at all): until then the session keeps the
  turn's audio to replay after a drop, which a resumption handle would not
  bring back (it holds no turn the model has not answered).
- `generationComplete` ends a response; `turnComplete` comes later (the server
  waits for real-time playback) with the model turn's `usageMetadata`, which
  goes out as UsageReported for the response it belongs to (that response's
  ResponseDone said `usage_follows`; usage packed in one message with a whole
  short turn is that turn's). Each report covers one model turn, not
  the session so far (a three-turn probe logging every `usageMetadata`,
  pydantic/pydantic-ai#7269): reports add up. Its `turnCompleteReason` says
  when a turn did not end normally: a malformed function call fails the
  response (kind protocol), a refused one ends it incomplete.
- Tool calls: a blocking call pauses the model until the results are in, so
  the response that asked ends there (AwaitingToolResults, ResponseDone) and
  the model's continuation is a new response, as on OpenAI. A background call
  (a tool that is not `blocking`, on models with asynchronous calls) leaves the
  model talking: AwaitingToolResults comes at the call, the response goes on to
  its own end, the result goes back with scheduling `WHEN_IDLE`, and the
  model's reaction to it is the new response that ends the turn.
- No truncation: after an interruption (the server's `interrupted`, or
  `interrupt(played)`) the model is told in a role-tagged note what the user
  heard of each reply that was cut, so its memory matches what was heard.
- `goAway` and the ~10 minute connection lifetime: the session reconnects with
  the latest session resumption handle, which carries the conversation up to
  the `turnComplete` before it (so the last exchange only after its playback).
  After `goAway` the connection ends at rest (the newest handle holds all that
  was said; no model turn, unanswered typed turn or open tool call), else
  `GO_AWAY_MARGIN_S` before its time runs out. The turns said after the handle
  are replayed as text into the resumed connection (a typed turn the old socket
  may have lost is asked again); a model that takes no mid-session
  `clientContent` (3.1) starts afresh instead. A refused handle (expired,
  unknown) falls back to a fresh setup, into which the session replays the
  conversation.
- Errors arrive only as close frames (code and reason, cut to 123 bytes); the
  reason's wording says whether it was the key, billing, a rate limit or the
  server (best effort: Google words these like its REST errors).
- The setup is sent once per connection: a changed configuration needs a new
  connection, except for the instructions (Home Assistant's prompt carries the
  time, so it changes every turn) and the transcription's language and
  vocabulary, which wait for the next one.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
import itertools
import json
import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ..audio import duration_ms
from ..config import Endpoint, OutputModality, SessionConfig, TurnDetectionMode
from ..errors import AuthenticationError, ConnectError, ErrorKind
from ..events import (
    AudioChunk,
    AwaitingToolResults,
    InputTranscript,
    Interrupted,
    ProviderError,
    ResponseDone,
    ResponseStarted,
    ResponseStatus,
    SessionEvent,
    SessionReady,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    ToolCallsCancelled,
    TranscriptDelta,
    Usage,
    UsageReported,
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
from .playback import PlaybackLedger
from .websocket import configure_or_close, endpoint_url, open_socket, provider_fault

_LOGGER = logging.getLogger(__name__)

DEFAULT_URL = "wss://generativelanguage.googleapis.com"
ENDPOINT_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
INPUT_RATE = 16000
# The hot path's message, formatted by hand as UTF-8 (base64 never needs escaping).
_AUDIO_MESSAGE = b'{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=%d","data":"%%s"}}}' % (
    INPUT_RATE
)
# Connections last about 10 minutes; recycle (with the resumption handle) before.
MAX_CONNECTION_S = 9 * 60
# After `goAway`, leave this long before its time runs out if the conversation has not
# come to rest by then (the server closes at the end of `timeLeft`).
GO_AWAY_MARGIN_S = 2.0
# Close codes that no new connection can fix: a rejected payload or model.
FATAL_CLOSE_CODES = frozenset({1007, 1008})
# Output audio rates we accept; anything else is a broken message.
MIN_OUTPUT_RATE = 8000
MAX_OUTPUT_RATE = 96000
# What changes only with a new setup. The rest waits for the next connection: the
# instructions (they carry the time), the transcription's language and vocabulary
# (turns built by speech-to-text and by the conversation stage may name the language
# differently, "en" and "en-GB": not worth a new connection).
RECONNECT_FIELDS = (
    "model",
    "voice",
    "tools",
    "turn_detection",
    "output_modality",
    "input_transcription_model",
)
# Models listed for the key are those that speak the Live API.
LIVE_METHOD = "bidiGenerateContent"
MAX_LIST_PAGES = 10
# How `turnComplete` ends a turn, beyond the normal end (`turnCompleteReason`).
_NORMAL_TURN_ENDS = frozenset({"TURN_COMPLETE_REASON_UNSPECIFIED", "NEED_MORE_INPUT"})
_FAILED_TURN_ENDS = frozenset({"MALFORMED_FUNCTION_CALL"})
_RATE = re.compile(r"rate=(\d+)")
# Close reasons, as Google words its errors (RESOURCE_EXHAUSTED comes in both flavours).
_AUTH_REASON = re.compile(r"api key|permission|unregistered callers", re.IGNORECASE)
_QUOTA_REASON = re.compile(r"quota|billing", re.IGNORECASE)
_RATE_LIMIT_REASON = re.compile(
    r"resource has been exhausted|resource_exhausted|rate limit|too many requests", re.IGNORECASE
)
# Gemini names no responses; ours are numbered across connections, so a session that
# reconnects never sees one id twice (interrupted responses and turns are keyed by it).
_RESPONSE_IDS = itertools.count(1)
# `MediaModality` values in usage details, as the modalities tokens are billed by.
_BILLED_AS = {
    "TEXT": "text",
    "DOCUMENT": "text",
    "AUDIO": "audio",
    "IMAGE": "image",
    "VIDEO": "image",
}


@dataclass(frozen=True, slots=True)
class _Resumption:
    """What a new connection resumes from: the newest handle, the turns said after it
    (which it does not hold), and whether the last of them, typed, awaits its answer."""

    handle: str
    since: tuple[HistoryItem, ...]
    answer: bool


@dataclass(frozen=True, slots=True)
class ModelTraits:
    """What one Live model accepts; unknown (newer) models are taken to be like 3.8."""

    # Function calls may run in the background (`behavior: NON_BLOCKING`).
    background_tools: bool = True
    # Role-tagged `clientContent` is accepted all session, not only as initial history.
    client_content: bool = True


def model_traits(model: str) -> ModelTraits:
    """The traits of a model (`models/` prefix or not), from Google's model pages."""
    if model.removeprefix("models/").startswith("gemini-3.1-"):
        # Synchronous tools only; clientContent only as initial history (1007 after).
        return ModelTraits(background_tools=False, client_content=False)
    return ModelTraits()


def heard_note(heard: str) -> str:
    """What the model is told about a reply the user cut off, of which they heard `heard`."""
    if heard:
        return (
            f'[The user cut you off. Of your last reply they heard only: "{heard}". '
            "Nothing after that reached them.]"
        )
    return "[The user cut you off before hearing any of your last reply.]"


def live_url(endpoint: Endpoint) -> str:
    """The websocket URL of the Live API (or of a compatible server at `endpoint.url`).

    Raises InvalidEndpointError or UnencryptedEndpointError (see `endpoint_url`).
    """
    parts = endpoint_url(endpoint, DEFAULT_URL)
    path = parts.path.rstrip("/") + ENDPOINT_PATH
    return urlunsplit(parts._replace(path=path, query="", fragment=""))


def close_kind(code: int, reason: str) -> ErrorKind:
    """What a close frame means for the owner, from its code and the reason's wording."""
    if _AUTH_REASON.search(reason):
        return ErrorKind.AUTH
    if _QUOTA_REASON.search(reason) and "exhausted" not in reason.lower():
        return ErrorKind.QUOTA
    if _RATE_LIMIT_REASON.search(reason):
        return ErrorKind.RATE_LIMIT
    if code in FATAL_CLOSE_CODES:
        return ErrorKind.REQUEST
    if code == 1011:
        return ErrorKind.SERVER
    return ErrorKind.CONNECTION


def needs_new_connection(old: SessionConfig, new: SessionConfig) -> bool:
    """Whether `new` changes anything that only a new setup can change."""
    return any(getattr(old, name) != getattr(new, name) for name in RECONNECT_FIELDS)


def setup_message(config: SessionConfig, resume_handle: str | None) -> dict[str, Any]:
    """The `setup` message: everything Gemini is told about the session, once.

    Only fields the model accepts: no thinking configuration (3.8 refuses it),
    no affective dialog (removed), no proactivity (3.8 refuses turning it off).
    """
    model = config.model if config.model.startswith("models/") else f"models/{config.model}"
    traits = model_traits(model)
    generation: dict[str, Any] = {"responseModalities": [config.output_modality.value.upper()]}
    if config.voice and config.output_modality is OutputModality.AUDIO:
        generation["speechConfig"] = {
            "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": config.voice}}
        }
    turn = config.turn_detection
    detection: dict[str, Any] = {"disabled": turn.mode is TurnDetectionMode.OFF}
    if turn.mode is not TurnDetectionMode.OFF:
        # Not `prefixPaddingMs`: on Gemini it is how long speech must last before it
        # counts, which would make barge-in sluggish; the server's default is better.
        detection["silenceDurationMs"] = turn.silence_ms
    transcription: dict[str, Any] = {}
    if config.language:
        transcription["languageCodes"] = [config.language]
    if config.transcription_vocabulary:
        transcription["customVocabulary"] = list(config.transcription_vocabulary)
    setup: dict[str, Any] = {
        "model": model,
        "generationConfig": generation,
        "realtimeInputConfig": {"automaticActivityDetection": detection},
        "inputAudioTranscription": transcription,
        "sessionResumption": {"handle": resume_handle} if resume_handle else {},
        # Long audio sessions outgrow the context window: slide it.
        "contextWindowCompression": {"slidingWindow": {}},
    }
    if not traits.client_content and resume_handle is None:
        # The conversation of an earlier connection can only be seeded as initial history.
        setup["historyConfig"] = {"initialHistoryInClientContent": True}
    if config.output_modality is OutputModality.AUDIO:
        setup["outputAudioTranscription"] = {}
    if config.instructions:
        setup["systemInstruction"] = {"parts": [{"text": config.instructions}]}
    if config.tools:
        declarations: list[dict[str, Any]] = []
        for tool in config.tools:
            declaration = {
                "name": tool.name,
                "description": tool.description,
                "parametersJsonSchema": tool.parameters,
            }
            if traits.background_tools:
                # Explicit: the default differs between models (3.8: NON_BLOCKING).
                declaration["behavior"] = "BLOCKING" if tool.blocking else "NON_BLOCKING"
            declarations.append(declaration)
        setup["tools"] = [{"functionDeclarations": declarations}]
    return {"setup": setup}


class GeminiLiveProvider(Provider):
    """Connects to the Gemini Live API (or a compatible server)."""

    name = "gemini"

    async def connect(
        self, config: SessionConfig, resume: object | None = None
    ) -> GeminiLiveConnection:
        """Open and set up a connection, resuming with the handle in `resume` if any.

        A refused handle (expired, unknown) falls back to a fresh setup: the
        session then replays the conversation into it.
        """
        resumption = resume if isinstance(resume, _Resumption) else None
        try:
            return await self._connect(config, resumption)
        except _SetupRefused as err:
            if resumption is None:
                raise
            _LOGGER.info("Gemini refused the resumption handle (%s); starting afresh", err)
        return await self._connect(config, None)

    async def _connect(
        self, config: SessionConfig, resumption: _Resumption | None
    ) -> GeminiLiveConnection:
        socket = await open_socket(
            live_url(self.endpoint),
            {"x-goog-api-key": self.endpoint.api_key},
            self.endpoint.ssl_context,
        )
        connection = GeminiLiveConnection(socket, config, resumption)
        await configure_or_close(socket, connection.configure())
        return connection

    async def list_models(self, http: aiohttp.ClientSession) -> list[str]:
        """`models.list` at the endpoint, the models that speak the Live API."""
        socket_url = live_url(self.endpoint)
        path = urlsplit(socket_url).path.removesuffix(ENDPOINT_PATH) + "/v1beta/models"
        headers = {"x-goog-api-key": self.endpoint.api_key}
        models: set[str] = set()
        params = {"pageSize": "1000"}
        for _ in range(MAX_LIST_PAGES):
            try:
                page = await get_json(http, http_url(socket_url, path), headers, params)
            except ConnectError as err:
                # Google answers a bad key with 400 INVALID_ARGUMENT.
                if _AUTH_REASON.search(str(err)):
                    raise AuthenticationError(str(err)) from err
                raise
            for model in page.get("models") or []:
                if isinstance(model, dict) and LIVE_METHOD in (
                    model.get("supportedGenerationMethods") or []
                ):
                    models.add(str(model.get("name", "")).removeprefix("models/"))
            if not (token := page.get("nextPageToken")):
                break
            params["pageToken"] = str(token)
        return sorted(models - {""})


class GeminiLiveConnection(ProviderConnection):
    """One set-up Live API socket."""

    input_sample_rate = INPUT_RATE
    max_duration_s = MAX_CONNECTION_S

    def __init__(
        self, socket: ClientConnection, config: SessionConfig, resumption: _Resumption | None
    ) -> None:
        self._socket = socket
        self._config = config
        self._traits = model_traits(config.model)
        # Tools whose calls run in the background while the model keeps talking.
        self._background_tools = frozenset(
            tool.name
            for tool in config.tools
            if self._traits.background_tools and not tool.blocking
        )
        self._resumed_from = resumption.handle if resumption else None
        self._handle = self._resumed_from
        # The turns the newest handle does not hold (a new connection resumed with it
        # gets them replayed), and how many of them a turn's end saw: the handle after
        # that `turnComplete` holds those.
        self._unsaved: list[HistoryItem] = list(resumption.since) if resumption else []
        self._saved_by_next_handle: int | None = None
        # The typed turn carried over awaits its answer (the old socket lost it).
        self._answer_carried = resumption.answer if resumption else False
        self._closing = False
        self._response: str | None = None
        self._last_response: str | None = None
        # A response of the model's current turn was reported (until `turnComplete`).
        self._answered_in_turn = False
        self._transcript: list[str] = []
        self._user_words: list[str] = []
        # User audio went in since the model last took the turn.
        self._user_audio = False
        # The server reports the user's speech itself (`voiceActivity`), and where the
        # last speech ended (ms into the audio), for the SpeechStopped to come.
        self._voice_activity = False
        self._speech_end_ms: int | None = None
        # A typed turn was sent; an `interrupted` before its answer is its doing, not the
        # user talking over a reply they were hearing.
        self._typed_turn = False
        self._usage: Usage | None = None
        self._playback = PlaybackLedger()
        self._cancelled_calls: set[str] = set()
        self._open_calls: set[str] = set()
        # After `goAway`: the loop time to leave by, at rest or not.
        self._leave_by: float | None = None
        self._activity_open = False

    # -- setup ---------------------------------------------------------------

    async def configure(self) -> None:
        await self._send(setup_message(self._config, self._handle))
        try:
            reply = decode_message(await self._socket.recv())
        except ConnectionClosed as err:
            raise _setup_error(err) from err
        if isinstance(reply, ProviderError) or "setupComplete" not in reply:
            raise ConnectError(f"unexpected first message: {reply!s:.200}", kind=ErrorKind.PROTOCOL)

    def resume_state(self) -> object | None:
        """The newest handle and what was said after it; none if this model takes no turns
        mid-session and something was: a fresh setup then gets the whole history."""
        if self._handle is None or (self._unsaved and not self._traits.client_content):
            return None
        # A typed turn still unanswered went out last: the old socket may have lost it.
        unanswered = (
            self._typed_turn and bool(self._unsaved) and self._unsaved[-1].role is HistoryRole.USER
        )
        return _Resumption(self._handle, tuple(self._unsaved), unanswered)

    @property
    def _at_rest(self) -> bool:
        """The newest handle holds the whole conversation and nothing is under way: no
        model turn, no typed turn awaiting its answer, no tool call unanswered."""
        return (
            not self._unsaved
            and self._saved_by_next_handle is None
            and self._response is None
            and not self._answered_in_turn
            and not self._typed_turn
            and not self._open_calls
        )

    # -- output --------------------------------------------------------------

    async def events(self) -> AsyncIterator[SessionEvent]:
        yield SessionReady()
        try:
            while True:
                for event in await self._decode(await self._receive()):
                    yield event
                if self._leave_by is not None and self._at_rest:
                    # The session resumes on a new connection, with nothing to replay.
                    raise ConnectionLost("the server asked to reconnect (goAway)")
        except ConnectionClosed as err:
            if self._closing:
                return
            if (fault := provider_fault(err)) is not None:
                raise fault from err
            code = err.rcvd.code if err.rcvd else 1006
            reason = (err.rcvd.reason if err.rcvd else "") or f"closed with code {code}"
            kind = close_kind(code, reason)
            raise ConnectionLost(
                reason,
                retryable=kind in (ErrorKind.CONNECTION, ErrorKind.SERVER, ErrorKind.RATE_LIMIT),
                kind=kind,
                retry_after_s=retry_after(reason),
            ) from err

    async def _receive(self) -> str | bytes:
        """The next frame; after `goAway`, only until it is time to leave."""
        if self._leave_by is None:
            return await self._socket.recv()
        try:
            async with asyncio.timeout_at(self._leave_by):
                return await self._socket.recv()
        except TimeoutError:
            # The new connection gets what the handle lacks replayed.
            raise ConnectionLost("goAway's time ran out before the conversation rested") from None

    async def _decode(self, raw: str | bytes) -> list[SessionEvent]:
        """One server message as session events; a malformed one becomes a protocol error."""
        message = decode_message(raw)
        if isinstance(message, ProviderError):
            return [message]
        try:
            return await self._translate(message)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            return [protocol_error(f"an invalid message ({err!r})", raw)]

    async def _translate(self, message: dict[str, Any]) -> list[SessionEvent]:
        events: list[SessionEvent] = []
        if (activity := message.get("voiceActivity")) is not None:
            events += self._voice_activity_changed(activity)
        update = message.get("sessionResumptionUpdate") or {}
        if update.get("resumable") and update.get("newHandle"):
            self._handle = update["newHandle"]
            if self._saved_by_next_handle is not None:
                del self._unsaved[: self._saved_by_next_handle]
                self._saved_by_next_handle = None
        if (content := message.get("serverContent")) is not None:
            events += await self._server_content(content)
        if (tool_call := message.get("toolCall")) is not None:
            events += self._tool_call(tool_call)
        if (metadata := message.get("usageMetadata")) is not None:
            # After the content: a message may hold a whole short turn and its usage.
            events += self._book(usage_of(metadata, self._config.output_modality))
        if (cancellation := message.get("toolCallCancellation")) is not None:
            ids = tuple(cancellation.get("ids") or ())
            self._cancelled_calls.update(ids)
            self._open_calls.difference_update(ids)
            events.append(ToolCallsCancelled(ids))
        if (go_away := message.get("goAway")) is not None:
            # Leave once at rest (the new connection resumes right there), else at the end.
            time_left = _seconds(go_away.get("timeLeft") or "0s")
            _LOGGER.debug("Gemini connection ends in %.1f s", time_left)
            loop = asyncio.get_running_loop()
            self._leave_by = loop.time() + max(0.0, time_left - GO_AWAY_MARGIN_S)
        return events

    def _book(self, usage: Usage) -> list[SessionEvent]:
        """Usage belongs to the response in progress, else to the one that ended last."""
        if self._response is not None:
            self._usage = usage if self._usage is None else self._usage + usage
            return []
        return [UsageReported(self._last_response, usage)]

    def _voice_activity_changed(self, activity: dict[str, Any]) -> list[SessionEvent]:
        """The server heard the user start or stop speaking (`audioOffset` is a Duration)."""
        self._voice_activity = True
        kind = activity.get("voiceActivityType")
        offset = activity.get("audioOffset")
        at_ms = round(_seconds(offset) * 1000) if offset else None
        if kind == "ACTIVITY_START":
            return [SpeechStarted(at_ms)]
        if kind == "ACTIVITY_END":
            self._speech_end_ms = at_ms
        return []

    async def _server_content(self, content: dict[str, Any]) -> list[SessionEvent]:
        events: list[SessionEvent] = []
        if (heard := content.get("inputTranscription")) is not None:
            if text := heard.get("text"):
                self._user_words.append(text)
                events.append(InputTranscript(text, final=False))
            if heard.get("finished"):
                events += self._user_turn_ended()
        # A response ended before `turnComplete` gets its usage with it.
        usage_follows = not content.get("turnComplete")
        if content.get("interrupted"):
            events += await self._interrupted(usage_follows)
        for part in (content.get("modelTurn") or {}).get("parts") or []:
            events += self._model_part(part)
        if (said := content.get("outputTranscription")) is not None and (text := said.get("text")):
            events += [*self._start_response(), TranscriptDelta(self._response or "", text)]
            self._transcript.append(text)
            self._playback.add_words(self._response or "", text)
        if content.get("generationComplete"):
            events += self._finish_response(ResponseStatus.COMPLETED, usage_follows)
        if content.get("turnComplete"):
            events += self._turn_complete(content.get("turnCompleteReason"))
        return events

    def _turn_complete(self, reason: str | None) -> list[SessionEvent]:
        """The model's turn is over; a reason other than the normal ones is not a normal end."""
        answered, self._answered_in_turn = self._answered_in_turn, False
        # The server's next handle holds the conversation up to here.
        self._saved_by_next_handle = len(self._unsaved)
        if reason is None or reason in _NORMAL_TURN_ENDS:
            return self._finish_response(ResponseStatus.COMPLETED, usage_follows=False)
        failed = reason in _FAILED_TURN_ENDS
        kind = ErrorKind.PROTOCOL if failed else ErrorKind.REQUEST
        if self._response is not None:
            status = ResponseStatus.FAILED if failed else ResponseStatus.INCOMPLETE
            return self._finish_response(
                status,
                usage_follows=False,
                reason=reason.lower(),
                error_kind=kind if failed else None,
            )
        _LOGGER.info("Gemini ended its turn with %s", reason)
        if answered:
            return []  # the response had ended already (`generationComplete`)
        # Nothing was said: no answer is coming to what the user asked.
        message = f"Gemini ended its turn without an answer: {reason}"
        return [ProviderError(reason.lower(), message, kind=kind, refused_response=True)]

    def _model_part(self, part: dict[str, Any]) -> list[SessionEvent]:
        if part.get("thought"):
            return []
        if (blob := part.get("inlineData")) is not None:
            mime = str(blob.get("mimeType") or "")
            if not mime.startswith("audio/pcm"):
                return []
            rate = int(match.group(1)) if (match := _RATE.search(mime)) else 24000
            if not MIN_OUTPUT_RATE <= rate <= MAX_OUTPUT_RATE:
                raise ValueError(f"audio at {rate} Hz")
            pcm = base64.b64decode(blob["data"])
            events = self._start_response()
            # One audio item per response: Gemini names neither.
            events.append(AudioChunk(self._response or "", pcm, rate, self._response))
            self._playback.add_audio(self._response or "", duration_ms(len(pcm), rate))
            return events
        if (text := part.get("text")) is not None:
            events = self._start_response()
            events.append(TranscriptDelta(self._response or "", text))
            self._transcript.append(text)
            return events
        return []

    def _start_response(self) -> list[SessionEvent]:
        if self._response is not None:
            return []
        events = self._user_turn_ended()
        self._response = f"gemini_response_{next(_RESPONSE_IDS)}"
        self._answered_in_turn = True
        self._typed_turn = False
        self._transcript = []
        events.append(ResponseStarted(self._response))
        return events

    def _user_turn_ended(self) -> list[SessionEvent]:
        """The model answering (or a finished transcript) means the user's turn is over,
        transcribed or not: the session keeps its audio for a replay until told so."""
        if not (self._user_audio or self._user_words):
            return []
        text = "".join(self._user_words).strip()
        self._user_words, self._user_audio = [], False
        events: list[SessionEvent] = [SpeechStopped(self._speech_end_ms)]
        self._speech_end_ms = None
        if text:
            self._unsaved.append(HistoryItem(HistoryRole.USER, text))
            events.append(InputTranscript(text, final=True))
        return events

    def _finish_response(
        self,
        status: ResponseStatus,
        usage_follows: bool,
        *,
        reason: str | None = None,
        error_kind: ErrorKind | None = None,
    ) -> list[SessionEvent]:
        if self._response is None:
            return []
        transcript = "".join(self._transcript)
        if status is not ResponseStatus.FAILED and transcript.strip():
            self._unsaved.append(HistoryItem(HistoryRole.ASSISTANT, transcript))
        done = ResponseDone(
            self._response,
            status,
            transcript=transcript,
            reason=reason,
            usage=self._usage,
            error_kind=error_kind,
            usage_follows=usage_follows,
        )
        self._last_response, self._response, self._usage = self._response, None, None
        return [done]

    async def _interrupted(self, usage_follows: bool) -> list[SessionEvent]:
        """The user spoke over the model: its unplayed audio is stale, even if generated."""
        interrupted = self._response or self._last_response
        events: list[SessionEvent] = [Interrupted(interrupted)]
        events += self._finish_response(ResponseStatus.INTERRUPTED, usage_follows)
        if not self._voice_activity:
            events.append(SpeechStarted())
        if not self._typed_turn:
            await self._tell_what_was_heard({})
        return events

    def _tool_call(self, tool_call: dict[str, Any]) -> list[SessionEvent]:
        events = self._start_response()
        response_id = self._response or ""
        ids = []
        model_waits = False
        for call in tool_call.get("functionCalls") or []:
            ids.append(call["id"])
            self._open_calls.add(call["id"])
            model_waits = model_waits or call["name"] not in self._background_tools
            events.append(ToolCall(response_id, call["id"], call["name"], call.get("args") or {}))
        # Either way the results bring the model's continuation, a new response.
        events.append(AwaitingToolResults(tuple(ids)))
        if model_waits:
            # A blocking call: the model says nothing more until the results are in. The
            # model turn goes on, so its usage comes with a later response's (or, if the
            # server completes the turn here, in a UsageReported for this one).
            events += self._finish_response(ResponseStatus.COMPLETED, usage_follows=False)
        return events

    # -- input ---------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        await send_frame(self._socket, json.dumps(message, separators=(",", ":")))

    async def send_audio(self, pcm: bytes) -> None:
        if self._activity_to_open:
            self._activity_open = True
            await self._send({"realtimeInput": {"activityStart": {}}})
        self._user_audio = True
        await send_frame(self._socket, _AUDIO_MESSAGE % base64.b64encode(pcm))

    def send_audio_now(self, pcm: bytes) -> bool:
        if self._activity_to_open:
            return False  # `send_audio` opens the activity first
        self._user_audio = True
        return write_now(self._socket, _AUDIO_MESSAGE % base64.b64encode(pcm))

    @property
    def _activity_to_open(self) -> bool:
        """Turn detection is ours and the user's turn has no open activity yet."""
        return self._config.turn_detection.mode is TurnDetectionMode.OFF and not self._activity_open

    async def commit_audio(self) -> None:
        if self._activity_open:
            self._activity_open = False
            await self._send({"realtimeInput": {"activityEnd": {}}})
        else:
            await self._send({"realtimeInput": {"audioStreamEnd": True}})

    async def clear_audio(self) -> None:
        """Gemini keeps no client-side input buffer to clear."""

    async def send_text(self, text: str, *, respond: bool) -> None:
        """A user turn; models without mid-session `clientContent` take it as realtime
        text, which always gets an answer."""
        self._typed_turn = respond
        if not self._traits.client_content:
            await self._send({"realtimeInput": {"text": text}})
        else:
            await self._send(
                {
                    "clientContent": {
                        "turns": [{"role": "user", "parts": [{"text": text}]}],
                        "turnComplete": respond,
                    }
                }
            )
        self._unsaved.append(HistoryItem(HistoryRole.USER, text))

    async def send_image(self, image: bytes, mime_type: str) -> None:
        data = base64.b64encode(image).decode("ascii")
        await self._send({"realtimeInput": {"video": {"mimeType": mime_type, "data": data}}})

    async def send_tool_result(self, call_id: str, name: str, result: dict[str, Any]) -> None:
        if call_id in self._cancelled_calls:
            _LOGGER.debug("Dropping the result of cancelled tool call %s", call_id)
            return
        self._open_calls.discard(call_id)
        response: dict[str, Any] = {"id": call_id, "name": name, "response": result}
        if name in self._background_tools:
            # Told once the model is idle: it finishes what it is saying first.
            response["scheduling"] = "WHEN_IDLE"
        await self._send({"toolResponse": {"functionResponses": [response]}})

    async def create_response(self, instructions: str | None = None) -> None:
        """Gemini answers on its own when the user's turn completes."""

    async def interrupt(self, played: Mapping[str, int]) -> None:
        """Tell the model what the user heard. The client cannot stop the model while its
        activity detection is on (the user's next words will); the session drops the
        unplayed audio."""
        await self._tell_what_was_heard(played)

    def report_played(self, item_id: str, played_ms: int) -> None:
        self._playback.report(item_id, played_ms)

    async def _tell_what_was_heard(self, played: Mapping[str, int]) -> None:
        """Gemini cannot truncate: a role-tagged note makes the model's memory of each reply
        that was cut match what the user heard of it (fully heard replies are left alone)."""
        notes = []
        for item in self._playback.take():
            heard = item.heard_ms(played.get(item.item_id))
            if heard < item.received_ms:
                notes.append({"text": heard_note(item.heard_text(heard))})
        if not notes:
            return
        if not self._traits.client_content:
            _LOGGER.debug("This model takes no notes mid-session; it remembers the whole reply")
            return
        await self._send(
            {"clientContent": {"turns": [{"role": "user", "parts": notes}], "turnComplete": False}}
        )

    async def restore(self, history: Sequence[HistoryItem]) -> None:
        """Replay, as text, the turns this connection lacks: on a resumed one those said
        after its handle (a typed turn the old socket lost is asked again), on a fresh
        one all. Tool rounds are not replayed: the calls of a lost connection are
        withdrawn."""
        if self._resumed_from is None:
            self._unsaved = [entry for entry in history if entry.kind is HistoryKind.MESSAGE]
        turns = [
            {
                "role": "user" if entry.role is HistoryRole.USER else "model",
                "parts": [{"text": entry.text}],
            }
            for entry in self._unsaved
        ]
        if turns:
            await self._send(
                {"clientContent": {"turns": turns, "turnComplete": self._answer_carried}}
            )

    async def update(self, config: SessionConfig) -> bool:
        """Only a new setup changes the session; instruction changes wait for the next one."""
        changed = needs_new_connection(self._config, config)
        self._config = config
        return not changed

    async def close(self) -> None:
        self._closing = True
        await self._socket.close()


def usage_of(metadata: Mapping[str, Any], output_modality: OutputModality) -> Usage:
    """A `usageMetadata` by billed modality.

    Prompt tokens include the cached ones; tool-use prompt tokens (search results)
    are input and thinking tokens output, both billed as text. Tokens the details
    leave out count as text on the way in (the prompt's undetailed remainder is
    its framing) and as the session's output modality on the way out.
    """
    prompt = _split(metadata, "promptTokenCount", "promptTokensDetails", "text")
    tools = _split(metadata, "toolUsePromptTokenCount", "toolUsePromptTokensDetails", "text")
    cached = _split(metadata, "cachedContentTokenCount", "cacheTokensDetails", "text")
    said = _split(metadata, "responseTokenCount", "responseTokensDetails", output_modality.value)
    thoughts = int(metadata.get("thoughtsTokenCount") or 0)
    return Usage(
        input_text=prompt["text"] + tools["text"],
        input_audio=prompt["audio"] + tools["audio"],
        input_image=prompt["image"] + tools["image"],
        cached_text=min(cached["text"], prompt["text"]),
        cached_audio=min(cached["audio"], prompt["audio"]),
        cached_image=min(cached["image"], prompt["image"]),
        output_text=said["text"] + thoughts,
        output_audio=said["audio"],
    )


def _seconds(duration: str) -> float:
    """A protobuf Duration as JSON ("1.5s") in seconds."""
    return float(duration.removesuffix("s"))


def _split(metadata: Mapping[str, Any], total: str, details: str, rest: str) -> dict[str, int]:
    """One count of `metadata` by billed modality; what its details leave out goes to `rest`."""
    counts = {"text": 0, "audio": 0, "image": 0}
    for entry in metadata.get(details) or []:
        counts[_BILLED_AS.get(str(entry.get("modality")), "text")] += int(
            entry.get("tokenCount") or 0
        )
    counts[rest] += max(0, int(metadata.get(total) or 0) - sum(counts.values()))
    return counts


def _setup_error(err: ConnectionClosed) -> Exception:
    """The server closed instead of confirming the setup: the key, or the setup refused."""
    code = err.rcvd.code if err.rcvd else 1006
    reason = err.rcvd.reason if err.rcvd else str(err)
    kind = close_kind(code, reason)
    if kind is ErrorKind.AUTH:
        return AuthenticationError(reason)
    if err.rcvd is None:
        return ConnectError(f"closed during setup: {reason}", kind=kind)
    return _SetupRefused(f"setup rejected: {reason}", kind=kind)


class _SetupRefused(ConnectError):
    """The server answered the setup by closing with a reason (a handle, a model refused)."""
