"""Home Assistant under benchmark, in a process of its own.

Not a test: `python -m bench` (scripts/bench) runs this file with pytest, so
Home Assistant 2026.10.4 starts exactly as in the unit tests (the
pytest-homeassistant-custom-component harness), with the differences that
make it behave like a production instance: the event loop is not in debug
mode and its clock is the C `time.monotonic` again, pytest's log capture is
off (`-p no:logging`) and the log level is WARNING. The satellites and the
fake provider live in the driver process, so this process's CPU time and
memory are Home Assistant's and the integration's alone.

The driver talks to it over a JSON-lines control connection on loopback
(`BENCH_CONTROL_PORT`): `ready` (HTTP port, access token, pipelines) goes
out first, then commands come in (memory, probes, a satellite's turn, a
proposed change, the do-nothing floor's script, profiling, tracemalloc,
closing sessions, stop).

Beside our agents, a pipeline of do-nothing speech-to-text, agent and
text-to-speech entities (bench/floor.py): Home Assistant's own pipeline cost.

Satellites of every entity kind (tests/satellites.py: ESPHome with a media
player, ESPHome with a speaker, Wyoming, VoIP) live here, as they live in a
real Home Assistant: `satellite_turn` runs one turn of one of them, with the
driver's audio at a microphone's pace, and returns its timeline.

Probes (`Probes`, installed only while the driver asks, so the leak and
profile runs see the integration unwrapped) note when each 16 kHz frame
enters the integration, when our speech-to-text returns (and what it
raised), when the first reply audio leaves the integration and Home
Assistant's TTS conversion (ffmpeg: 2026.10.4 runs it whenever a satellite
asks for a sample rate), the provider connects, replies read aloud, and the
thread CPU time of the input hot path where it runs.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
)
import contextlib
import cProfile
import gc
import json
import logging
import os
from pathlib import Path
import time
import tracemalloc
from typing import Any

# Home Assistant must import our package before the hass fixture changes sys.path.
import custom_components.realtime_assist  # noqa: F401  # isort: skip

from homeassistant.components import assist_pipeline, conversation, stt, tts as tts_component
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.components.tts.const import DATA_TTS_MANAGER
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.const import CONF_API_KEY, CONF_URL, Platform, __version__ as HA_VERSION
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from bench.floor import PLATFORM as FLOOR_PLATFORM, Floor, FloorScript, async_add_floor
from bench.wav import AudioStreamParser
from custom_components.realtime_assist import agent as realtime_agent, tts as realtime_tts
from custom_components.realtime_assist.agent_config import recommended_agent_options
from custom_components.realtime_assist.assist_bridge import current_conversation_id
from custom_components.realtime_assist.const import (
    CONF_KEEP_WARM,
    CONF_PROVIDER,
    CONF_SILENCE_DURATION_MS,
    DOMAIN,
    SUBENTRY_CONVERSATION,
)
from custom_components.realtime_assist.realtime.audio import StreamingResampler
from custom_components.realtime_assist.realtime.providers import PROVIDER_OPENAI
from custom_components.realtime_assist.realtime.providers.openai import OpenAIRealtimeConnection
from custom_components.realtime_assist.realtime.session import RealtimeSession
from custom_components.realtime_assist.stt import RealtimeSpeechToTextEntity
from tests.satellites import KINDS, SimulatedSatellite, async_add_satellite

# The agents the driver uses: the defaults (main runs), and two with a short
# VAD silence for the turn-start comparison, one keeping a spare session warm.
AGENTS: dict[str, dict[str, Any]] = {
    "Bench": {},
    "Bench warm": {CONF_KEEP_WARM: True, CONF_SILENCE_DURATION_MS: 200},
    "Bench cold": {CONF_KEEP_WARM: False, CONF_SILENCE_DURATION_MS: 200},
}
# Bytes of a 16 kHz frame that identify it (the driver computes the same key).
FRAME_KEY_BYTES = 24
# Per frame: `session.send_audio`, plus its share of the flush that sends frames
# handed in within one pass of the event loop.
WHOLE_INPUT_PATH = "session.send_audio + flush (whole input path)"
# Home Assistant's own LLM API (prompt and tools), as every LLM agent builds it per turn
# (a turn's second call hands over what the first built: counted with it).
LLM_API_PER_TURN = "per turn: HA's LLM API prompt and tools"
# A satellite's turn: its run and the playback it started.
SATELLITE_TURN_TIMEOUT_S = 30.0
# Objects counted to find what a turn or a conversation leaves behind.
COUNTED_TYPES = frozenset(
    {
        "RealtimeSession",
        "Subscription",
        "Turn",
        "OpenAIRealtimeConnection",
        "ClientConnection",
        "ChatLog",
        "ChatSession",
        "ResultStream",
        "TTSCache",
        "PipelineRun",
    }
)


class Probes:
    """Timestamps inside Home Assistant (time.perf_counter: CLOCK_MONOTONIC, as in the driver).

    Installed only while the driver asks for them, so the leak and profile
    runs see the integration unwrapped.
    """

    def __init__(self) -> None:
        self.enabled = False
        # First bytes of a 16 kHz frame -> when the integration got it.
        self.audio_in: dict[str, float] = {}
        # First bytes of a turn's first frame -> when our speech-to-text returned.
        self.stt_done: dict[str, float] = {}
        # Conversation id -> "ours" / "into_conversion" / "converted" (and each of them
        # "_pulled") -> when each reply stream's first audio went by (and when it was
        # first read); a conversation's turns follow one another.
        self.tts: dict[str, dict[str, list[float]]] = {}
        # Provider connects: (started, finished).
        self.connects: list[tuple[float, float]] = []
        # What our speech-to-text raised (Home Assistant hides CancelledError).
        self.stt_exceptions: list[str] = []
        # Replies the TTS had the model read aloud instead of playing the turn's audio.
        self.read_aloud = 0
        # CPU time of hot-path functions, measured where they run: label ->
        # [thread CPU seconds, wall seconds, calls].
        self.cpu: dict[str, list[float]] = {}
        self._undo: list[Callable[[], None]] = []

    def dump(self) -> dict[str, Any]:
        data = {
            "audio_in": self.audio_in,
            "stt_done": self.stt_done,
            "tts": self.tts,
            "connects": self.connects,
            "stt_exceptions": self.stt_exceptions,
            "read_aloud": self.read_aloud,
            "cpu": self.cpu,
        }
        self.audio_in, self.stt_done, self.tts, self.connects = {}, {}, {}, []
        self.stt_exceptions, self.read_aloud = [], 0
        self.cpu = {}
        return data

    def _account(self, label: str, started: float, wall: float, calls: int = 1) -> None:
        entry = self.cpu.setdefault(label, [0.0, 0.0, 0])
        entry[0] += time.thread_time() - started
        entry[1] += time.perf_counter() - wall
        entry[2] += calls

    def _timed[**P, R](self, label: str, function: Callable[P, R]) -> Callable[P, R]:
        """`function`, with the CPU and wall time of each call counted under `label`."""

        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            started, wall = time.thread_time(), time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self._account(label, started, wall)

        return timed

    def _timed_async[**P, R](
        self, label: str, function: Callable[P, Awaitable[R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        """`_timed` for a coroutine function: the time until its result."""

        async def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            started, wall = time.thread_time(), time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                self._account(label, started, wall)

        return timed

    def install(self, entry: MockConfigEntry) -> None:
        """Wrap the integration's audio entry and exit and Home Assistant's TTS conversion."""
        self.uninstall()
        self.enabled = True
        send_audio = RealtimeSession.send_audio
        flush_audio = RealtimeSession._flush_audio
        resample = StreamingResampler.process
        provider_send = OpenAIRealtimeConnection.send_audio
        provider_send_now = OpenAIRealtimeConnection.send_audio_now
        process_audio = RealtimeSpeechToTextEntity.async_process_audio_stream
        encoded = realtime_tts._encoded
        convert = tts_component._async_convert_audio
        provider = entry.runtime_data.provider
        connect = provider.connect
        tts_entity = realtime_tts.RealtimeTextToSpeechEntity
        read_aloud = tts_entity._read_aloud
        provide_llm_data = conversation.ChatLog.async_provide_llm_data
        service_tool = realtime_agent.async_agent_service_tool
        vocabulary = realtime_agent.async_home_vocabulary
        exposed_states = realtime_agent.exposed_states

        sending: set[RealtimeSession] = set()

        async def probed_send_audio(session: RealtimeSession, pcm: bytes) -> None:
            self.audio_in[pcm[:FRAME_KEY_BYTES].hex()] = time.perf_counter()
            started, wall = time.thread_time(), time.perf_counter()
            sending.add(session)
            try:
                await send_audio(session, pcm)
            finally:
                sending.discard(session)
            self._account(WHOLE_INPUT_PATH, started, wall)

        def probed_flush_audio(session: RealtimeSession) -> None:
            if session in sending:  # a chunk that came alone, sent in `send_audio`: counted there
                flush_audio(session)
                return
            # The send of chunks that came together, when the loop's pass ends.
            started, wall = time.thread_time(), time.perf_counter()
            flush_audio(session)
            self._account(WHOLE_INPUT_PATH, started, wall, calls=0)

        def probed_resample(resampler: StreamingResampler, pcm: bytes) -> bytes:
            started, wall = time.thread_time(), time.perf_counter()
            try:
                return resample(resampler, pcm)
            finally:
                kind = type(resampler).__name__
                label = f"{kind}.process {resampler.rate_in}->{resampler.rate_out}"
                self._account(label, started, wall)

        async def probed_process_audio(
            entity: RealtimeSpeechToTextEntity,
            metadata: stt.SpeechMetadata,
            stream: AsyncIterable[bytes],
        ) -> stt.SpeechResult:
            first: list[str] = []

            async def keyed() -> AsyncGenerator[bytes]:
                async for chunk in stream:
                    if not first:
                        first.append(chunk[:FRAME_KEY_BYTES].hex())
                    yield chunk

            try:
                result = await process_audio(entity, metadata, keyed())
            except BaseException as err:
                self.stt_exceptions.append(f"{type(err).__name__}: {err}")
                raise
            if first:
                self.stt_done[first[0]] = time.perf_counter()
            return result

        def probed_encoded(encoder: Any, audio: AsyncIterator[bytes]) -> AsyncGenerator[bytes]:
            return _time_first_audio(encoded(encoder, audio), "ours")

        def probed_convert(
            hass: HomeAssistant,
            from_extension: str | None,
            audio_input: Any,
            *args: Any,
            **kwargs: Any,
        ) -> AsyncGenerator[bytes]:
            if not hasattr(audio_input, "__anext__"):
                return convert(hass, from_extension, audio_input, *args, **kwargs)
            timed_input = _time_first_audio(audio_input, "into_conversion")
            converted = convert(hass, from_extension, timed_input, *args, **kwargs)
            return _time_first_audio(converted, "converted")

        def counted_read_aloud(entity: Any, *args: Any, **kwargs: Any) -> Any:
            self.read_aloud += 1
            return read_aloud(entity, *args, **kwargs)

        async def probed_provide_llm_data(chat_log: Any, *args: Any, **kwargs: Any) -> Any:
            started, wall = time.thread_time(), time.perf_counter()
            try:
                return await provide_llm_data(chat_log, *args, **kwargs)
            finally:
                reused = len(args) > 1 and isinstance(args[1], realtime_agent.BuiltAPI)
                self._account(LLM_API_PER_TURN, started, wall, calls=0 if reused else 1)

        async def probed_connect(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            connection = await connect(*args, **kwargs)
            self.connects.append((started, time.perf_counter()))
            return connection

        RealtimeSession.send_audio = probed_send_audio  # type: ignore[method-assign]
        RealtimeSession._flush_audio = probed_flush_audio  # type: ignore[method-assign]
        StreamingResampler.process = probed_resample  # type: ignore[method-assign]
        OpenAIRealtimeConnection.send_audio = self._timed_async(  # type: ignore[method-assign]
            "OpenAI send_audio (base64, JSON, websocket)", provider_send
        )
        OpenAIRealtimeConnection.send_audio_now = self._timed(  # type: ignore[method-assign]
            "OpenAI send_audio_now (base64, frame, write)", provider_send_now
        )
        RealtimeSpeechToTextEntity.async_process_audio_stream = probed_process_audio  # type: ignore[method-assign]
        realtime_tts._encoded = probed_encoded  # type: ignore[assignment]
        tts_component._async_convert_audio = probed_convert  # type: ignore[attr-defined]
        provider.connect = probed_connect  # type: ignore[method-assign]
        tts_entity._read_aloud = counted_read_aloud  # type: ignore[method-assign]
        conversation.ChatLog.async_provide_llm_data = probed_provide_llm_data  # type: ignore[method-assign]
        realtime_agent.async_agent_service_tool = self._timed_async(
            "per turn: our action tool", service_tool
        )
        realtime_agent.async_home_vocabulary = self._timed(
            "per turn: transcription vocabulary", vocabulary
        )
        realtime_agent.exposed_states = self._timed(
            "per turn: which entities are exposed", exposed_states
        )

        def undo() -> None:
            RealtimeSession.send_audio = send_audio  # type: ignore[method-assign]
            RealtimeSession._flush_audio = flush_audio  # type: ignore[method-assign]
            StreamingResampler.process = resample  # type: ignore[method-assign]
            OpenAIRealtimeConnection.send_audio = provider_send  # type: ignore[method-assign]
            OpenAIRealtimeConnection.send_audio_now = provider_send_now  # type: ignore[method-assign]
            RealtimeSpeechToTextEntity.async_process_audio_stream = process_audio  # type: ignore[method-assign]
            realtime_tts._encoded = encoded  # type: ignore[assignment]
            tts_component._async_convert_audio = convert  # type: ignore[attr-defined]
            del provider.connect
            tts_entity._read_aloud = read_aloud  # type: ignore[method-assign]
            conversation.ChatLog.async_provide_llm_data = provide_llm_data  # type: ignore[method-assign]
            realtime_agent.async_agent_service_tool = service_tool
            realtime_agent.async_home_vocabulary = vocabulary
            realtime_agent.exposed_states = exposed_states

        self._undo.append(undo)

    def uninstall(self) -> None:
        self.enabled = False
        while self._undo:
            self._undo.pop()()


PROBES = Probes()


async def _time_first_audio(chunks: AsyncIterator[bytes], label: str) -> AsyncGenerator[bytes]:
    """Pass a WAV or FLAC stream on; note when it is first read (`<label>_pulled`) and
    when its first audio byte (past the header) goes by (`<label>`).

    Filed under the conversation of the pipeline run that asked for the stream
    (the context it is created in), which the satellite's turn names too.
    Around Home Assistant's conversion, the output's first read is when Home
    Assistant starts ffmpeg, and the input's first read is when ffmpeg is
    running and asks for our audio.
    """
    conversation_id = current_conversation_id() or ""

    def note(what: str) -> None:
        if PROBES.enabled:
            streams = PROBES.tts.setdefault(conversation_id, {})
            streams.setdefault(what, []).append(time.perf_counter())

    note(f"{label}_pulled")
    parser = AudioStreamParser()
    seen = False
    async for chunk in chunks:
        if not seen and parser.feed(chunk):
            seen = True
            note(label)
        yield chunk


_SITE_PACKAGES = Path(pytest.__file__).parent.parent


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _tts_cache_bytes(hass: HomeAssistant) -> int:
    """Audio Home Assistant's TTS keeps in memory (every result, for five minutes)."""
    total = 0
    for cache in hass.data[DATA_TTS_MANAGER].mem_cache.values():
        total += len(getattr(cache, "_result_data", None) or b"")
        total += sum(len(part) for part in getattr(cache, "_partial_data", None) or [])
    return total


