"""Test satellites that start playing a reply when, and in the format, real ones do.

Each kind reproduces one real satellite's rule, read from Home Assistant
2026.11's own code (identical in 2026.10.4, the unit tests' release) and from
the clients it talks to:

- `esphome_media_player` (platform `esphome`, with an `esphome` media player on
  its device; Voice PE): asks for FLAC 48 kHz mono 16-bit (its media player's
  announcement format); its media player fetches the run-start URL at
  `intent-progress` with `tts_start_streaming`, else the URL of `tts-end`.
- `esphome_speaker` (platform `esphome`, no media player): WAV 16 kHz mono;
  Home Assistant streams `tts.async_get_stream(token)` to it at `tts-end` only.
- `wyoming`: WAV 22.05 kHz mono; Home Assistant streams `tts.async_get_stream`
  (token of run-start) at `tts_start_streaming`, else at `tts-end`.
- `voip`: WAV 16 kHz mono; Home Assistant reads `tts.async_get_stream` at
  `tts-end`, all of it, then sends RTP.
- `assist_dialog` (no entity: a websocket client): asks for nothing (the
  engine's default); the frontend opens the TTS URL at `run-start` and plays
  the bytes as they arrive.

Sources: `homeassistant/components/esphome/assist_satellite.py`
(`on_pipeline_event`, `_stream_tts_audio`, `_update_tts_format`) and the ESPHome
firmware (`voice_assistant.cpp`: the media player plays the run-start URL on
`tts_start_streaming`, the tts-end URL only if it has not started);
`wyoming/assist_satellite.py` (`on_pipeline_event`, `_stream_tts`);
`voip/assist_satellite.py` (`on_pipeline_event`, `_send_tts`); the frontend's
`src/components/ha-assist-chat.ts` (`new Audio(tts_output.url)` at run-start).

Every kind records what its "player" receives (`Player`): every reply byte,
in order, with the event loop's time. For ESPHome speakers and Wyoming that
is the PCM Home Assistant sends to the device; for media players and the
Assist dialog the file as fetched from the TTS URL. VoIP is the exception
that cannot be helped from our side: Home Assistant reads the whole reply
before it sends the first RTP packet, so its player records the bytes as
Home Assistant's VoIP code reads them (the phone hears them only at the end).

Satellites are registered the way the integration tells kinds apart: the
entity registry `platform` of the satellite (`esphome`, `wyoming`, `voip`)
and, for `esphome`, whether its device has a `media_player` of platform
`esphome`. The module needs nothing but Home Assistant (and the fakes' audio
samples), so a test integration loads the same satellites into a real `hass`
(tests/smoke/satellite_harness).

A test drives a run: `turn = await satellite.start_turn(audio)` streams the
user's audio through `async_accept_pipeline_from_satellite` (the Assist dialog:
`assist_pipeline/run`) and returns at once; `turn.player` fills as the reply
arrives (`wait_for_change`); `await turn.finished()` waits for the run and the
playback it started. tests/reply_audio.py decodes and checks what was played.
Everything is stamped with the event loop's clock (CLOCK_MONOTONIC, as
`time.perf_counter`), and `turn.timeline()` hands a turn out as plain data, so
the benchmark (bench/) times these same satellites from another process.

To add a kind: subclass `SimulatedSatellite`, set its class attributes and
implement `on_reply_event` with the real satellite's rule (start playback with
`self.play(...)`), and add it to `KINDS`.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
import functools
import importlib.util
import io
import itertools
import logging
from pathlib import Path
from typing import Any, ClassVar, Protocol
import wave

import homeassistant.components
from homeassistant.components import tts
from homeassistant.components.assist_pipeline import PipelineEvent, PipelineEventType
from homeassistant.components.assist_pipeline.select import AssistPipelineSelect
from homeassistant.components.assist_satellite import (
    AssistSatelliteConfiguration,
    AssistSatelliteEntity,
)
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import EntityPlatform

from tests.fakes.audio_samples import silence, speech_like

_LOGGER = logging.getLogger(__name__)

SATELLITE_RATE = 16000
"""What every satellite kind streams to the pipeline: PCM16 mono."""
_FRAME_BYTES = 320  # 10 ms at 16 kHz


def spoken_utterance() -> bytes:
    """The user's turn as a satellite records it: a second of speech between silences."""
    return (
        silence(0.2, SATELLITE_RATE)
        + speech_like(1.0, SATELLITE_RATE)
        + silence(1.0, SATELLITE_RATE)
    )


