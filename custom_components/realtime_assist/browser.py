"""A browser as a full-duplex satellite: the dashboard card's live conversation.

The card (frontend/realtime-assist-card.js) talks over the dashboard's own
websocket connection, authenticated and in the logged-in user's context; no
port, no key in the browser. Our commands:

    realtime_assist/browser/start {agent?, language, camera}   a subscription; events:
        ready {conversation, conversation_id, audio_handler, input_rate,
               camera: null | "video" | "snapshot", frame_interval_ms, long_side}
        state, user, model, tool, audio {item, rate, data}, flush, snapshot, error, end
    binary [audio_handler][PCM16 mono at input_rate]   the microphone, always open
    realtime_assist/browser/played {conversation, played: {item: ms}, final?, drained?}
    realtime_assist/browser/frame {conversation, image}   a JPEG of the device's camera
    realtime_assist/browser/stop {conversation}

Microphone frames go in as binary frames through Home Assistant's binary
handlers (as `assist_pipeline/run` takes a satellite's audio): no base64, no
JSON, no schema check or reply per frame (bench/browser_protocol.py measures both
ways). Home Assistant's websocket writes only text frames, so the model's
audio goes out as base64 in JSON events.

A conversation is a sequence of `Turn`s on one session, with the audio going
into the session all the time. The next turn is begun as soon as the one
before has ended (so it sees the provider's events from the user's first
word on), waiting for speech as long as the agent keeps an idle conversation;
nobody speaking for that long ends the conversation. Each turn's user words,
model words and tool calls go into Home Assistant's chat log exactly as the
conversation agent's do (`write_reply`, `async_session_config` with the
user's context, so tools have the user's permissions).

Barge-in: when the provider hears the user start speaking while the model
answers (or the card still plays the answer), the card is told to flush its
playback at once and answers with exactly what it played of each audio item;
the turn is then interrupted with that (`Turn.interrupt(played)`), so the
model keeps what was heard. On OpenAI the provider's VAD only reports speech
(`interrupt_response` off): the interruption waits for the card's report, so
the truncation is what the card played, not an estimate. Gemini interrupts by
itself and keeps no truncation.
"""

from __future__ import annotations

import asyncio
import base64
from collections import deque
from collections.abc import Callable, Coroutine
import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import Any

from homeassistant.auth.permissions.const import POLICY_READ
from homeassistant.components import conversation, frontend, websocket_api
from homeassistant.components.http.server import StaticPathConfig
from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.const import (
    ERR_INVALID_FORMAT,
    ERR_NOT_FOUND,
    ERR_UNAUTHORIZED,
)
from homeassistant.components.websocket_api.decorators import async_response, websocket_command
from homeassistant.components.websocket_api.messages import event_message
from homeassistant.const import Platform
from homeassistant.core import Context, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import chat_session, llm
from homeassistant.loader import async_get_integration
import probatio

from . import find_agent
from .agent import RealtimeAgent
from .const import DOMAIN
from .conversation import add_error, failure_error, write_reply
from .follow_up import without_expect_answer
from .notices import async_failure_message
from .realtime.audio import duration_ms
from .realtime.config import SessionConfig, TurnDetectionMode
from .realtime.errors import RealtimeError
from .realtime.events import (
    InputTranscript,
    Interrupted,
    ResponseStarted,
    SessionClosed,
    SessionEvent,
    SpeechStarted,
    SpeechStopped,
)
from .realtime.session import RealtimeSession, Subscription
from .realtime.turn import FailureReason, Turn, TurnDeadlines, TurnError, TurnTracker
from .tools import async_user_may, error_result

_LOGGER = logging.getLogger(__name__)

CARD_URL = f"/{DOMAIN}"
CARD_DIR = Path(__file__).parent / "frontend"
CARD_MODULE = "realtime-assist-card.js"
# Microphone audio kept while the session is not ready for it (connecting).
MAX_QUEUED_AUDIO_MS = 2000.0
# How long the card may take to say what it played after a flush.
FLUSH_REPORT_S = 1.0
# How long the model waits for a frame of the device's camera it asked for.
SNAPSHOT_S = 5.0
# The largest frame of the device's camera we take (the card sends far less).
MAX_FRAME_BYTES = 2 * 1024 * 1024
# Video frames no faster than this (Gemini takes about one a second).
MIN_FRAME_INTERVAL_S = 1.0
DEVICE_CAMERA_TOOL = f"{DOMAIN}__look_through_device_camera"


