"""Satellites on the newest Home Assistant: a real Wyoming satellite, each reply format
satellites ask for (and no ffmpeg process in the way), and the start of every kind's reply.

The real Wyoming satellite is a server built with the `wyoming` package, added
through Home Assistant's own `wyoming` config flow. The other kinds are the
test satellites of tests/satellites.py, loaded into hass by the test-only
`satellite_harness` integration (tests/smoke/satellite_harness): Home
Assistant 2026.11 passes a reply in the format a satellite asks for straight
through, so here (unlike in the unit tests on 2026.10) every kind must get the
model's voice, not just start fetching it, while the fake holds the rest back.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
import contextlib
from typing import Any

import pytest
import pytest_asyncio
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, Satellite as SatelliteInfo
from wyoming.ping import Ping, Pong
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import RunSatellite
from wyoming.server import AsyncEventHandler, AsyncTcpServer
from wyoming.snd import Played

from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer, ScriptedResponse, SpeechItem
from tests.pacing_helpers import hold_like_a_real_model, release
from tests.reply_audio import (
    assert_plays,
    container_of,
    converts_with_ffmpeg,
    decode,
    reply_reached,
)
from tests.satellites import (
    KINDS,
    SATELLITE_RATE,
    Player,
    SatelliteTurn,
    WyomingSatellite,
    spoken_utterance,
)
from tests.smoke.flows import entry_pipeline, realtime_entry, start_flow
from tests.smoke.hass_process import HassClient, HassProcess, free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

SHORT_REPLY = "Okay, the light is on."
LONG_REPLY = (
    "Sure, the kitchen light is on now, at full brightness, just as you asked. "
    "Would you like me to dim it a little later?"
)
FRAME_BYTES = SATELLITE_RATE * 2 // 100  # 10 ms


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pipeline(
    hass_client: HassClient, fake_openai: FakeOpenAIRealtimeServer
) -> AsyncIterator[dict[str, Any]]:
    """The pipeline our entry created (the entry and the pipeline are removed afterwards)."""
    listed = await hass_client.ws({"type": "assist_pipeline/pipeline/list"})
    known = {p["id"] for p in listed["pipelines"]}
    async with realtime_entry(hass_client, fake_openai) as entry_id:
        ours = await entry_pipeline(hass_client, entry_id)
        try:
            yield ours
        finally:
            if ours["id"] not in known:
                await hass_client.ws(
                    {"type": "assist_pipeline/pipeline/delete", "pipeline_id": ours["id"]}
                )


@pytest.fixture(autouse=True)
def _unpaced(fake_openai: FakeOpenAIRealtimeServer) -> Iterator[None]:
    """Leave the session's fake as the next test expects it: instant, 40 ms chunks."""
    yield
    release(fake_openai.pacing)
    fake_openai.pacing.hold = None
    fake_openai.audio_chunk_ms = 40


@contextlib.contextmanager
def watching_ffmpeg(hass_process: HassProcess) -> Iterator[list[str]]:
    """The ffmpeg processes hass starts meanwhile, other than its version check."""
    started = len(hass_process.ffmpeg_invocations())
    conversions: list[str] = []
    yield conversions
    conversions += [
        args for args in hass_process.ffmpeg_invocations()[started:] if args != "-version"
    ]


def replies_so_far(fake: FakeOpenAIRealtimeServer) -> dict[int, int]:
    """How many replies each connection made so far (warm sessions opened before count too)."""
    return {id(conn): len(conn.responses) for conn in fake.connections}


def replies_since(fake: FakeOpenAIRealtimeServer, before: dict[int, int]) -> list[bytes]:
    """The audio of every reply the fake made since `replies_so_far` said `before`."""
    return [
        reply.pcm
        for conn in fake.connections
        for reply in conn.responses[before.get(id(conn), 0) :]
        if reply.pcm
    ]


# -- the satellites of tests/satellites.py, inside hass -------------------------------------