type UrlReader = Callable[[str], AsyncIterator[bytes]]
"""Fetches a path of Home Assistant's HTTP API (a TTS URL), yielding the body as it arrives."""


@dataclass(frozen=True)
class ReplyFormat:
    """The reply format a satellite asks Home Assistant's TTS manager for."""

    extension: str | None
    """None: the satellite asks for nothing (the engine's default)."""
    sample_rate: int | None = None
    channels: int = 1
    sample_bytes: int = 2

    def tts_options(self) -> dict[str, Any] | None:
        """As the satellite sets `tts_options` (None: no wish)."""
        if self.extension is None:
            return None
        options: dict[str, Any] = {tts.ATTR_PREFERRED_FORMAT: self.extension}
        if self.sample_rate:
            options |= {
                tts.ATTR_PREFERRED_SAMPLE_RATE: self.sample_rate,
                tts.ATTR_PREFERRED_SAMPLE_CHANNELS: self.channels,
                tts.ATTR_PREFERRED_SAMPLE_BYTES: self.sample_bytes,
            }
        return options


class Player:
    """A satellite's speaker: every reply byte it received, in order, with the loop's time.

    `raw_pcm`: the bytes are PCM16 mono at `sample_rate` (what Home Assistant streams
    to ESPHome speakers and Wyoming satellites); otherwise they are a file as
    fetched (WAV, FLAC, ...), to be decoded by its own header.
    """

    def __init__(self, *, raw_pcm: bool, sample_rate: int | None = None) -> None:
        self.raw_pcm = raw_pcm
        self.sample_rate = sample_rate
        self.started_by: str | None = None
        """The pipeline event on which the satellite started playing (fetching, streaming)."""
        self.started_at: float | None = None
        self.chunks: list[tuple[float, bytes]] = []
        self.ended_at: float | None = None
        self.error: str | None = None
        """Why playback failed, as the real satellite would have logged it."""
        self.listeners: list[Callable[[str, Any], None]] = []
        """Called with ("start", event type), ("audio", bytes) and ("end", error)."""
        self._changed = asyncio.Condition()

    @property
    def data(self) -> bytes:
        return b"".join(chunk for _, chunk in self.chunks)

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def start(self, started_by: str) -> None:
        self.started_by = started_by
        self.started_at = asyncio.get_running_loop().time()
        self._tell("start", started_by)

    async def receive(self, chunk: bytes) -> None:
        if chunk:
            self.chunks.append((asyncio.get_running_loop().time(), chunk))
            self._tell("audio", chunk)
            await self._notify()

    async def end(self, error: str | None = None) -> None:
        self.error = error
        self.ended_at = asyncio.get_running_loop().time()
        self._tell("end", error)
        await self._notify()

    def _tell(self, what: str, detail: Any) -> None:
        for listener in self.listeners:
            listener(what, detail)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_change(self, seen: int, timeout_s: float) -> bool:
        """Until more than `seen` chunks arrived or playback ended; False on timeout."""
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(lambda: len(self.chunks) > seen or self.ended)
        except TimeoutError:
            return False
        return True

    def timeline(self) -> dict[str, Any]:
        """What the player got, as plain data (the bytes in base64)."""
        return {
            "raw_pcm": self.raw_pcm,
            "sample_rate": self.sample_rate,
            "started_by": self.started_by,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "error": self.error,
            "chunks": [[at, base64.b64encode(chunk).decode()] for at, chunk in self.chunks],
        }

    @classmethod
    def from_timeline(cls, data: dict[str, Any]) -> Player:
        """The player `timeline()` described, in another process."""
        player = cls(raw_pcm=data["raw_pcm"], sample_rate=data["sample_rate"])
        player.started_by, player.started_at = data["started_by"], data["started_at"]
        player.ended_at, player.error = data["ended_at"], data["error"]
        player.chunks = [(at, base64.b64decode(chunk)) for at, chunk in data["chunks"]]
        return player

    def gaps_s(self) -> list[float]:
        """Silences of the stream: from its start to the first chunk, between chunks, to its end."""
        if self.started_at is None:
            return []
        times = [self.started_at, *(at for at, _ in self.chunks)]
        if self.ended_at is not None:
            times.append(self.ended_at)
        return [later - earlier for earlier, later in itertools.pairwise(times)]