async def async_setup_browser(hass: HomeAssistant) -> None:
    """Serve the card (a dashboard resource without a manual step) and its commands."""
    integration = await async_get_integration(hass, DOMAIN)
    await hass.http.async_register_static_paths(
        [StaticPathConfig(CARD_URL, str(CARD_DIR), cache_headers=True)]
    )
    if "frontend" in hass.config.components:
        frontend.add_extra_js_url(hass, f"{CARD_URL}/{CARD_MODULE}?v={integration.version}")
    for command in (ws_start, ws_played, ws_frame, ws_stop):
        websocket_api.async_register_command(hass, command)


def _conversations(hass: HomeAssistant) -> dict[tuple[int, int], BrowserConversation]:
    """Live browser conversations by (connection, start command id)."""
    found: dict[tuple[int, int], BrowserConversation] = hass.data.setdefault(
        f"{DOMAIN}_browser", {}
    )
    return found


def _forget(hass: HomeAssistant, key: tuple[int, int]) -> None:
    _conversations(hass).pop(key, None)


def _key(connection: ActiveConnection, msg_id: int) -> tuple[int, int]:
    return (id(connection), msg_id)


def _find(
    hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]
) -> BrowserConversation | None:
    """The conversation this connection started, or None (after an error reply)."""
    found = _conversations(hass).get(_key(connection, msg["conversation"]))
    if found is None:
        connection.send_error(msg["id"], ERR_NOT_FOUND, "No such conversation")
    return found


