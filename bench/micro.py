"""Micro-benchmarks of the audio hot path's pieces, in isolation (CPU time of this thread).

They price the options behind the recommendations: resampling, base64, JSON
(stdlib vs orjson), the websocket message count (10, 20 or 40 ms of audio
per `input_audio_buffer.append`) and encoding the reply as FLAC.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
import functools
import json
import statistics
import threading
import time
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from bench.fake import BenchFakeServer
from custom_components.realtime_assist.realtime.audio import MicrophoneResampler, Resampler
from custom_components.realtime_assist.realtime.config import Endpoint, SessionConfig
from custom_components.realtime_assist.realtime.encoders import FlacEncoder
from custom_components.realtime_assist.realtime.providers import (
    PROVIDER_OPENAI,
    create_provider,
)
from custom_components.realtime_assist.realtime.providers.base import send_frame
from custom_components.realtime_assist.realtime.session import RealtimeSession
from tests.fakes.audio_samples import silence, speech_like


def _per_call_us(func: Callable[[], object], *, min_time_s: float = 0.2) -> float:
    """CPU microseconds per call (thread time, best of three batches)."""
    calls = 1
    while True:
        start = time.thread_time()
        for _ in range(calls):
            func()
        elapsed = time.thread_time() - start
        if elapsed >= min_time_s / 3:
            break
        calls *= 4
    best = elapsed
    for _ in range(2):
        start = time.thread_time()
        for _ in range(calls):
            func()
        best = min(best, time.thread_time() - start)
    return best / calls * 1e6


def _in_place_us(func: Callable[[], object], *, calls: int) -> float:
    """CPU microseconds per call 10 ms after the last (median): as a frame's code runs in
    place, with the CPU's caches gone cold meanwhile (README, "The rest")."""
    costs = []
    for _ in range(calls):
        time.sleep(0.01)
        start = time.thread_time()
        func()
        costs.append(time.thread_time() - start)
    return statistics.median(costs) * 1e6


def _cost(us_per_call: float, calls_per_audio_s: float) -> dict[str, float]:
    return {
        "us_per_call": round(us_per_call, 2),
        "ms_per_audio_s": round(us_per_call * calls_per_audio_s / 1000, 4),
    }


def _codec_costs(min_time_s: float) -> dict[str, Any]:
    per_call = functools.partial(_per_call_us, min_time_s=min_time_s)
    frame = speech_like(0.01, 16000)  # 10 ms at 16 kHz, as satellites send
    resampler = Resampler(16000, 24000)
    resampled = resampler.process(frame)
    passthrough = Resampler(24000, 24000)
    delta_pcm = speech_like(0.04, 24000)  # the fake's 40 ms output delta
    delta_event = {
        "type": "response.output_audio.delta",
        "event_id": "event_abcdefghijklmnopqrstu",
        "response_id": "resp_abcdefghijklmnopqrstu",
        "item_id": "item_abcdefghijklmnopqrstu",
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(delta_pcm).decode("ascii"),
    }
    delta_text = json.dumps(delta_event)
    delta_b64 = delta_event["delta"]

    def append_as_now() -> str:  # what OpenAIRealtimeConnection.send_audio does
        audio = base64.b64encode(resampled).decode("ascii")
        return f'{{"type":"input_audio_buffer.append","audio":"{audio}"}}'

    def append_json() -> str:
        audio = base64.b64encode(resampled).decode("ascii")
        return json.dumps({"type": "input_audio_buffer.append", "audio": audio})

    def append_orjson() -> bytes:
        audio = base64.b64encode(resampled).decode("ascii")
        return orjson.dumps({"type": "input_audio_buffer.append", "audio": audio})

    # The reply as Voice PE asks for it (FLAC, 48 kHz mono), one resampled delta per call.
    flac = FlacEncoder(48000)
    reply_40ms, reply_20ms = speech_like(0.04, 48000), speech_like(0.02, 48000)
    downsampler = Resampler(24000, 16000)
    microphone = MicrophoneResampler(16000, 24000)
    in_place_calls = 50 if min_time_s < 0.1 else 300
    return {
        "in: resample 16->24 kHz, microphone (linear, 10 ms frame; as sent)": _cost(
            per_call(lambda: microphone.process(frame)), 100
        ),
        "in: microphone resample in place (10 ms after the last call)": _cost(
            _in_place_us(lambda: microphone.process(frame), calls=in_place_calls), 100
        ),
        "in: resample 16->24 kHz, polyphase (10 ms frame)": _cost(
            per_call(lambda: resampler.process(frame)), 100
        ),
        "in: polyphase resample in place (10 ms after the last call)": _cost(
            _in_place_us(lambda: resampler.process(frame), calls=in_place_calls), 100
        ),
        "out: resample 24->16 kHz (40 ms delta)": _cost(
            per_call(lambda: downsampler.process(delta_pcm)), 25
        ),
        "in: append event, base64 + f-string (as now)": _cost(per_call(append_as_now), 100),
        "in: append event, base64 + json.dumps": _cost(per_call(append_json), 100),
        "in: append event, base64 + orjson.dumps": _cost(per_call(append_orjson), 100),
        "out: json.loads of a 40 ms delta event": _cost(
            per_call(lambda: json.loads(delta_text)), 25
        ),
        "out: orjson.loads of a 40 ms delta event": _cost(
            per_call(lambda: orjson.loads(delta_text)), 25
        ),
        "out: base64 decode of a 40 ms delta": _cost(
            per_call(lambda: base64.b64decode(delta_b64)), 25
        ),
        "out: pass-through resampler 24->24 kHz (40 ms)": _cost(
            per_call(lambda: passthrough.process(delta_pcm)), 25
        ),
        "out: FLAC encode, 48 kHz mono (40 ms delta)": _cost(
            per_call(lambda: flac.encode(reply_40ms)), 25
        ),
        "out: FLAC encode, 48 kHz mono (20 ms delta)": _cost(
            per_call(lambda: flac.encode(reply_20ms)), 50
        ),
    }