class HarnessSatellite:
    """A satellite of tests/satellites.py running inside hass, driven over the websocket API."""

    def __init__(self, hass_client: HassClient, kind: str, pipeline_name: str) -> None:
        satellite = KINDS[kind]
        self.kind = kind
        self.reply_format = satellite.reply_format
        self.start_rule = satellite.start_rule
        self._client = hass_client
        self._pipeline_name = pipeline_name

    async def start_turn(self) -> SatelliteTurn:
        """Its turn (the harness speaks `spoken_utterance()`), mirrored as it happens."""
        ready: asyncio.Future[SatelliteTurn] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._mirror(ready))
        await asyncio.wait({ready, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            if task.done():
                task.result()  # what went wrong
            task.cancel()
            raise AssertionError(f"the satellite harness did not start a turn of {self.kind}")
        turn = ready.result()
        turn.run = task
        return turn

    async def _mirror(self, ready: asyncio.Future[SatelliteTurn]) -> None:
        async with self._client.websocket() as ws:
            command = {"type": "satellite_harness/run", "kind": self.kind}
            await ws.send_json({"id": 1, **command, "pipeline": self._pipeline_name})
            result = await ws.receive_json()
            assert result["success"], result
            player = Player(raw_pcm=result["result"]["raw_pcm"])
            player.sample_rate = result["result"]["sample_rate"]
            turn = SatelliteTurn(self.kind, player)
            ready.set_result(turn)
            while "done" not in (message := (await ws.receive_json())["event"]):
                if "pipeline" in message:
                    turn.add_event(message["pipeline"], message["data"])
                    continue
                player.sample_rate = message["sample_rate"]  # Wyoming: once the header parsed
                if message["player"] == "start":
                    player.start(message["detail"])
                elif message["player"] == "audio":
                    await player.receive(base64.b64decode(message["detail"]))
                else:
                    await player.end(message["detail"])


# -- a real Wyoming satellite ---------------------------------------------------------------


class WyomingPeer(AsyncEventHandler):
    """Home Assistant's connection to the satellite."""

    def __init__(
        self, satellite: RealWyomingSatellite, reader: asyncio.StreamReader, writer: Any
    ) -> None:
        super().__init__(reader, writer)
        self.satellite = satellite

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self.satellite.info.event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif RunSatellite.is_type(event.type):
            self.satellite.peer = self
            self.satellite.connected.set()
        else:
            await self.satellite.heard(event)
        return True


class RealWyomingSatellite:
    """The satellite side of the Wyoming protocol, as wyoming-satellite speaks it: Info on
    Describe, then RunPipeline and the microphone's AudioStart/AudioChunk/AudioStop; the
    reply's AudioStart/AudioChunk/AudioStop come back and are played (`Played`)."""

    kind = "wyoming satellite"
    reply_format = WyomingSatellite.reply_format
    start_rule = WyomingSatellite.start_rule

    def __init__(self) -> None:
        self.port = free_port()
        self.info = Info(
            satellite=SatelliteInfo(
                name="Smoke satellite",
                attribution=Attribution(name="Realtime Assist tests", url=""),
                installed=True,
                description="A Wyoming satellite of the smoke test",
                version="1.0",
            )
        )
        self.connected = asyncio.Event()
        self.peer: WyomingPeer | None = None
        self.turn: SatelliteTurn | None = None
        self._server = AsyncTcpServer("127.0.0.1", self.port)

    async def __aenter__(self) -> RealWyomingSatellite:
        await self._server.start(lambda reader, writer: WyomingPeer(self, reader, writer))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._server.stop()

    async def start_turn(self, audio: bytes) -> SatelliteTurn:
        """Wake up: run the pipeline and stream the microphone in real time."""
        async with asyncio.timeout(20):
            await self.connected.wait()
        turn = self.turn = SatelliteTurn(self.kind, Player(raw_pcm=True))
        turn.run = asyncio.create_task(self._speak(audio))
        turn.playback = asyncio.create_task(self._played(turn.player))
        return turn

    async def _speak(self, audio: bytes) -> None:
        assert self.peer is not None
        mic = {"rate": SATELLITE_RATE, "width": 2, "channels": 1}
        await self.peer.write_event(
            RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS).event()
        )
        await self.peer.write_event(AudioStart(**mic).event())
        loop = asyncio.get_running_loop()
        started = loop.time()
        for number, start in enumerate(range(0, len(audio), FRAME_BYTES)):
            await asyncio.sleep(max(0.0, started + number * 0.01 - loop.time()))
            chunk = AudioChunk(audio=audio[start : start + FRAME_BYTES], **mic)
            await self.peer.write_event(chunk.event())
        await self.peer.write_event(AudioStop().event())

    @staticmethod
    async def _played(player: Player) -> None:
        while not player.ended:
            await player.wait_for_change(len(player.chunks), 60)

    async def heard(self, event: Event) -> None:
        """An event from Home Assistant: the reply's audio goes to the player."""
        if (turn := self.turn) is None:
            return
        turn.add_event(event.type, event.data)
        if AudioStart.is_type(event.type):
            turn.player.sample_rate = AudioStart.from_event(event).rate
            turn.player.start(event.type)
        elif AudioChunk.is_type(event.type):
            await turn.player.receive(AudioChunk.from_event(event).audio)
        elif AudioStop.is_type(event.type):
            await turn.player.end()
            assert self.peer is not None
            await self.peer.write_event(Played().event())


@contextlib.asynccontextmanager
async def wyoming_entry(
    hass_client: HassClient, satellite: RealWyomingSatellite, pipeline_name: str
) -> AsyncIterator[str]:
    """The satellite added through Home Assistant's wyoming config flow, its pipeline ours."""
    step = await start_flow(hass_client, "wyoming")
    created = await hass_client.rest("POST", step, {"host": "127.0.0.1", "port": satellite.port})
    assert created["type"] == "create_entry", created
    entry_id: str = created["result"]["entry_id"]
    try:
        registry = await hass_client.ws({"type": "config/entity_registry/list"})
        [select] = [
            e["entity_id"]
            for e in registry
            if e["config_entry_id"] == entry_id
            and e["entity_id"].startswith("select.")
            and e["unique_id"].endswith("-pipeline")
        ]
        await hass_client.rest(
            "POST",
            "/api/services/select/select_option",
            {"entity_id": select, "option": pipeline_name},
        )
        yield entry_id
    finally:
        await hass_client.rest("DELETE", f"/api/config/config_entries/entry/{entry_id}")


async def test_a_real_wyoming_satellite_hears_the_model_before_it_has_finished(
    hass_process: HassProcess,
    hass_client: HassClient,
    fake_openai: FakeOpenAIRealtimeServer,
    pipeline: dict[str, Any],
) -> None:
    """Added through the wyoming integration, it streams speech and gets the model's voice
    while the model still holds back the rest of its reply; no ffmpeg in between."""
    fake_openai.add_input_transcript("Turn on the kitchen light.")
    fake_openai.add_response(ScriptedResponse(SpeechItem(LONG_REPLY)))
    before = replies_so_far(fake_openai)
    async with (
        RealWyomingSatellite() as satellite,
        wyoming_entry(hass_client, satellite, pipeline["name"]),
    ):
        hold = hold_like_a_real_model(fake_openai)
        with watching_ffmpeg(hass_process) as conversions:
            turn = await satellite.start_turn(spoken_utterance())
            try:
                problem = await reply_reached(satellite, turn, held=hold.reached)
            finally:
                release(fake_openai.pacing)
                await turn.finished(30)
        assert problem is None, problem
        assert turn.player.sample_rate == 22050
        assert_plays(await decode(turn.player), replies_since(fake_openai, before))
        assert conversions == [], f"ffmpeg converted the reply: {conversions}"
    assert fake_openai.protocol_errors == []


@pytest.mark.parametrize(
    "kind",
    [
        "esphome_speaker",  # WAV 16 kHz
        "wyoming",  # WAV 22.05 kHz
        "esphome_media_player",  # FLAC 48 kHz mono, as Voice PE asks
    ],
)
async def test_no_ffmpeg_for_a_realtime_reply(
    hass_process: HassProcess,
    hass_client: HassClient,
    fake_openai: FakeOpenAIRealtimeServer,
    pipeline: dict[str, Any],
    kind: str,
) -> None:
    """The reply in the format the satellite asks for, produced without an ffmpeg process,
    decodes to the audio the fake sent."""
    fake_openai.add_response(ScriptedResponse(SpeechItem(LONG_REPLY)))
    fake_openai.pacing.speed = 2.0
    before = replies_so_far(fake_openai)
    satellite = HarnessSatellite(hass_client, kind, pipeline["name"])

    with watching_ffmpeg(hass_process) as conversions:
        turn = await satellite.start_turn()
        await turn.finished(30)

    assert "error" not in turn.types, turn.of_type("error")
    assert turn.player.error is None, turn.player.error
    assert conversions == [], f"ffmpeg converted the reply: {conversions}"
    decoded = await decode(turn.player)
    if not turn.player.raw_pcm:
        assert container_of(turn.player.data) == satellite.reply_format.extension
    assert decoded.rate == satellite.reply_format.sample_rate
    assert_plays(decoded, replies_since(fake_openai, before))


@pytest.mark.parametrize("kind", list(KINDS))
async def test_reply_starts_before_the_model_has_finished_on_the_newest_release(
    hass_process: HassProcess,
    hass_client: HassClient,
    fake_openai: FakeOpenAIRealtimeServer,
    pipeline: dict[str, Any],
    kind: str,
) -> None:
    """A short reply (under the pipeline's 60-character gate): the satellite has the model's
    voice, in its own format, while the model holds back the rest."""
    fake_openai.add_response(ScriptedResponse(SpeechItem(SHORT_REPLY)))
    before = replies_so_far(fake_openai)
    satellite = HarnessSatellite(hass_client, kind, pipeline["name"])
    hold = hold_like_a_real_model(fake_openai)

    turn = await satellite.start_turn()
    try:
        problem = await reply_reached(
            satellite,
            turn,
            held=hold.reached,
            only_start=converts_with_ffmpeg(satellite.reply_format, hass_process.version),
        )
    finally:
        release(fake_openai.pacing)
        await turn.finished(30)
    assert problem is None, problem
    assert_plays(await decode(turn.player), replies_since(fake_openai, before))