@websocket_command(
    {
        probatio.Required("type"): f"{DOMAIN}/browser/start",
        probatio.Optional("agent"): str,
        probatio.Optional("language"): str,
        probatio.Optional("camera", default=False): bool,
    }
)
@async_response
async def ws_start(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """Start a live conversation with an agent, as the connection's user."""
    context = connection.context(msg)
    try:
        agent = find_agent(hass, msg.get("agent"))
    except HomeAssistantError as err:
        connection.send_error(msg["id"], ERR_NOT_FOUND, str(err))
        return
    entity_id = agent.entity_ids.get(Platform.CONVERSATION, "")
    if not await async_user_may(hass, context, entity_id, POLICY_READ):
        connection.send_error(msg["id"], ERR_UNAUTHORIZED, "Not your assistant")
        return
    if agent.base_config.turn_detection.mode is TurnDetectionMode.OFF:
        connection.send_error(
            msg["id"],
            "not_supported",
            "This assistant waits for Home Assistant to hear the end of speech; "
            "a live conversation needs the provider's (Listening in its settings).",
        )
        return
    key = _key(connection, msg["id"])

    def send(event: dict[str, Any]) -> None:
        connection.send_message(event_message(msg["id"], event))

    talk = BrowserConversation(
        hass,
        agent,
        context,
        msg.get("language") or hass.config.language,
        send,
        camera=msg["camera"],
        on_end=lambda: _forget(hass, key),
    )
    # The handler outlives the conversation until the card unsubscribes: frames it sent
    # before it heard of the end are dropped, not logged as errors by Home Assistant.
    handler_id, unregister = connection.async_register_binary_handler(talk.on_audio)
    _conversations(hass)[key] = talk

    @callback
    def unsubscribe() -> None:
        """The card stopped listening (or its connection closed)."""
        unregister()
        hass.async_create_background_task(talk.stop("stopped"), "realtime_assist_browser_stop")

    connection.subscriptions[msg["id"]] = unsubscribe
    connection.send_result(msg["id"])
    send(
        {
            "type": "ready",
            "conversation": msg["id"],
            "conversation_id": talk.conversation_id,
            "audio_handler": handler_id,
            "input_rate": agent.pool.input_sample_rate,
            "camera": talk.camera_mode,
            "frame_interval_ms": round(talk.frame_interval_s * 1000),
            "long_side": agent.camera_long_side,
        }
    )
    talk.start()


@websocket_command(
    {
        probatio.Required("type"): f"{DOMAIN}/browser/played",
        probatio.Required("conversation"): int,
        probatio.Required("played"): {str: probatio.All(int, probatio.Range(min=0))},
        probatio.Optional("final", default=False): bool,
        probatio.Optional("drained", default=False): bool,
    }
)
@callback
def ws_played(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """What the card has played of each audio item (`final`: after a flush)."""
    if (talk := _find(hass, connection, msg)) is not None:
        talk.on_played(msg["played"], final=msg["final"], drained=msg["drained"])
        connection.send_result(msg["id"])


@websocket_command(
    {
        probatio.Required("type"): f"{DOMAIN}/browser/frame",
        probatio.Required("conversation"): int,
        probatio.Required("image"): str,
    }
)
@async_response
async def ws_frame(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """A JPEG of the device's camera, for the model to see."""
    if (talk := _find(hass, connection, msg)) is None:
        return
    try:
        jpeg = base64.b64decode(msg["image"], validate=True)
    except ValueError:
        jpeg = b""
    if not jpeg.startswith(b"\xff\xd8") or len(jpeg) > MAX_FRAME_BYTES:
        connection.send_error(msg["id"], ERR_INVALID_FORMAT, "Not a JPEG frame")
        return
    if not talk.camera_mode:
        connection.send_error(msg["id"], "not_allowed", "The camera is off")
        return
    await talk.on_frame(jpeg)
    connection.send_result(msg["id"])


@websocket_command(
    {
        probatio.Required("type"): f"{DOMAIN}/browser/stop",
        probatio.Required("conversation"): int,
    }
)
@async_response
async def ws_stop(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """End the conversation (the card's stop button)."""
    if (talk := _find(hass, connection, msg)) is None:
        return
    await talk.stop("stopped")
    connection.send_result(msg["id"])


def _chat_session(
    hass: HomeAssistant, conversation_id: str | None, context: Context
) -> contextlib.AbstractContextManager[chat_session.ChatSession]:
    """The conversation's chat session, owned by the user where Home Assistant can (2026.11)."""
    owner: dict[str, Any] = {"context": context}
    try:
        return chat_session.async_get_chat_session(hass, conversation_id, **owner)
    except TypeError:  # Home Assistant 2026.10 knows no owner
        return chat_session.async_get_chat_session(hass, conversation_id)


class BrowserConversation:
    """One card's live conversation: the microphone always open, a turn after a turn."""

    def __init__(
        self,
        hass: HomeAssistant,
        agent: RealtimeAgent,
        context: Context,
        language: str,
        send: Callable[[dict[str, Any]], None],
        *,
        camera: bool,
        on_end: Callable[[], None],
    ) -> None:
        self.hass = hass
        self._agent = agent
        self._agent_id = agent.entity_ids.get(Platform.CONVERSATION, "")
        self._context = context
        self._language = language
        self._send = send
        self._on_end = on_end
        profile = agent.profile
        self.camera_mode: str | None = None
        if camera:
            self.camera_mode = "video" if profile.video_input else "snapshot"
        self.frame_interval_s = max(agent.camera_frame_interval_s, MIN_FRAME_INTERVAL_S)
        self._consumer_interrupts = profile.live_reconfigure
        with _chat_session(hass, None, context) as session:
            self.conversation_id = session.conversation_id
        self._session: RealtimeSession | None = None
        self._session_ready = asyncio.Event()
        self._audio: deque[bytes] = deque()
        self._audio_ms = 0.0
        self._audio_added = asyncio.Event()
        # The provider hears the user now (between its speech start and stop).
        self._user_speaking = False
        # The turn's reply under way as of the event `_watch` handles (None: none is), in
        # the events' order: the turn's phase may be ahead of it (events come in bursts).
        self._reply: TurnTracker | None = None
        self._turn: Turn | None = None
        # The card may be playing audio it was sent (until it reports it ran dry).
        self._card_playing = False
        # The turn whose audio the card plays last (it may have ended: playback lags).
        self._speaker: Turn | None = None
        # A turn whose audio the card was told to drop (a barge-in under way).
        self._silenced: Turn | None = None
        self._flush_report: asyncio.Future[dict[str, int]] | None = None
        self._frame_wanted: asyncio.Future[None] | None = None
        self._last_frame_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._turns: asyncio.Task[None] | None = None
        self._stopped = False

    # -- the card's side -----------------------------------------------------------

    def start(self) -> None:
        self._turns = self._spawn(self._converse(), "realtime_assist_browser_turns")
        self._spawn(self._send_audio(), "realtime_assist_browser_audio")

    @callback
    def on_audio(self, hass: HomeAssistant, connection: Any, pcm: bytes) -> None:
        """A microphone frame (a binary handler: called in the loop, must not wait)."""
        if not pcm or self._stopped:
            return
        self._audio.append(pcm)
        self._audio_ms += self._ms(pcm)
        while self._audio_ms > MAX_QUEUED_AUDIO_MS:
            self._audio_ms -= self._ms(self._audio.popleft())
        self._audio_added.set()

    def on_played(self, played: dict[str, int], *, final: bool, drained: bool) -> None:
        """The card's playback so far; `final` answers a flush, `drained` means it ran dry."""
        if drained or final:
            self._card_playing = False
        if final and self._flush_report is not None and not self._flush_report.done():
            self._flush_report.set_result(played)
            return
        if self._session is not None:
            for item_id, played_ms in played.items():
                self._session.report_played(item_id, played_ms)

    async def on_frame(self, jpeg: bytes) -> None:
        """A camera frame: Gemini's stream (rate-limited), or the snapshot that was asked for."""
        session = self._session
        if session is None:
            return
        now = asyncio.get_running_loop().time()
        wanted = self._frame_wanted is not None and not self._frame_wanted.done()
        if not wanted and (
            self.camera_mode != "video" or now - self._last_frame_at < self.frame_interval_s
        ):
            return  # not asked for, or faster than the provider takes frames
        self._last_frame_at = now
        try:
            await session.send_image(jpeg, "image/jpeg")
        except RealtimeError as err:
            _LOGGER.debug("A frame of the device's camera was not sent: %s", err)
            return
        if self._frame_wanted is not None and not self._frame_wanted.done():
            self._frame_wanted.set_result(None)

    async def stop(self, reason: str, message: str | None = None) -> None:
        """End the conversation: its turn, its tasks; the session closes."""
        if self._stopped:
            return
        self._stopped = True
        self._on_end()
        event: dict[str, Any] = {"type": "end", "reason": reason}
        if message:
            event["message"] = message
        self._send(event)
        if self._turn is not None:
            await self._turn.cancel("the browser conversation ended")
        current = asyncio.current_task()
        if self._turns is not None and self._turns is not current:
            # The turn's end finishes its chat log entry; the loop then sees the stop.
            await asyncio.wait({self._turns}, timeout=FLUSH_REPORT_S)
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        # Nobody will talk in it again: its session closes now, not after the idle time.
        self._agent.pool.discard_later(self.conversation_id)()

    # -- the session's side --------------------------------------------------------

    def _ms(self, pcm: bytes) -> float:
        return duration_ms(len(pcm), self._agent.pool.input_sample_rate)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = self.hass.async_create_background_task(work, name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _send_audio(self) -> None:
        """The microphone into the session, in order, all the time."""
        await self._session_ready.wait()
        assert self._session is not None
        try:
            while True:
                while self._audio:
                    pcm = self._audio.popleft()
                    self._audio_ms -= self._ms(pcm)
                    await self._session.send_audio(pcm)
                self._audio_added.clear()
                await self._audio_added.wait()
        except RealtimeError as err:
            _LOGGER.debug("The browser's audio stopped: %s", err)

    async def _converse(self) -> None:
        """Turn after turn until nobody speaks for the idle time, or the session ends."""
        reason, message = "idle", None
        try:
            while not self._stopped and await self._one_turn():
                pass
        except TurnError as err:
            reason = "error"
            message = await async_failure_message(self.hass, self._language, err)
        except conversation.ConverseError as err:
            reason = "error"
            message = err.response.speech.get("plain", {}).get("speech") or str(err)
        await self.stop(reason, message)

    def _fit(self, config: SessionConfig) -> SessionConfig:
        """The agent's configuration for a listener whose microphone never closes."""
        config = without_expect_answer(config)
        if self._consumer_interrupts:
            # The provider only reports speech; we interrupt with what the card played.
            config = dataclasses.replace(
                config,
                turn_detection=dataclasses.replace(config.turn_detection, interrupt_response=False),
            )
        return config

    @property
    def _deadlines(self) -> TurnDeadlines:
        """The agent's deadlines, waiting for speech as long as an idle conversation lives."""
        return dataclasses.replace(self._agent.deadlines, speech_start_s=self._agent.idle_timeout_s)

    async def _one_turn(self) -> bool:
        """Begin the next turn, put it into the chat log, play it; False when the talk is over."""
        llm_context = llm.LLMContext(
            platform=DOMAIN,
            context=self._context,
            language=self._language,
            assistant=conversation.DOMAIN,
            device_id=None,
        )
        tools = [DeviceCameraTool(self)] if self.camera_mode == "snapshot" else []
        with (
            _chat_session(self.hass, self.conversation_id, self._context) as session,
            conversation.async_get_chat_log(
                self.hass, session, chat_log_delta_listener=self._on_delta
            ) as chat_log,
        ):
            config = self._fit(
                await self._agent.async_session_config(llm_context, None, chat_log, tools)
            )
            turn = await self._agent.async_begin_turn(
                self.conversation_id,
                config,
                speaking=self._user_speaking,
                deadlines=self._deadlines,
            )
            self._turn = turn
            self._reply = None  # what is left of an earlier reply is not this turn's
            self._attach_session(turn.session)
            self._state("hearing" if self._user_speaking else "listening")
            playing = asyncio.ensure_future(self._play(turn))
            try:
                words = await turn.heard()
            except TurnError as err:
                playing.cancel()
                if err.reason is FailureReason.NO_SPEECH:
                    return False
                await self._failed(chat_log, err)
                return True
            self._send({"type": "user", "text": words, "final": True})
            chat_log.async_add_user_content(conversation.UserContent(content=words))
            await write_reply(self._agent_id, turn, chat_log)
            if turn.failure is not None:
                await self._failed(chat_log, turn.failure)
            await playing
        if not self._card_playing:
            self._state("listening")
        return True

    def _attach_session(self, session: RealtimeSession) -> None:
        """Watch the conversation's session (the first turn opened it)."""
        if self._session is session:
            return
        if self._session is not None:
            # The session was replaced (it had closed): this conversation is over.
            raise TurnError(FailureReason.CONNECTION, "the conversation's session ended")
        self._session = session
        self._session_ready.set()
        self._spawn(self._watch(session.subscribe()), "realtime_assist_browser_watch")

    async def _failed(self, chat_log: conversation.ChatLog, failure: TurnError) -> None:
        """A turn failed: the chat log records it, the card shows why in words."""
        add_error(chat_log, self._agent_id, failure_error(failure))
        message = await async_failure_message(self.hass, self._language, failure)
        self._send({"type": "error", "message": message, "reason": str(failure.reason)})

    async def _play(self, turn: Turn) -> None:
        """The turn's audio to the card, as it comes (until a barge-in silenced it)."""
        async for chunk in turn.audio_chunks():
            if self._silenced is turn:
                continue
            self._speaker = turn
            if not self._card_playing:
                self._card_playing = True
                self._state("speaking")
            self._send(
                {
                    "type": "audio",
                    "item": chunk.item_id or chunk.response_id,
                    "rate": chunk.sample_rate,
                    "data": base64.b64encode(chunk.pcm).decode("ascii"),
                }
            )

    async def _watch(self, events: Subscription) -> None:
        """The provider's view of the user: their words, their speech, barge-in."""
        with events:
            async for event in events:
                self._follow_reply(event)
                match event:
                    case SpeechStarted():
                        self._user_speaking = True
                        self._state("hearing")
                        if self.camera_mode == "snapshot":
                            self.ask_for_frame()
                        if (talked_over := self._talked_over()) is not None:
                            self._spawn(
                                self._barge_in(talked_over), "realtime_assist_browser_barge_in"
                            )
                    case Interrupted() if self._card_playing and self._speaker is not None:
                        # The provider cut the model off by itself (Gemini).
                        if self._speaker is not self._silenced:
                            self._spawn(
                                self._barge_in(self._speaker), "realtime_assist_browser_barge_in"
                            )
                    case SpeechStopped():
                        self._user_speaking = False
                        self._state("thinking")
                    case InputTranscript(final=False, text=text):
                        self._send({"type": "user", "text": text, "final": False})
                    case SessionClosed(error=error, kind=kind) if not self._stopped:
                        failure = TurnError(FailureReason.of(kind), error or "the session closed")
                        message = (
                            await async_failure_message(self.hass, self._language, failure)
                            if error
                            else None
                        )
                        self._spawn(
                            self.stop("error" if error else "idle", message),
                            "realtime_assist_browser_end",
                        )

    def _follow_reply(self, event: SessionEvent) -> None:
        """Whether the model answers at `event`: from a response's start to the end of
        the reply (tool rounds included), as a turn ends it."""
        if isinstance(event, ResponseStarted) and self._reply is None:
            self._reply = TurnTracker()
        if self._reply is not None and self._reply.ends_turn(event):
            self._reply = None

    def _talked_over(self) -> Turn | None:
        """The turn the user speaks over: the card still plays it, or the model answers.

        Whether the model answers is judged in the events' order, not by the turn's
        phase: the turn may have read the model's reply to this very speech already.
        """
        turn = self._speaker if self._card_playing else self._turn
        if turn is None or turn is self._silenced:
            return None
        if self._card_playing or self._reply is not None:
            return turn
        return None

    async def _barge_in(self, turn: Turn) -> None:
        """Stop the card's playback, learn what it played, cut the model's memory to it.

        The turn may have ended already (the model finished, the card still plays):
        then only the model's memory is cut.
        """
        if turn is self._silenced:
            return
        self._silenced = turn
        self._flush_report = asyncio.get_running_loop().create_future()
        self._send({"type": "flush"})
        try:
            async with asyncio.timeout(FLUSH_REPORT_S):
                played: dict[str, int] | None = await self._flush_report
        except TimeoutError:
            _LOGGER.debug("The card did not say what it played; the session estimates it")
            played = None
        self._card_playing = False
        await turn.interrupt(played)

    def _on_delta(self, chat_log: conversation.ChatLog, delta: dict[str, Any]) -> None:
        """The chat log's deltas (the model's words, tool calls and results) to the card."""
        content = delta.get("content")
        if content and isinstance(content, str):
            self._send({"type": "model", "text": content})
        for call in delta.get("tool_calls") or ():
            self._send({"type": "tool", "name": call.tool_name})
            self._state("tool")
        if delta.get("role") == "tool_result":
            self._state("thinking")

    def _state(self, state: str) -> None:
        self._send({"type": "state", "state": state})

    def ask_for_frame(self) -> asyncio.Future[None]:
        """Ask the card for a frame of its camera now (the model wants to look).

        Asked each time: a card that had no picture at the last request (its camera
        off, or not started yet) sends none, and would otherwise never be asked again.
        """
        if self._frame_wanted is None or self._frame_wanted.done():
            self._frame_wanted = asyncio.get_running_loop().create_future()
        self._send({"type": "snapshot"})
        return self._frame_wanted


class DeviceCameraTool(llm.Tool):
    """Lets the model look through the camera of the device the user talks to (OpenAI)."""

    name = DEVICE_CAMERA_TOOL
    description = (
        "Look through the camera of the device the user is talking to you on (a tablet or "
        "phone): you will see its current image. Use it when the user shows you something."
    )

    def __init__(self, talk: BrowserConversation) -> None:
        self.integration = DOMAIN
        self._talk = talk

    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> llm.ToolResult:
        try:
            async with asyncio.timeout(SNAPSHOT_S):
                await asyncio.shield(self._talk.ask_for_frame())
        except TimeoutError:
            return error_result("CameraUnavailable", "The device's camera sent no image in time")
        return llm.ToolResult(
            data={
                "success": True,
                "note": "The device camera's current image is now in the conversation.",
            }
        )