def _sink_server(ready: threading.Event, port: list[int]) -> None:
    """A websocket server on its own thread and loop, so only the sender's cost is timed.

    It ends when the client disconnects.
    """

    async def main() -> None:
        done = asyncio.Event()

        async def sink(ws: ServerConnection) -> None:
            async for _ in ws:
                pass
            done.set()

        async with serve(sink, "127.0.0.1", 0, max_size=None, compression=None) as server:
            port.append(server.sockets[0].getsockname()[1])
            ready.set()
            await done.wait()

    asyncio.run(main())


async def _send_costs(messages: int = 3000) -> dict[str, Any]:
    ready, port = threading.Event(), []
    thread = threading.Thread(target=_sink_server, args=(ready, port), daemon=True)
    thread.start()
    ready.wait(10)
    results: dict[str, Any] = {}
    try:
        async with connect(
            f"ws://127.0.0.1:{port[0]}", max_size=None, compression=None, user_agent_header=None
        ) as ws:
            for frame_ms in (10, 20, 40):
                pcm = speech_like(frame_ms / 1000, 24000)
                audio = base64.b64encode(pcm).decode("ascii")
                text = f'{{"type":"input_audio_buffer.append","audio":"{audio}"}}'
                for _ in range(200):  # warm up
                    await ws.send(text)
                start = time.thread_time()
                for _ in range(messages):
                    await ws.send(text)
                elapsed = time.thread_time() - start
                results[f"in: websocket send of a {frame_ms} ms append"] = _cost(
                    elapsed / messages * 1e6, 1000 / frame_ms
                )
                frame = text.encode()
                start = time.thread_time()
                for _ in range(messages):
                    await send_frame(ws, frame)
                elapsed = time.thread_time() - start
                results[f"in: send_frame of a {frame_ms} ms append (framed by us)"] = _cost(
                    elapsed / messages * 1e6, 1000 / frame_ms
                )
    finally:
        thread.join(5)
    return results


def _fake_server(ready: threading.Event, url: list[str], done: threading.Event) -> None:
    """The benchmark's fake provider on a thread of its own (its CPU is not timed)."""

    async def main() -> None:
        server = BenchFakeServer()
        server.validate = False
        await server.start()
        url.append(server.url)
        ready.set()
        await asyncio.to_thread(done.wait)
        await server.stop()

    asyncio.run(main())


async def _session_costs(frames: int = 1500) -> dict[str, Any]:
    """RealtimeSession.send_audio end to end, one frame per pass of the event loop:
    resample, base64, JSON, websocket send."""
    ready, done, url = threading.Event(), threading.Event(), []
    thread = threading.Thread(target=_fake_server, args=(ready, url, done), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        provider = create_provider(
            PROVIDER_OPENAI, Endpoint(api_key=BenchFakeServer.API_KEY, url=url[0])
        )
        session = RealtimeSession(provider, SessionConfig(model="gpt-realtime"))
        await session.start()
        try:
            frame = silence(0.01, 16000)  # quiet: the fake's VAD stays out of it
            for _ in range(200):
                await session.send_audio(frame)
            spent = 0.0
            for _ in range(frames):
                start = time.thread_time()
                await session.send_audio(frame)
                await asyncio.sleep(0)  # the pass ends: the session sends what it was handed
                spent += time.thread_time() - start
        finally:
            await session.close()
    finally:
        done.set()
        thread.join(5)
    return {
        "in: RealtimeSession.send_audio, fake provider on another thread": _cost(
            spent / frames * 1e6, 100
        )
    }


async def run(*, quick: bool = False) -> dict[str, Any]:
    """`quick`: a fraction of the samples (a smoke run; the figures are rougher)."""
    if quick:
        return _codec_costs(0.02) | await _send_costs(300) | await _session_costs(200)
    return _codec_costs(0.2) | await _send_costs() | await _session_costs()
