"""The benchmark's turns, and the satellite that drives runs over the websocket API.

`TurnRecord` is one pipeline run: its audio (unique, so the fake knows whose
frame arrived), the reply the fake speaks, and when each thing happened
(time.perf_counter = CLOCK_MONOTONIC, in every process).

`Satellite` is what Home Assistant's frontend Assist dialog does (the
`assist_dialog` kind of tests/satellites.py): `assist_pipeline/run` from speech
to TTS, the user's audio as binary frames `[handler id][10 ms of PCM16 16 kHz]`
paced in real time until `stt-end`, the TTS URL opened at `run-start` and played
as it arrives, and the conversation continued on the next turn. The other
satellite kinds are Home Assistant entities and run inside Home Assistant's
process (tests/satellites.py); their turns come back as timelines
(`apply_timeline`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
import itertools
import json
import math
import time
from typing import Any

import aiohttp

from bench.fake import KEY_BYTES, BenchFakeServer, ExpectedFrame
from bench.wav import AudioStreamParser
from custom_components.realtime_assist.realtime.audio import MicrophoneResampler
from tests.fakes.audio_samples import silence, speech_like
from tests.satellites import AssistDialog, Player

SATELLITE_RATE = 16000
PROVIDER_RATE = 24000
FRAME_BYTES = 320  # 10 ms
FRAME_S = 0.01
FRAME_MS = 10
# What a Voice PE (ESPHome's voice_assistant) sends at a time: 32 ms of audio.
VOICE_PE_PACKET_MS = 32
LEAD_S = 0.1  # the silence before the user speaks
TURN_TIMEOUT_S = 10.0
END_GRACE_S = 1.0
FRAME_KEY_BYTES = 24  # as bench.ha_process
# Over Home Assistant's 60-character streaming gate.
REPLY_TEXT = (
    "Here is the benchmark's answer, long enough for the pipeline to stream it as it comes."
)
# Under it: Home Assistant alone would start such a reply only at the end of the turn.
SHORT_REPLY_TEXT = "Okay, the light is on."

_seeds = itertools.count(1000, 10)


@dataclass(eq=False)
class TurnRecord:
    """One pipeline run: its audio, and when each thing happened (time.perf_counter)."""

    phase: str
    satellite: int
    index: int
    frames: list[bytes]
    reply_pcm: bytes
    reply_text: str = REPLY_TEXT
    # The last 10 ms frame of the user's speech (silence follows).
    speech_end_frame: int = 0
    kind: str = AssistDialog.kind
    length: str = ""
    sent_at: list[float | None] = field(default_factory=list)
    arrived_at: list[float | None] = field(default_factory=list)
    ha_in_at: list[float | None] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    conversation_id: str | None = None
    transcript: str | None = None
    connection_created_at: float | None = None
    run_sent_at: float | None = None
    run_start_at: float | None = None
    speech_stopped_at: float | None = None
    transcript_done_at: float | None = None
    stt_end_at: float | None = None
    response_created_at: float | None = None
    first_delta_at: float | None = None
    stt_done_at: float | None = None
    tts_ours_at: float | None = None
    conversion_in_at: float | None = None
    conversion_out_at: float | None = None
    # Home Assistant starts ffmpeg, and ffmpeg (running) first reads our stream.
    conversion_asked_at: float | None = None
    conversion_reads_at: float | None = None
    tts_get_at: float | None = None
    # The first reply byte past the file's header, and the first of the model's voice
    # (`tests.reply_audio.voice_reached_at`), where the satellite's player got them.
    first_audio_at: float | None = None
    voice_at: float | None = None
    response_done_at: float | None = None
    tts_done_at: float | None = None
    run_end_at: float | None = None
    tts_audio_bytes: int = 0
    tts_sample_rate: int | None = None
    player: Player | None = None
    errors: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sent_at = [None] * len(self.frames)
        self.arrived_at = [None] * len(self.frames)
        self.ha_in_at = [None] * len(self.frames)

    @property
    def speech_end_at(self) -> float | None:
        """When the satellite sent the last frame of the user's speech."""
        return self.sent_at[self.speech_end_frame] if self.sent_at else None

    @property
    def audio(self) -> bytes:
        return b"".join(self.frames)

    @property
    def frame_keys(self) -> dict[str, int]:
        """The key the Home Assistant probe gives each frame."""
        return {frame[:FRAME_KEY_BYTES].hex(): i for i, frame in enumerate(self.frames)}

    def timeline(self) -> dict[str, Any]:
        """When things happened, in ms from the run request (for the JSON)."""
        origin = self.run_sent_at
        names = (
            "connection_created_at",
            "run_start_at",
            "speech_stopped_at",
            "transcript_done_at",
            "stt_done_at",
            "stt_end_at",
            "speech_end_at",
            "tts_get_at",
            "response_created_at",
            "first_delta_at",
            "tts_ours_at",
            "conversion_asked_at",
            "conversion_reads_at",
            "conversion_in_at",
            "conversion_out_at",
            "first_audio_at",
            "voice_at",
            "response_done_at",
            "tts_done_at",
            "run_end_at",
        )
        events = {
            name.removesuffix("_at"): round((value - origin) * 1000, 2)
            for name in names
            if origin is not None and (value := getattr(self, name)) is not None
        }
        first = self.arrived_at[0] if self.arrived_at else None
        if first is not None and origin is not None:
            events["first_frame_arrived"] = round((first - origin) * 1000, 2)
        return {
            "kind": self.kind,
            "length": self.length,
            "satellite": self.satellite,
            "turn": self.index,
            "errors": self.errors,
            "events": self.events,
            "frames_sent": sum(1 for t in self.sent_at if t is not None),
            "frames_forwarded": sum(1 for t in self.arrived_at if t is not None),
            "tts_audio_bytes": self.tts_audio_bytes,
            "ms_from_run_request": events,
        }

    @property
    def audio_in_s(self) -> float:
        return sum(1 for t in self.sent_at if t is not None) * FRAME_S

    @property
    def audio_out_s(self) -> float:
        return self.tts_audio_bytes / 2 / (self.tts_sample_rate or PROVIDER_RATE)


