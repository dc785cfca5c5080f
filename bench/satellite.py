"""Satellites that drive real Assist pipeline runs over Home Assistant's websocket API.

Like a voice satellite: `assist_pipeline/run` from speech to TTS, the user's
audio as binary frames `[handler id][10 ms of PCM16 16 kHz]` paced in real
time until `stt-end`, the reply read from the TTS URL as soon as the pipeline
says it streams, and the conversation continued on the next turn (Home
Assistant's own satellites keep their conversation id for five minutes).
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

from bench.fake import KEY_OFFSET, BenchFakeServer
from bench.wav import WavStreamParser
from custom_components.realtime_assist.realtime.audio import Resampler
from tests.fakes.audio_samples import silence, speech_like

SATELLITE_RATE = 16000
PROVIDER_RATE = 24000
FRAME_BYTES = 320  # 10 ms
FRAME_S = 0.01
TURN_TIMEOUT_S = 10.0
END_GRACE_S = 1.0
FRAME_KEY_BYTES = 24  # as bench.ha_process
REPLY_KEY_BYTES = 32
# Over 60 characters, so the pipeline streams the reply while the model speaks.
REPLY_TEXT = (
    "Here is the benchmark's answer, long enough for the pipeline to stream it as it comes."
)

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
    sent_at: list[float | None] = field(default_factory=list)
    arrived_at: list[float | None] = field(default_factory=list)
    ha_in_at: list[float | None] = field(default_factory=list)
    audio_gate: asyncio.Event = field(default_factory=asyncio.Event)
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
    tts_get_at: float | None = None
    first_audio_at: float | None = None
    response_done_at: float | None = None
    tts_done_at: float | None = None
    run_end_at: float | None = None
    tts_audio_bytes: int = 0
    tts_sample_rate: int | None = None
    errors: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sent_at = [None] * len(self.frames)
        self.arrived_at = [None] * len(self.frames)
        self.ha_in_at = [None] * len(self.frames)

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
            "tts_get_at",
            "response_created_at",
            "first_delta_at",
            "tts_ours_at",
            "conversion_in_at",
            "conversion_out_at",
            "first_audio_at",
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
            "satellite": self.satellite,
            "turn": self.index,
            "errors": self.errors,
            "events": self.events,
            "frames_sent": sum(1 for t in self.sent_at if t is not None),
            "frames_forwarded": sum(1 for t in self.arrived_at if t is not None),
            "tts_audio_bytes": self.tts_audio_bytes,
            "ms_from_run_request": events,
        }

    def reply_key(self, sample_rate: int, delta_bytes: int) -> str:
        """The first bytes of the reply as the integration hands it to Home Assistant."""
        first = Resampler(PROVIDER_RATE, sample_rate).process(self.reply_pcm[:delta_bytes])
        return first[:REPLY_KEY_BYTES].hex()

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
    lead_s: float = 0.1,
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
    return TurnRecord(phase, satellite, index, frames, reply)


def register(turn: TurnRecord, fake: BenchFakeServer) -> None:
    """Tell the fake what each frame looks like once the integration resampled it."""
    resampler = Resampler(SATELLITE_RATE, PROVIDER_RATE)
    for index, frame in enumerate(turn.frames):
        key = resampler.process(frame)[KEY_OFFSET:]
        turn.keys.append(key)
        fake.expected[key] = (turn, index)


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
        settle_s: float = 0.15,
        new_conversation: bool = False,
    ) -> None:
        """One pipeline run; `speed` paces the audio (1.0: real time, math.inf: a burst)."""
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
        tts_url: str | None = None
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
                        tts_url = payload["tts_output"]["url"]
                        self.conversation_id = turn.conversation_id = payload.get("conversation_id")
                        sender = asyncio.create_task(self._send_audio(turn, handler, speed))
                    elif kind == "stt-end":
                        turn.stt_end_at = received_at
                        turn.transcript = payload["stt_output"]["text"]
                        if sender is not None:
                            sender.cancel()  # a satellite stops streaming when STT ends
                    elif reader is None and (
                        (kind == "intent-progress" and payload.get("tts_start_streaming"))
                        or kind == "tts-end"
                    ):
                        assert tts_url is not None
                        reader = asyncio.create_task(self._read_tts(turn, tts_url, settle_s))
                    elif kind == "error":
                        turn.errors.append(f"{payload.get('code')}: {payload.get('message')}")
                    elif kind == "run-end":
                        turn.run_end_at = received_at
                        if turn.stt_end_at is None and not turn.errors:
                            # What Home Assistant does when speech-to-text was cancelled.
                            turn.errors.append("the run ended without stt-end or an error")
                        break
                if reader is not None:
                    await reader
        except TimeoutError:
            turn.errors.append("the turn timed out")
        finally:
            turn.audio_gate.set()
            for task in (sender, reader):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _send_audio(self, turn: TurnRecord, handler: int, speed: float) -> None:
        ws = self._ws
        assert ws is not None
        prefix = bytes([handler])
        loop = asyncio.get_running_loop()
        start = loop.time()
        interval = 0.0 if math.isinf(speed) else FRAME_S / speed
        for index, frame in enumerate(turn.frames):
            delay = start + index * interval - loop.time()
            await asyncio.sleep(max(0.0, delay))
            data = prefix + frame
            turn.sent_at[index] = time.perf_counter()
            await ws.send_bytes(data)
        # Out of audio and still no end of speech from the provider: end the stream.
        await asyncio.sleep(END_GRACE_S)
        await ws.send_bytes(prefix)

    async def _read_tts(self, turn: TurnRecord, url: str, settle_s: float) -> None:
        """Read the reply as a player does; let the model speak once the request is in."""
        asyncio.get_running_loop().call_later(settle_s, turn.audio_gate.set)
        turn.tts_get_at = time.perf_counter()
        parser = WavStreamParser()
        async with self._http.get(self._base_url + url) as response:
            if response.status != 200:
                turn.errors.append(f"TTS URL answered {response.status}")
                return
            async for chunk in response.content.iter_any():
                received_at = time.perf_counter()
                audio = parser.feed(chunk)
                if audio and turn.first_audio_at is None:
                    turn.first_audio_at = received_at
                turn.tts_audio_bytes += len(audio)
        turn.tts_done_at = time.perf_counter()
        turn.tts_sample_rate = parser.sample_rate