@dataclass
class SatelliteTurn:
    """One run of a satellite, from its spoken audio to the end of its reply."""

    kind: str
    player: Player
    events: list[dict[str, Any]] = field(default_factory=list)
    """Pipeline events as the satellite saw them: {"type": ..., "data": ..., "at": loop time}."""
    mic_sent_at: list[float] = field(default_factory=list)
    """When each 10 ms frame of the user's audio went to the pipeline (loop time)."""
    run: asyncio.Task[Any] | None = None
    """The pipeline run (it ends at run-end; playback may go on)."""
    playback: asyncio.Task[None] | None = None
    listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    """Called with each pipeline event as it is added."""

    def add_event(self, event_type: str, data: dict[str, Any] | None) -> None:
        event = {"type": event_type, "data": data, "at": asyncio.get_running_loop().time()}
        self.events.append(event)
        for listener in self.listeners:
            listener(event)

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [event["data"] or {} for event in self.events if event["type"] == event_type]

    def one(self, event_type: str) -> dict[str, Any]:
        [data] = self.of_type(event_type)
        return data

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def timeline(self) -> dict[str, Any]:
        """The turn as plain data: event types and times, the microphone's frame times,
        the conversation, and what the player got."""
        started = self.of_type("run-start")
        return {
            "kind": self.kind,
            "conversation_id": (started[0].get("conversation_id") if started else None),
            "events": [[event["type"], event["at"]] for event in self.events],
            "mic_sent_at": self.mic_sent_at,
            "player": self.player.timeline(),
        }

    async def finished(self, timeout_s: float = 20.0) -> None:
        """Until the run and the playback it started have ended (fails after `timeout_s`)."""
        try:
            async with asyncio.timeout(timeout_s):
                if self.run is not None:
                    await self.run
                if self.playback is not None:
                    await self.playback
        except TimeoutError:
            state = "the reply stream did not end" if self.run and self.run.done() else "no run-end"
            raise AssertionError(
                f"{self.kind}: {state} within {timeout_s}s (pipeline events: {self.types}, "
                f"{len(self.player.chunks)} chunks played)"
            ) from None


class Satellite(Protocol):
    """What a test drives: one satellite of one kind."""

    kind: str
    reply_format: ReplyFormat
    start_rule: str
    uses_continue_conversation: bool

    async def start_turn(self, audio: bytes) -> SatelliteTurn:
        """Start a run with `audio` (PCM16 mono 16 kHz) as the user's speech."""
        ...