def make_turn(
    phase: str,
    satellite: int,
    index: int,
    *,
    speech_s: float,
    silence_ms: int,
    reply_s: float,
    reply_text: str = REPLY_TEXT,
    lead_s: float = LEAD_S,
) -> TurnRecord:
    """A turn with audio no other turn has (so the fake can tell whose frame arrived)."""
    seed = next(_seeds)
    tail_s = silence_ms / 1000 + 0.4  # the provider's VAD ends the turn well before this
    audio = (
        silence(lead_s, SATELLITE_RATE, seed=seed)
        + speech_like(speech_s, SATELLITE_RATE, seed=seed + 1)
        + silence(tail_s, SATELLITE_RATE, seed=seed + 2)
    )
    frames = [
        audio[i : i + FRAME_BYTES] for i in range(0, len(audio) - FRAME_BYTES + 1, FRAME_BYTES)
    ]
    reply = speech_like(reply_s, PROVIDER_RATE, seed=seed + 3)
    speech_end = last_speech_frame(speech_s, lead_s)
    return TurnRecord(phase, satellite, index, frames, reply, reply_text, speech_end)


def last_speech_frame(speech_s: float, lead_s: float = LEAD_S) -> int:
    """The index of the last 10 ms frame of the user's speech in a turn of `make_turn`."""
    return round((lead_s + speech_s) / FRAME_S) - 1


def register(turn: TurnRecord, fake: BenchFakeServer) -> None:
    """Tell the fake what each frame looks like once the integration resampled it."""
    resampler = MicrophoneResampler(SATELLITE_RATE, PROVIDER_RATE)
    for index, frame in enumerate(turn.frames):
        resampled = resampler.process(frame)
        key = resampled[-KEY_BYTES:]
        turn.keys.append(key)
        fake.expected[key] = ExpectedFrame(turn, index, len(resampled))


def unregister(turn: TurnRecord, fake: BenchFakeServer) -> None:
    for key in turn.keys:
        fake.expected.pop(key, None)
    turn.keys.clear()