def _count_objects() -> dict[str, int]:
    counts = dict.fromkeys(sorted(COUNTED_TYPES), 0)
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in counts:
            counts[name] += 1
    return counts


class Controller:
    """Answers the driver's commands."""

    def __init__(
        self, hass: HomeAssistant, entry: MockConfigEntry, client: Any, floor: Floor
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.floor = floor
        self.client = client  # aiohttp's test client of Home Assistant's HTTP server
        self.profile: cProfile.Profile | None = None
        self._traced: tracemalloc.Snapshot | None = None
        self._satellites: dict[str, SimulatedSatellite] = {}

    @property
    def _agents(self) -> dict[str, Any]:
        return {
            self.entry.subentries[subentry_id].title: agent
            for subentry_id, agent in self.entry.runtime_data.agents.items()
        }

    def _sessions(self) -> dict[str, int]:
        return {title: len(agent.pool) for title, agent in self._agents.items()}

    def _spares(self) -> int:
        return sum(agent.pool._spare is not None for agent in self._agents.values())

    async def handle(self, command: str, args: dict[str, Any]) -> Any:
        handlers: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "memory": self._memory,
            "probes": self._probes,
            "dump_probes": self._dump_probes,
            "satellite_turn": self._satellite_turn,
            "profile_start": self._profile_start,
            "profile_stop": self._profile_stop,
            "trace_start": self._trace_start,
            "trace_stop": self._trace_stop,
            "close_sessions": self._close_sessions,
            "floor": self._floor,
        }
        return await handlers[command](args)

    async def _memory(self, args: dict[str, Any]) -> dict[str, Any]:
        await self.hass.async_block_till_done()
        gc.collect()
        result: dict[str, Any] = {
            "rss_kib": _rss_kib(),
            "tts_cache_kib": _tts_cache_bytes(self.hass) // 1024,
            "sessions": self._sessions(),
            "spares": self._spares(),
        }
        if args.get("objects"):
            result["objects"] = _count_objects()
        return result

    async def _probes(self, args: dict[str, Any]) -> None:
        if args["enabled"]:
            PROBES.install(self.entry)
        else:
            PROBES.uninstall()
        PROBES.dump()

    async def _dump_probes(self, args: dict[str, Any]) -> dict[str, Any]:
        return PROBES.dump()

    async def _satellite_turn(self, args: dict[str, Any]) -> dict[str, Any]:
        """One turn of a satellite of `kind` with the driver's audio, at a microphone's pace."""
        satellite = await self._satellite(args["kind"], args["pipeline"])
        turn = await satellite.start_turn(base64.b64decode(args["audio"]), real_time=True)
        timeline = {"failure": None}
        try:
            await turn.finished(SATELLITE_TURN_TIMEOUT_S)
        except AssertionError as err:
            timeline["failure"] = str(err)
        return turn.timeline() | timeline

    async def _satellite(self, kind: str, pipeline_id: str) -> SimulatedSatellite:
        """The satellite of `kind` (added on first use), its pipeline the one named."""
        if (satellite := self._satellites.get(kind)) is None:
            satellite_kind = KINDS[kind]
            entry = MockConfigEntry(domain=satellite_kind.platform_name)
            entry.add_to_hass(self.hass)
            pipeline = assist_pipeline.async_get_pipeline(self.hass, pipeline_id)
            satellite = await async_add_satellite(
                self.hass, satellite_kind, entry, self._read_url, pipeline.name
            )
            self._satellites[kind] = satellite
        return satellite

    async def _read_url(self, path: str) -> AsyncIterator[bytes]:
        """A media player's fetch of a TTS URL, over HTTP on loopback."""
        response = await self.client.get(path)
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {await response.text()}")
        async for chunk in response.content.iter_any():
            yield chunk

    async def _profile_start(self, args: dict[str, Any]) -> None:
        # CPU time, not wall time: waiting in epoll costs nothing.
        self.profile = cProfile.Profile(time.process_time)
        self.profile.enable()

    async def _profile_stop(self, args: dict[str, Any]) -> None:
        assert self.profile is not None
        self.profile.disable()
        self.profile.dump_stats(args["path"])
        self.profile = None

    async def _trace_start(self, args: dict[str, Any]) -> None:
        gc.collect()
        tracemalloc.start(int(args.get("frames", 1)))
        self._traced = tracemalloc.take_snapshot()

    async def _trace_stop(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Where Python memory grew since `trace_start`, biggest first."""
        assert self._traced is not None
        await self.hass.async_block_till_done()
        gc.collect()
        now = tracemalloc.take_snapshot()
        tracemalloc.stop()
        ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
        diff = now.filter_traces(ignore).compare_to(self._traced.filter_traces(ignore), "lineno")
        self._traced = None
        return [
            {
                "where": str(stat.traceback[0]).replace(str(_SITE_PACKAGES), ""),
                "size_diff_kib": round(stat.size_diff / 1024, 1),
                "count_diff": stat.count_diff,
            }
            for stat in diff[: int(args.get("top", 15))]
        ]

    async def _floor(self, args: dict[str, Any]) -> None:
        """The do-nothing floor's next runs (bench.floor)."""
        self.floor.script = FloorScript.make(**args)

    async def _close_sessions(self, args: dict[str, Any]) -> dict[str, Any]:
        """Close every conversation's session, as idle expiry would (spares stay)."""
        for agent in self._agents.values():
            for key in list(agent.pool._sessions):
                await agent.pool.close(key)
        return await self._memory({"objects": True})


@pytest.fixture(autouse=True)
async def enable_event_loop_debug() -> None:
    """Undo two harness settings a production Home Assistant does not have.

    Debug mode, and a Python-level `loop.time` (freezegun's hook) where
    Home Assistant binds the C `time.monotonic`.
    """
    loop = asyncio.get_running_loop()
    loop.set_debug(False)
    loop.time = time.monotonic  # type: ignore[method-assign]


@pytest.fixture
def expected_lingering_tasks() -> bool:
    """Sessions and ffmpeg readers may still be winding down when the run stops."""
    return True


@pytest.fixture
def expected_lingering_timers() -> bool:
    return True


async def _set_up_home(hass: HomeAssistant, entities: int) -> None:
    """Some exposed entities, so the model's prompt and tools are not trivially small."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(
        hass,
        "input_boolean",
        {"input_boolean": {f"bench_{i}": {"name": f"Bench switch {i}"} for i in range(entities)}},
    )
    await hass.async_block_till_done()
    for i in range(entities):
        async_expose_entity(hass, "conversation", f"input_boolean.bench_{i}", True)


def _agent_pipelines(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, str]:
    pipelines = assist_pipeline.async_get_pipelines(hass)
    result = {}
    for subentry_id, agent in entry.runtime_data.agents.items():
        engine = agent.entity_ids[Platform.CONVERSATION]
        [pipeline] = [p for p in pipelines if p.conversation_engine == engine]
        result[entry.subentries[subentry_id].title] = pipeline.id
    return result


async def test_home_assistant_under_benchmark(
    hass: HomeAssistant,
    hass_access_token: str,
    aiohttp_client: ClientSessionGenerator,
    socket_enabled: None,
    enable_custom_integrations: None,
) -> None:
    """Serve the driver until it says stop."""
    logging.getLogger().setLevel(logging.WARNING)
    loop = asyncio.get_running_loop()
    assert not loop.get_debug()
    await _set_up_home(hass, int(os.environ.get("BENCH_ENTITIES", "25")))
    assert await async_setup_component(hass, "websocket_api", {})
    # Before the HTTP server starts: it registers views (satellites are added later).
    assert await async_setup_component(hass, "assist_satellite", {})
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="OpenAI Realtime",
        data={
            CONF_PROVIDER: PROVIDER_OPENAI,
            CONF_API_KEY: os.environ["BENCH_API_KEY"],
            CONF_URL: os.environ["BENCH_FAKE_URL"],
        },
        subentries_data=[
            ConfigSubentryData(
                data=recommended_agent_options(PROVIDER_OPENAI) | options,
                subentry_type=SUBENTRY_CONVERSATION,
                title=title,
                unique_id=None,
            )
            for title, options in AGENTS.items()
        ],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    floor_entry = MockConfigEntry(domain=FLOOR_PLATFORM)
    floor_entry.add_to_hass(hass)
    floor = await async_add_floor(hass, floor_entry)
    # A real listening socket on 127.0.0.1 serving Home Assistant's HTTP app.
    client = await aiohttp_client(hass.http.app)
    controller = Controller(hass, entry, client, floor)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1",
        int(os.environ["BENCH_CONTROL_PORT"]),
        limit=64 * 1024 * 1024,  # a satellite's turn carries its audio
    )

    def send(message: dict[str, Any]) -> None:
        writer.write(json.dumps(message).encode() + b"\n")

    send(
        {
            "type": "ready",
            "pid": os.getpid(),
            "http_port": client.server.port,
            "token": hass_access_token,
            "pipelines": _agent_pipelines(hass, entry) | {"Floor": floor.pipeline_id},
            "ha_version": HA_VERSION,
            "loop_debug": loop.get_debug(),
        }
    )
    try:
        while line := await reader.readline():
            request = json.loads(line)
            if request["cmd"] == "stop":
                send({"type": "reply", "id": request["id"], "result": None})
                break
            try:
                result = await controller.handle(request["cmd"], request.get("args") or {})
            except Exception as err:  # the driver reports it; Home Assistant keeps serving
                send({"type": "reply", "id": request["id"], "error": repr(err)})
            else:
                send({"type": "reply", "id": request["id"], "result": result})
            await writer.drain()
    finally:
        await writer.drain()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        PROBES.uninstall()