async def spoken(
    audio: bytes, *, real_time: bool = False, sent_at: list[float] | None = None
) -> AsyncIterator[bytes]:
    """The user's audio in 10 ms frames, as satellites stream it.

    `real_time`: each frame goes when a microphone would have recorded it (what a
    provider's voice detection needs to end the turn when a real one would).
    `sent_at` gets each frame's loop time as it is handed over.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    for number, start in enumerate(range(0, len(audio), _FRAME_BYTES)):
        if real_time:
            await asyncio.sleep(max(0.0, started + (number + 1) * 0.01 - loop.time()))
        if sent_at is not None:
            sent_at.append(loop.time())
        yield audio[start : start + _FRAME_BYTES]
        if not real_time:
            await asyncio.sleep(0)


class SimulatedSatellite(AssistSatelliteEntity):
    """An Assist satellite entity of one real kind: its format, its rule for starting playback."""

    kind: ClassVar[str]
    platform_name: ClassVar[str]
    """The entity registry platform (the real satellite's integration)."""
    reply_format: ClassVar[ReplyFormat]
    start_rule: ClassVar[str]
    uses_continue_conversation: ClassVar[bool] = False
    has_media_player: ClassVar[bool] = False

    _attr_has_entity_name = True
    _attr_name = None

    def __init__(self, unique_id: str, device_info: DeviceInfo, read_url: UrlReader) -> None:
        self._attr_unique_id = unique_id
        self._attr_device_info = device_info
        self._read_url = read_url
        self._tts_output: dict[str, Any] | None = None
        self.turn: SatelliteTurn | None = None
        self.pipeline_select: AssistPipelineSelect | None = None

    @property
    def tts_options(self) -> dict[str, Any] | None:
        return self.reply_format.tts_options()

    @callback
    def async_get_configuration(self) -> AssistSatelliteConfiguration:
        return AssistSatelliteConfiguration(
            available_wake_words=[], active_wake_words=[], max_active_wake_words=0
        )

    async def async_set_configuration(self, config: AssistSatelliteConfiguration) -> None:
        """Nothing to configure."""

    async def start_turn(self, audio: bytes, *, real_time: bool = False) -> SatelliteTurn:
        """`real_time`: the audio goes at a microphone's pace (default: as fast as taken)."""
        turn = self.turn = SatelliteTurn(self.kind, self._new_player())
        self._tts_output = None
        mic = spoken(audio, real_time=real_time, sent_at=turn.mic_sent_at)
        turn.run = self.hass.async_create_task(
            self.async_accept_pipeline_from_satellite(mic), f"{self.kind} run"
        )
        return turn

    def _new_player(self) -> Player:
        return Player(raw_pcm=False)

    @callback
    def on_pipeline_event(self, event: PipelineEvent) -> None:
        if self.turn is None:
            return
        self.turn.add_event(str(event.type), event.data)
        if event.type is PipelineEventType.RUN_START and event.data:
            self._tts_output = event.data.get("tts_output")
        self.on_reply_event(event)

    def on_reply_event(self, event: PipelineEvent) -> None:
        """The real satellite's rule: start playback (`self.play`) on the right event."""
        raise NotImplementedError

    def play(self, started_by: PipelineEventType, chunks: AsyncIterator[bytes]) -> None:
        """Start playing `chunks` (at most once per turn) and record them in the player."""
        turn = self.turn
        assert turn is not None
        if turn.playback is not None:
            return
        turn.player.start(str(started_by))

        async def play() -> None:
            try:
                async for chunk in chunks:
                    await turn.player.receive(chunk)
            except Exception as err:  # the real satellite logs it and stops
                await turn.player.end(f"{type(err).__name__}: {err}")
            else:
                await turn.player.end()

        turn.playback = self.hass.async_create_background_task(play(), f"{self.kind} playback")

    def stream(self, token: str | None) -> tts.ResultStream | None:
        return tts.async_get_stream(self.hass, token) if token else None

    def _tts_end_stream(self, event: PipelineEvent) -> tts.ResultStream | None:
        """The reply's stream named by a `tts-end` event, if it has one."""
        return self.stream((_tts_output(event) or {}).get("token"))


def _tts_output(event: PipelineEvent) -> dict[str, Any] | None:
    return (event.data or {}).get("tts_output")


def _starts_streaming(event: PipelineEvent) -> bool:
    return (
        event.type is PipelineEventType.INTENT_PROGRESS
        and bool(event.data)
        and bool(event.data.get("tts_start_streaming"))
    )


class EsphomeMediaPlayerSatellite(SimulatedSatellite):
    """An ESPHome satellite whose speaker is a media player (Voice PE): it fetches the URL."""

    kind = "esphome_media_player"
    platform_name = "esphome"
    has_media_player = True
    # Voice PE's media player announces FLAC 48 kHz mono 16-bit for announcements.
    reply_format = ReplyFormat("flac", 48000)
    start_rule = "fetches the run-start URL at intent-progress tts_start_streaming, else at tts-end"
    uses_continue_conversation = True

    def on_reply_event(self, event: PipelineEvent) -> None:
        if _starts_streaming(event) and self._tts_output:
            self.play(event.type, self._read_url(self._tts_output["url"]))
        elif event.type is PipelineEventType.TTS_END and (tts_output := _tts_output(event)):
            self.play(event.type, self._read_url(tts_output["url"]))


class EsphomeSpeakerSatellite(SimulatedSatellite):
    """An ESPHome satellite with a plain speaker: Home Assistant streams PCM to it at tts-end."""

    kind = "esphome_speaker"
    platform_name = "esphome"
    reply_format = ReplyFormat("wav", 16000)
    start_rule = "Home Assistant streams tts.async_get_stream(token) to it at tts-end only"
    uses_continue_conversation = True

    def _new_player(self) -> Player:
        return Player(raw_pcm=True, sample_rate=16000)

    def on_reply_event(self, event: PipelineEvent) -> None:
        if event.type is PipelineEventType.TTS_END and (stream := self._tts_end_stream(event)):
            self.play(event.type, _esphome_speaker_chunks(stream))


async def _esphome_speaker_chunks(stream: tts.ResultStream) -> AsyncIterator[bytes]:
    """`_stream_tts_audio`: Home Assistant's own WAV parser, 512-sample chunks.

    Not its real-time pacing (it keeps ~384 ms ahead of the device): that only
    spreads later chunks, it never sends the first one sooner or later.
    """
    if stream.extension != "wav":
        raise ValueError(f"Only WAV audio can be streamed, got {stream.extension}")
    async for chunk, is_last in _esphome_stream_wav()(
        stream.async_stream_result(),
        expected_format="pcm",
        expected_channels=1,
        expected_width=2,
        expected_sample_rate=16000,
        samples_per_chunk=512,
    ):
        yield chunk
        if is_last:
            break


@functools.cache
def _esphome_stream_wav() -> Callable[..., AsyncIterator[tuple[bytes, bool]]]:
    """`homeassistant.components.esphome.wav_parser.stream_wav`, loaded from its file.

    Importing it as a module would import the esphome integration, which needs
    aioesphomeapi; the parser itself needs nothing.
    """
    path = Path(homeassistant.components.__path__[0]) / "esphome" / "wav_parser.py"
    spec = importlib.util.spec_from_file_location("_esphome_wav_parser", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stream_wav: Callable[..., AsyncIterator[tuple[bytes, bool]]] = module.stream_wav
    return stream_wav


class WyomingSatellite(SimulatedSatellite):
    """A Wyoming satellite: Home Assistant streams AudioChunk events, early when it may."""

    kind = "wyoming"
    platform_name = "wyoming"
    reply_format = ReplyFormat("wav", 22050)
    start_rule = "streams tts.async_get_stream at intent-progress tts_start_streaming, else tts-end"

    def _new_player(self) -> Player:
        return Player(raw_pcm=True)

    def on_reply_event(self, event: PipelineEvent) -> None:
        if _starts_streaming(event):
            stream = self.stream((self._tts_output or {}).get("token"))
        elif event.type is PipelineEventType.TTS_END:
            stream = self._tts_end_stream(event)
        else:
            return
        if stream is not None:
            self.play(event.type, self._audio_chunks(stream))

    async def _audio_chunks(self, stream: tts.ResultStream) -> AsyncIterator[bytes]:
        """`_stream_tts`: the WAV header once 44 bytes parse, then AudioChunks of <= 2048 bytes."""
        if stream.extension != "wav":
            raise ValueError(f"Cannot stream audio format to satellite: {stream.extension}")
        header = b""
        started = False
        async for data in stream.async_stream_result():
            audio = data
            if not started:
                header += data
                if len(header) < 44 or (parsed := _parse_wav(header)) is None:
                    continue
                rate, audio = parsed  # AudioStart(rate=...): the satellite plays that rate
                assert self.turn is not None
                self.turn.player.sample_rate = rate
                started = True
            for start in range(0, len(audio), 2048):
                yield audio[start : start + 2048]


def _parse_wav(data: bytes) -> tuple[int, bytes] | None:
    """(rate, audio after the header) as the `wave` module reads it; None if it cannot yet."""
    try:
        with io.BytesIO(data) as wav_io, wave.open(wav_io, "rb") as wav_file:
            return wav_file.getframerate(), wav_file.readframes(wav_file.getnframes())
    except wave.Error, EOFError:
        return None


class VoipSatellite(SimulatedSatellite):
    """A VoIP phone: Home Assistant reads the whole reply at tts-end, then sends RTP."""

    kind = "voip"
    platform_name = "voip"
    reply_format = ReplyFormat("wav", 16000)
    start_rule = "reads tts.async_get_stream at tts-end (the phone hears it once all is read)"

    def on_reply_event(self, event: PipelineEvent) -> None:
        if event.type is PipelineEventType.TTS_END and (stream := self._tts_end_stream(event)):
            self.play(event.type, _voip_reads(stream))


async def _voip_reads(stream: tts.ResultStream) -> AsyncIterator[bytes]:
    """`_send_tts`: every chunk as Home Assistant reads it, then its checks of the whole WAV."""
    data = b""
    async for chunk in stream.async_stream_result():
        data += chunk
        yield chunk
    if stream.extension != "wav":
        raise ValueError(f"Only TTS WAV audio can be streamed, got {stream.extension}")
    with io.BytesIO(data) as wav_io, wave.open(wav_io, "rb") as wav_file:
        found = (wav_file.getframerate(), wav_file.getsampwidth(), wav_file.getnchannels())
    if found != (16000, 2, 1):
        raise ValueError(f"Expected rate/width/channels as 16000/2/1, got {found}")


class AssistDialog:
    """The frontend's Assist dialog: `assist_pipeline/run` over the websocket API; at run-start
    it opens the TTS URL in an <audio> element, which plays the bytes as they arrive.

    Not modelled: on an `error` event the dialog drops its audio element. Here the stream
    has to end by itself, as it must for satellites that do not.
    """

    kind = "assist_dialog"
    reply_format = ReplyFormat(None)
    start_rule = "opens the TTS URL at run-start"
    uses_continue_conversation = True

    def __init__(
        self,
        hass: HomeAssistant,
        run_pipeline: Callable[[bytes, Callable[[dict[str, Any]], None]], Awaitable[Any]],
        read_url: UrlReader,
    ) -> None:
        self._hass = hass
        self._run_pipeline = run_pipeline
        self._read_url = read_url

    async def start_turn(self, audio: bytes) -> SatelliteTurn:
        turn = SatelliteTurn(self.kind, Player(raw_pcm=False))

        def on_event(event: dict[str, Any]) -> None:
            turn.add_event(event["type"], event["data"])
            if event["type"] == "run-start" and turn.playback is None:
                turn.player.start("run-start")
                url = event["data"]["tts_output"]["url"]
                turn.playback = self._hass.async_create_background_task(
                    _record(turn.player, self._read_url(url)), "assist dialog playback"
                )

        turn.run = self._hass.async_create_task(self._run_pipeline(audio, on_event), "dialog")
        return turn


async def _record(player: Player, chunks: AsyncIterator[bytes]) -> None:
    try:
        async for chunk in chunks:
            await player.receive(chunk)
    except Exception as err:  # the audio element reports an error and stops
        await player.end(f"{type(err).__name__}: {err}")
    else:
        await player.end()


KINDS: dict[str, type[SimulatedSatellite]] = {
    kind.kind: kind
    for kind in (
        EsphomeMediaPlayerSatellite,
        EsphomeSpeakerSatellite,
        WyomingSatellite,
        VoipSatellite,
    )
}
"""The satellite entities by kind (the Assist dialog is a websocket client, not an entity)."""


async def async_add_satellite(
    hass: HomeAssistant,
    kind: type[SimulatedSatellite],
    entry: ConfigEntry,
    read_url: UrlReader,
    pipeline_name: str | None,
) -> SimulatedSatellite:
    """Add a satellite of `kind` on a device of its own, its pipeline set to `pipeline_name`
    (None: the preferred one, until `pipeline_select` picks another).

    Registered like the real one: the satellite and its pipeline select under the
    kind's platform; an ESPHome media-player device also gets the registry entry of
    an `esphome` media player.
    """
    unique_id = f"{kind.kind}-{entry.entry_id}"
    identifiers = {(entry.domain, unique_id)}
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers=identifiers, name=kind.kind
    )
    device_info = DeviceInfo(identifiers=identifiers)
    satellite = kind(unique_id, device_info, read_url)
    select = AssistPipelineSelect(hass, kind.platform_name, unique_id)
    select._attr_device_info = device_info  # as its integration would
    await _add_entities(hass, entry, "select", kind.platform_name, select)
    satellite._attr_pipeline_entity_id = select.entity_id
    await _add_entities(hass, entry, "assist_satellite", kind.platform_name, satellite)
    if kind.has_media_player:
        er.async_get(hass).async_get_or_create(
            "media_player",
            kind.platform_name,
            f"{unique_id}-media_player",
            config_entry=entry,
            device_id=device.id,
        )
    satellite.pipeline_select = select
    if pipeline_name is not None:
        await select.async_select_option(pipeline_name)
    return satellite


async def _add_entities(
    hass: HomeAssistant, entry: ConfigEntry, domain: str, platform_name: str, entity: Entity
) -> None:
    """Add `entity` through an entity platform of `platform_name` bound to `entry`."""
    platform = EntityPlatform(
        hass=hass,
        logger=_LOGGER,
        domain=domain,
        platform_name=platform_name,
        platform=None,
        scan_interval=timedelta(seconds=30),
        entity_namespace=None,
    )
    platform.config_entry = entry

    @callback
    def shutdown(_: Event) -> None:
        platform.async_shutdown()

    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, shutdown)
    await platform.async_add_entities([entity])