class Satellite:
    """One voice satellite: a websocket to Home Assistant and a device id of its own."""

    def __init__(
        self, http: aiohttp.ClientSession, base_url: str, token: str, device_id: str
    ) -> None:
        self._http = http
        self._base_url = base_url
        self._token = token
        self.device_id = device_id
        self.conversation_id: str | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)

    async def connect(self) -> None:
        ws = await self._http.ws_connect(f"{self._base_url}/api/websocket", max_msg_size=0)
        assert (await ws.receive_json())["type"] == "auth_required"
        await ws.send_json({"type": "auth", "access_token": self._token})
        reply = await ws.receive_json()
        assert reply["type"] == "auth_ok", reply
        self._ws = ws

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def run_turn(
        self,
        turn: TurnRecord,
        pipeline_id: str,
        *,
        speed: float = 1.0,
        new_conversation: bool = False,
        packet_ms: int = FRAME_MS,
    ) -> None:
        """One pipeline run; `speed` paces the audio (1.0: real time, math.inf: a burst);
        the microphone's audio goes in packets of `packet_ms`."""
        ws = self._ws
        assert ws is not None
        msg_id = next(self._ids)
        message: dict[str, Any] = {
            "id": msg_id,
            "type": "assist_pipeline/run",
            "start_stage": "stt",
            "end_stage": "tts",
            "pipeline": pipeline_id,
            "input": {"sample_rate": SATELLITE_RATE},
            "device_id": self.device_id,
        }
        if self.conversation_id and not new_conversation:
            message["conversation_id"] = self.conversation_id
        sender: asyncio.Task[None] | None = None
        reader: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(TURN_TIMEOUT_S):
                turn.run_sent_at = time.perf_counter()
                await ws.send_str(json.dumps(message))
                while True:
                    msg = await ws.receive()
                    received_at = time.perf_counter()
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        raise RuntimeError(f"Home Assistant closed the websocket: {msg!r}")
                    data = json.loads(msg.data)
                    if data.get("id") != msg_id:
                        continue
                    if data["type"] == "result":
                        if not data["success"]:
                            turn.errors.append(f"run refused: {data.get('error')}")
                            return
                        continue
                    kind, payload = data["event"]["type"], data["event"].get("data") or {}
                    if kind != "intent-progress" or payload.get("tts_start_streaming"):
                        turn.events.append(kind)
                    if kind == "run-start":
                        turn.run_start_at = received_at
                        handler = payload["runner_data"]["stt_binary_handler_id"]
                        self.conversation_id = turn.conversation_id = payload.get("conversation_id")
                        sender = asyncio.create_task(
                            self._send_audio(turn, handler, speed, packet_ms)
                        )
                        # The Assist dialog plays the TTS URL from run-start (ha-assist-chat.ts).
                        url = payload["tts_output"]["url"]
                        reader = asyncio.create_task(self._read_tts(turn, url))
                    elif kind == "stt-end":
                        turn.stt_end_at = received_at
                        turn.transcript = payload["stt_output"]["text"]
                        if sender is not None:
                            sender.cancel()  # a satellite stops streaming when STT ends
                    elif kind == "error":
                        turn.errors.append(f"{payload.get('code')}: {payload.get('message')}")
                    elif kind == "run-end":
                        turn.run_end_at = received_at
                        if turn.stt_end_at is None and not turn.errors:
                            # What Home Assistant does when speech-to-text was cancelled.
                            turn.errors.append("the run ended without stt-end or an error")
                        break
                if reader is not None and not turn.errors:
                    await reader
        except TimeoutError:
            turn.errors.append("the turn timed out")
        finally:
            for task in (sender, reader):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _send_audio(
        self, turn: TurnRecord, handler: int, speed: float, packet_ms: int
    ) -> None:
        """The turn's audio in packets (each whole as the microphone filled it); a frame
        counts as sent with the packet that holds its last byte."""
        ws = self._ws
        assert ws is not None
        prefix = bytes([handler])
        audio = turn.audio
        packet_bytes = packet_ms * FRAME_BYTES // FRAME_MS
        loop = asyncio.get_running_loop()
        start = loop.time()
        interval = 0.0 if math.isinf(speed) else packet_ms / 1000 / speed
        for number, offset in enumerate(range(0, len(audio), packet_bytes)):
            delay = start + number * interval - loop.time()
            await asyncio.sleep(max(0.0, delay))
            end = offset + packet_bytes
            data = prefix + audio[offset:end]
            sent_at = time.perf_counter()
            for index in range(offset // FRAME_BYTES, min(end, len(audio)) // FRAME_BYTES):
                turn.sent_at[index] = sent_at
            await ws.send_bytes(data)
        # Out of audio and still no end of speech from the provider: end the stream.
        await asyncio.sleep(END_GRACE_S)
        await ws.send_bytes(prefix)

    async def _read_tts(self, turn: TurnRecord, url: str) -> None:
        """Play the reply as the dialog's <audio> element does: as it arrives."""
        turn.tts_get_at = time.perf_counter()
        player = turn.player = Player(raw_pcm=False)
        player.start("run-start")
        parser = AudioStreamParser()
        async with self._http.get(self._base_url + url) as response:
            if response.status != 200:
                turn.errors.append(f"TTS URL answered {response.status}")
                return
            async for chunk in response.content.iter_any():
                received_at = time.perf_counter()
                await player.receive(chunk)
                audio = parser.feed(chunk)
                if audio and turn.first_audio_at is None:
                    turn.first_audio_at = received_at
                turn.tts_audio_bytes += len(audio)
        await player.end()
        turn.tts_done_at = time.perf_counter()
        turn.tts_sample_rate = parser.sample_rate


def apply_timeline(turn: TurnRecord, timeline: dict[str, Any]) -> None:
    """Fill `turn` from the timeline of a satellite that ran inside Home Assistant
    (`tests.satellites.SatelliteTurn.timeline`; loop time there is CLOCK_MONOTONIC too)."""
    turn.kind = timeline["kind"]
    turn.conversation_id = timeline["conversation_id"]
    sent = timeline["mic_sent_at"][: len(turn.frames)]
    turn.sent_at = [*sent, *([None] * (len(turn.frames) - len(sent)))]
    firsts: dict[str, float] = {}
    for event_type, at in timeline["events"]:
        firsts.setdefault(event_type, at)
        turn.events.append(event_type)
    turn.run_sent_at = turn.run_start_at = firsts.get("run-start")
    turn.stt_end_at = firsts.get("stt-end")
    turn.run_end_at = firsts.get("run-end")
    player = turn.player = Player.from_timeline(timeline["player"])
    turn.tts_get_at = player.started_at
    turn.tts_done_at = player.ended_at
    if player.error:
        turn.errors.append(f"the satellite's playback failed: {player.error}")
    if "error" in firsts:
        turn.errors.append("the pipeline reported an error")
    parser = None if player.raw_pcm else AudioStreamParser()
    for at, chunk in player.chunks:
        if (parser.feed(chunk) if parser is not None else chunk) and turn.first_audio_at is None:
            turn.first_audio_at = at
