"""`python -m bench` (scripts/bench): what Realtime Assist adds to a turn, costs, and how it scales.

Three parties, two processes, loopback only:
- the driver (this process): the fake OpenAI Realtime server (`bench.fake`,
  paced like a real model where latencies are measured: `--first-audio-ms`,
  `--model-speed`) and the websocket satellites (`bench.satellite`, the
  Assist dialog's way);
- Home Assistant 2026.10.4 with the integration (`bench/ha_process.py`, run
  by pytest in a subprocess), whose CPU time and memory are what we measure,
  with the satellite entities of tests/satellites.py inside it.
Both stamp events with time.perf_counter (CLOCK_MONOTONIC, one clock for the
whole machine; asyncio's loop time is the same clock), so latencies cross
the process boundary.

Phases (`--phases`): warm-up (every event schema-validated); one satellite
playing the model's own WAV; every satellite kind with a short and a long
reply, timed where its player gets the model's voice (bench/kinds.py), on
2026.10.4 and then (`newest`) on a real `hass` of the newest release, which
starts a process of its own (bench/newest.py); 5 and 20 satellites at once; the same turns
through ours and through a do-nothing STT, agent and TTS (`floor`,
bench/floor.py: what we add to Home Assistant's own pipeline); turn start with
a warm spare and with a cold connect; a 200-turn leak run; a profiled run;
micro-benchmarks. Probes inside Home Assistant (bench/ha_process.py) split
latencies into Home Assistant's part and ours; they are on in the latency
phases only (not in `floor`: they cost CPU of their own).

CPU is Home Assistant's process's alone (user + system of all its threads,
from the kernel's 10 ms ticks; ffmpeg, its child, apart), counted over each
phase's turns only: the websocket satellites connect before and close after
the window, and warm-up turns run outside it.

Results: a table on stdout, README-ready rows of Benchmarks' "The rest",
JSON (default bench-results/latest.json, git-ignored) with every turn's
timeline, and the cProfile dump next to it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
import contextlib
from dataclasses import dataclass, field
import datetime
import json
import os
from pathlib import Path
import platform
import random
import sys
import time
from typing import Any

import aiohttp
import psutil

from bench import kinds, micro, profile_report
from bench.fake import BenchFakeServer
from bench.newest import newest_host
from bench.report import floor_key, print_markdown, print_report
from bench.satellite import (
    FRAME_BYTES,
    FRAME_KEY_BYTES,
    FRAME_MS,
    FRAME_S,
    VOICE_PE_PACKET_MS,
    Satellite,
    TurnRecord,
    last_speech_frame,
    make_turn,
    register,
    unregister,
)
from bench.stats import ms, slope, summarize
from tests.fakes.loopback import ModelPacing

PROJECT_DIR = Path(__file__).resolve().parent.parent
# VAD silence of each agent (bench/ha_process.py AGENTS); the floor (bench/floor.py) is
# driven with the same audio as "Bench".
AGENT_SILENCE_MS = {"Bench": 500, "Bench warm": 200, "Bench cold": 200, "Floor": 500}
# The fake's VAD hears the end of speech this many 10 ms frames after the silence it
# waits for has been sent (it looks at 20 ms frames: 522 ms for 500 ms of silence).
FAKE_VAD_LAG_FRAMES = 2
# A turn of `drive` unless a phase asks otherwise: the user speaks, the model answers.
SPEECH_S = 0.5
REPLY_S = 1.0
# How long the floor phase watches Home Assistant's process do nothing (its idle CPU).
FLOOR_IDLE_S = 5.0
PHASES = (
    "single",
    "satellites",
    "newest",
    "scaling",
    "floor",
    "start",
    "leak",
    "profile",
    "micro",
)
READY_TIMEOUT_S = 180.0
CONTROL_TIMEOUT_S = 120.0


class Control:
    """The JSON-lines line to Home Assistant's process (it connects to us)."""

    def __init__(self) -> None:
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = 0
        self._server: asyncio.Server | None = None
        self._gone = False

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._on_client, "127.0.0.1", 0, limit=64 * 1024 * 1024
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        while line := await reader.readline():
            message = json.loads(line)
            if message["type"] == "ready" and not self.ready.done():
                self.ready.set_result(message)
            elif message["type"] == "reply" and (future := self._pending.pop(message["id"], None)):
                future.set_result(message)
        self._gone = True
        for future in self._pending.values():
            future.set_exception(ConnectionError("Home Assistant's process went away"))

    async def call(self, cmd: str, **args: Any) -> Any:
        assert self._writer is not None
        if self._gone:
            raise ConnectionError("Home Assistant's process went away")
        self._ids += 1
        future = asyncio.get_running_loop().create_future()
        self._pending[self._ids] = future
        self._writer.write(json.dumps({"id": self._ids, "cmd": cmd, "args": args}).encode() + b"\n")
        await self._writer.drain()
        async with asyncio.timeout(CONTROL_TIMEOUT_S):
            reply = await future
        if "error" in reply:
            raise RuntimeError(f"{cmd} failed in Home Assistant: {reply['error']}")
        return reply["result"]

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()


@dataclass
class Bench:
    """Everything a phase needs."""

    args: argparse.Namespace
    fake: BenchFakeServer
    control: Control
    http: aiohttp.ClientSession
    ha: dict[str, Any]
    process: psutil.Process
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ha['http_port']}"

    def cpu(self) -> tuple[float, float]:
        """CPU seconds of Home Assistant's process, and of its reaped children (ffmpeg)."""
        times = self.process.cpu_times()
        return times.user + times.system, times.children_user + times.children_system

    def pace(self, *, like_a_model: bool) -> None:
        """The fake's replies like a real model (`--first-audio-ms`, `--model-speed`), or at once.

        Latency phases pace: an instant reply hides every wait for its end.
        Cost and memory phases do not need to wait for it.
        """
        args = self.args
        self.fake.pacing = (
            ModelPacing(args.first_audio_ms / 1000, args.model_speed or None)
            if like_a_model
            else ModelPacing()
        )

    async def memory(self, *, objects: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = await self.control.call("memory", objects=objects)
        result["live_sessions"] = sum(result["sessions"].values())
        return result


@dataclass
class Drive:
    """The turns of one phase, with the CPU time they cost."""

    turns: list[TurnRecord]
    wall_s: float
    cpu_s: float
    children_cpu_s: float
    driver_cpu_s: float
    # Audio messages the provider got.
    appends: int

    @property
    def ok_turns(self) -> list[TurnRecord]:
        return [turn for turn in self.turns if not turn.errors]

    @property
    def audio_s(self) -> float:
        return sum(turn.audio_in_s + turn.audio_out_s for turn in self.ok_turns)


async def drive(
    bench: Bench,
    phase: str,
    *,
    satellites: int = 1,
    turns: int = 1,
    agent: str = "Bench",
    speed: float = 1.0,
    new_conversation: bool = False,
    jitter_s: float = 0.0,
    speech_s: float = SPEECH_S,
    reply_s: float = REPLY_S,
    after_turn: Callable[[int], Awaitable[None]] | None = None,
    packet_ms: int = FRAME_MS,
) -> Drive:
    """`satellites` satellites at once, each running `turns` pipeline runs one after another;
    their microphones send `packet_ms` at a time."""
    group = [
        Satellite(bench.http, bench.base_url, bench.ha["token"], f"bench-{phase}-{i}")
        for i in range(satellites)
    ]
    await asyncio.gather(*(satellite.connect() for satellite in group))
    pipeline_id = bench.ha["pipelines"][agent]
    records: list[TurnRecord] = []

    async def talk(index: int, satellite: Satellite) -> None:
        rng = random.Random(index)
        for number in range(turns):
            if jitter_s:
                await asyncio.sleep(rng.uniform(0, jitter_s))
            turn = make_turn(
                phase,
                index,
                number,
                speech_s=speech_s,
                silence_ms=AGENT_SILENCE_MS[agent],
                reply_s=reply_s,
            )
            register(turn, bench.fake)
            try:
                await satellite.run_turn(
                    turn,
                    pipeline_id,
                    speed=speed,
                    new_conversation=new_conversation,
                    packet_ms=packet_ms,
                )
            finally:
                unregister(turn, bench.fake)
            records.append(turn)
            if after_turn is not None:
                await after_turn(len(records))

    unmatched_before = bench.fake.unmatched_appends, bench.fake.unmatched_responses
    appends_before = bench.fake.appends
    driver = psutil.Process()
    driver_before = sum(driver.cpu_times()[:2])
    cpu_before, children_before = bench.cpu()
    started = time.perf_counter()
    try:
        await asyncio.gather(*(talk(i, satellite) for i, satellite in enumerate(group)))
    finally:
        wall_s = time.perf_counter() - started
        cpu_after, children_after = bench.cpu()
        driver_cpu_s = sum(driver.cpu_times()[:2]) - driver_before
        await asyncio.gather(*(satellite.close() for satellite in group))
    failed = [turn for turn in records if turn.errors]
    if failed:
        print(f"  {phase}: {len(failed)} of {len(records)} turns failed: {failed[0].errors}")
    unmatched = (
        bench.fake.unmatched_appends - unmatched_before[0],
        bench.fake.unmatched_responses - unmatched_before[1],
    )
    if any(unmatched):
        print(f"  {phase}: {unmatched[0]} appends and {unmatched[1]} responses matched no turn")
    return Drive(
        records,
        wall_s,
        cpu_after - cpu_before,
        children_after - children_before,
        driver_cpu_s,
        bench.fake.appends - appends_before,
    )


async def probed(
    bench: Bench,
    work: Callable[[], Awaitable[Drive]],
) -> tuple[Drive, dict[str, Any]]:
    """Run `work` with Home Assistant's probes on; attach their timestamps to the turns."""
    await bench.control.call("probes", enabled=True)
    try:
        result = await work()
    finally:
        dump = await bench.control.call("dump_probes")
        await bench.control.call("probes", enabled=False)
    audio_in: dict[str, float] = dump["audio_in"]
    for turn in result.turns:
        keys = turn.frame_keys
        for key, index in keys.items():
            turn.ha_in_at[index] = audio_in.get(key)
        first_frame = turn.frames[0][:FRAME_KEY_BYTES].hex()
        turn.stt_done_at = dump["stt_done"].get(first_frame)
        # A conversation's reply streams, in order: this turn's is the first to have
        # audio after the model's first audio of this turn.
        streams = dump["tts"].get(turn.conversation_id or "", {})
        turn.tts_ours_at = _first_after(streams.get("ours"), turn.first_delta_at)
        turn.conversion_in_at = _first_after(streams.get("into_conversion"), turn.first_delta_at)
        turn.conversion_out_at = _first_after(streams.get("converted"), turn.first_delta_at)
        turn.conversion_asked_at = _first_after(
            streams.get("converted_pulled"), turn.first_delta_at
        )
        turn.conversion_reads_at = _first_after(
            streams.get("into_conversion_pulled"), turn.first_delta_at
        )
    connects = [1000 * (end - start) for start, end in dump["connects"]]
    exceptions = dump["stt_exceptions"]
    if exceptions:
        print(f"  our speech-to-text raised {len(exceptions)} times: {exceptions[0]}")
    if dump["read_aloud"]:
        print(f"  {dump['read_aloud']} replies were read aloud instead of played")
    in_place = {
        label: {
            "calls": int(calls),
            "cpu_us_per_call": round(cpu / calls * 1e6, 1),
            "wall_us_per_call": round(wall / calls * 1e6, 1),
            "cpu_ms_per_audio_s": round(cpu * 1000 / result.audio_s, 3) if result.audio_s else None,
        }
        for label, (cpu, wall, calls) in dump["cpu"].items()
        if calls
    }
    return result, {
        "cpu_in_place": in_place,
        "connect_ms": summarize(connects),
        "stt_exceptions": exceptions,
        "replies_read_aloud": dump["read_aloud"],
    }


def _first_after(times: list[float] | None, after: float | None) -> float | None:
    return min((t for t in times or () if after is not None and t >= after), default=None)


def _values(values: list[float | None]) -> list[float]:
    return [value for value in values if value is not None]


def latencies(result: Drive) -> dict[str, Any]:
    """(1)-(3) and the turn start of every turn that went through, in milliseconds."""
    samples: dict[str, list[float | None]] = {
        name: []
        for name in (
            "audio_in_ms",
            "audio_in_home_assistant_ms",
            "audio_in_integration_ms",
            "turn_end_ms",
            "turn_end_integration_ms",
            "turn_end_home_assistant_ms",
            "audio_out_ms",
            "audio_out_integration_ms",
            "audio_out_conversion_ms",
            "audio_out_delivery_ms",
            "audio_out_without_conversion_ms",
            "first_frame_ms",
            "run_request_to_first_audio_ms",
        )
    }
    for turn in result.ok_turns:
        start = turn.arrived_at[0]
        samples["first_frame_ms"].append(ms(start, turn.sent_at[0]))
        samples["run_request_to_first_audio_ms"].append(ms(start, turn.run_sent_at))
        for sent, arrived, ha_in in zip(turn.sent_at, turn.arrived_at, turn.ha_in_at, strict=True):
            # Steady state: frames sent once the turn streams (not queued at its start).
            if sent is None or arrived is None or start is None or sent <= start:
                continue
            samples["audio_in_ms"].append(ms(arrived, sent))
            samples["audio_in_home_assistant_ms"].append(ms(ha_in, sent))
            samples["audio_in_integration_ms"].append(ms(arrived, ha_in))
        samples["turn_end_ms"].append(ms(turn.stt_end_at, turn.speech_stopped_at))
        samples["turn_end_integration_ms"].append(ms(turn.stt_done_at, turn.speech_stopped_at))
        samples["turn_end_home_assistant_ms"].append(ms(turn.stt_end_at, turn.stt_done_at))
        total = ms(turn.first_audio_at, turn.first_delta_at)
        conversion = ms(turn.conversion_out_at, turn.conversion_in_at)
        samples["audio_out_ms"].append(total)
        samples["audio_out_integration_ms"].append(ms(turn.tts_ours_at, turn.first_delta_at))
        samples["audio_out_conversion_ms"].append(conversion)
        samples["audio_out_delivery_ms"].append(
            ms(turn.first_audio_at, turn.conversion_out_at or turn.tts_ours_at)
        )
        if total is not None:
            samples["audio_out_without_conversion_ms"].append(total - (conversion or 0.0))
    summaries: dict[str, Any] = {
        "turns": len(result.turns),
        "failed_turns": len(result.turns) - len(result.ok_turns),
    }
    summaries |= {name: summarize(_values(values)) for name, values in samples.items()}
    summaries["turn_timelines"] = [turn.timeline() for turn in result.turns]
    return summaries


def cost(result: Drive, satellites: int) -> dict[str, Any]:
    audio_s = result.audio_s
    return {
        "satellites": satellites,
        "wall_s": round(result.wall_s, 2),
        "audio_in_s": round(sum(turn.audio_in_s for turn in result.ok_turns), 2),
        "audio_out_s": round(sum(turn.audio_out_s for turn in result.ok_turns), 2),
        "cpu_s": round(result.cpu_s, 3),
        "cpu_percent_of_one_core": round(100 * result.cpu_s / result.wall_s, 1),
        "cpu_ms_per_audio_s": round(1000 * result.cpu_s / audio_s, 3) if audio_s else None,
        "cpu_ms_per_turn": (
            round(1000 * result.cpu_s / len(result.ok_turns), 2) if result.ok_turns else None
        ),
        "ffmpeg_cpu_ms_per_audio_s": (
            round(1000 * result.children_cpu_s / audio_s, 3) if audio_s else None
        ),
        # The satellites and the fake provider: near 100 % and they, not Home
        # Assistant, set the latencies.
        "driver_cpu_percent_of_one_core": round(100 * result.driver_cpu_s / result.wall_s, 1),
    }


async def phase_warmup(bench: Bench) -> None:
    print("warm-up: 3 turns, every event checked against the OpenAI SDK's schema")
    bench.fake.validate = True
    result = await drive(bench, "warmup", turns=3)
    bench.fake.validate = False
    bench.results["validation"] = {
        "turns": len(result.turns),
        "failed_turns": len(result.turns) - len(result.ok_turns),
        "protocol_errors": list(bench.fake.protocol_errors),
        "fake_internal_errors": [repr(err) for err in bench.fake.internal_errors],
    }
    if bench.fake.protocol_errors or bench.fake.internal_errors or not result.ok_turns:
        raise RuntimeError(f"warm-up failed: {bench.results['validation']}")


async def phase_single(bench: Bench) -> None:
    turns = bench.args.turns
    print(
        f"one satellite (the Assist dialog's way): {turns} turns in real time, "
        "the model's own WAV (no conversion)"
    )
    result, extra = await probed(bench, lambda: drive(bench, "single", turns=turns))
    bench.results["single"] = latencies(result) | extra | {"cost": cost(result, 1)}


async def _drive_kinds(
    bench: Bench, host: kinds.Host, cpu_s: Callable[[], tuple[float, float]]
) -> Drive:
    """Every satellite kind against `host` (`cpu_s`: CPU seconds of the host's process and
    of its children, ffmpeg, so far)."""

    async def run(rounds: int, *, warm_up: bool) -> list[TurnRecord]:
        return await kinds.run_kinds(
            host,
            bench.fake,
            bench.http,
            rounds=rounds,
            silence_ms=AGENT_SILENCE_MS["Bench"],
            lengths=bench.args.satellite_lengths.split(","),
            warm_up=warm_up,
        )

    if not bench.args.quick:  # a short reply on each kind first, neither timed nor costed
        await run(0, warm_up=True)
    driver = psutil.Process()
    driver_before, cpu_before, started = sum(driver.cpu_times()[:2]), cpu_s(), time.perf_counter()
    appends_before = bench.fake.appends
    turns = await run(bench.args.satellite_rounds, warm_up=False)
    wall_s = time.perf_counter() - started
    driver_s = sum(driver.cpu_times()[:2]) - driver_before
    (own, children), (own_before, children_before) = cpu_s(), cpu_before
    appends = bench.fake.appends - appends_before
    return Drive(turns, wall_s, own - own_before, children - children_before, driver_s, appends)


async def _kinds_results(bench: Bench, result: Drive, host: kinds.Host) -> dict[str, Any]:
    """Each reply checked and timed where its satellite got it (after the runs, in the driver)."""
    for turn in result.turns:
        await kinds.check_reply(turn)
    figures = kinds.figures(
        result.turns,
        silence_ms=AGENT_SILENCE_MS["Bench"],
        first_audio_ms=bench.args.first_audio_ms,
    )
    return {"home_assistant": host.label, "wall_s": round(result.wall_s, 1)} | figures


def _announce_kinds(bench: Bench, host: kinds.Host) -> None:
    print(
        f"satellite kinds on {host.label}: {bench.args.satellite_rounds} rounds of "
        f"{len(kinds.KIND_ORDER)} kinds x replies {bench.args.satellite_lengths}"
    )


async def phase_satellites(bench: Bench) -> None:
    host = kinds.HarnessHost(
        f"Home Assistant {bench.ha['ha_version']} (test harness)",
        bench.ha["pipelines"]["Bench"],
        bench.base_url,
        bench.ha["token"],
        bench.control,
    )
    _announce_kinds(bench, host)
    result, _ = await probed(bench, lambda: _drive_kinds(bench, host, bench.cpu))
    bench.results["satellites"] = await _kinds_results(bench, result, host) | {
        "cost": cost(result, 1) | {"ffmpeg_cpu_s": round(result.children_cpu_s, 3)}
    }


async def phase_newest(bench: Bench, out_dir: Path) -> None:
    print("starting a real hass of the newest release (tests/smoke/hass_process.py)")
    async with newest_host(bench.fake, out_dir / "newest-hass") as host:
        _announce_kinds(bench, host)
        before = len(host.ffmpeg_conversions())
        result = await _drive_kinds(bench, host, host.cpu_s)
        conversions = host.ffmpeg_conversions()[before:]
    bench.results["newest"] = await _kinds_results(bench, result, host) | {
        "cost": cost(result, 1) | {"ffmpeg_cpu_s": round(result.children_cpu_s, 3)},
        "ffmpeg_processes": len(conversions),
        "ffmpeg_examples": conversions[:3],
    }


async def phase_scaling(bench: Bench) -> None:
    runs = {5: bench.args.rounds_5, 20: bench.args.rounds_20}
    for satellites, rounds in runs.items():
        print(f"{satellites} satellites at once: {rounds} turns each")
        before = await bench.memory()
        result, extra = await probed(
            bench,
            lambda satellites=satellites, rounds=rounds: drive(
                bench,
                f"sats{satellites}",
                satellites=satellites,
                turns=rounds,
                jitter_s=0.3,
            ),
        )
        after = await bench.memory()
        bench.results[f"satellites_{satellites}"] = (
            latencies(result)
            | extra
            | {"cost": cost(result, satellites)}
            | {"memory": _memory_delta(before, after)}
        )


async def phase_floor(bench: Bench) -> None:
    """Ours and the do-nothing floor (bench/floor.py) on the same satellites, probes off.

    The same turns (audio, pacing, end of speech, reply length) through our
    pipeline and through the floor's, one satellite and then 20 at once, each
    after a warm-up turn outside the costed window: ours minus the floor is
    what we add to Home Assistant's own pipeline. Twice: with the microphone's
    audio in 10 ms messages (the most messages Home Assistant hands on: it splits
    all audio into 10 ms chunks), and in a Voice PE's 32 ms packets.
    """
    args = bench.args
    silence_frames = round(AGENT_SILENCE_MS["Floor"] / 1000 / FRAME_S)
    end_frames = last_speech_frame(SPEECH_S) + 1 + silence_frames + FAKE_VAD_LAG_FRAMES
    await bench.control.call(
        "floor",
        end_after_bytes=end_frames * FRAME_BYTES,
        reply_s=REPLY_S,
        chunk_ms=args.chunk_ms,
        first_audio_ms=args.first_audio_ms,
        speed=args.model_speed,
    )
    idle_before, _ = bench.cpu()
    await asyncio.sleep(FLOOR_IDLE_S)
    idle_cpu_s = bench.cpu()[0] - idle_before
    floor: dict[str, Any] = {
        "end_of_speech_after_frames": end_frames,
        "idle_cpu_percent_of_one_core": round(100 * idle_cpu_s / FLOOR_IDLE_S, 2),
    }
    for agent in ("Bench", "Floor"):
        await drive(bench, f"floor-warmup-{agent}", agent=agent)
    for packet_ms, satellites, turns in (
        (FRAME_MS, 1, args.floor_turns),
        (FRAME_MS, 20, args.rounds_20),
        (VOICE_PE_PACKET_MS, 1, args.floor_turns),
        (VOICE_PE_PACKET_MS, 20, args.rounds_20),
    ):
        print(
            f"floor: ours, then the do-nothing floor: {satellites} satellite(s), {turns} turns "
            f"each, {packet_ms} ms packets"
        )
        pair: dict[str, dict[str, Any]] = {}
        for label, agent in (("ours", "Bench"), ("floor", "Floor")):
            result = await drive(
                bench,
                f"floor-{label}-{satellites}",
                satellites=satellites,
                turns=turns,
                agent=agent,
                jitter_s=0.3 if satellites > 1 else 0.0,
                packet_ms=packet_ms,
            )
            turns_ok = result.ok_turns
            pair[label] = cost(result, satellites) | {
                "turns": len(result.turns),
                "failed_turns": len(result.turns) - len(turns_ok),
                # The same shape: where each run ends the user's turn and starts the reply.
                "speech_end_to_stt_end_ms": summarize(
                    _values([ms(turn.stt_end_at, turn.speech_end_at) for turn in turns_ok])
                ),
                "speech_end_to_first_audio_ms": summarize(
                    _values([ms(turn.first_audio_at, turn.speech_end_at) for turn in turns_ok])
                ),
                "provider_messages_per_chunk": _per_chunk(result),
            }
        pair["added"] = {
            key: round(pair["ours"][key] - pair["floor"][key], 3)
            for key in ("cpu_ms_per_audio_s", "cpu_ms_per_turn", "cpu_percent_of_one_core")
            if pair["ours"][key] is not None and pair["floor"][key] is not None
        }
        floor[floor_key(satellites, packet_ms)] = pair
    bench.results["floor"] = floor


def _per_chunk(result: Drive) -> float | None:
    """Audio messages the provider got per 10 ms chunk the satellites sent (1: one each)."""
    chunks = sum(1 for turn in result.turns for sent in turn.sent_at if sent is not None)
    return round(result.appends / chunks, 2) if chunks else None


def _memory_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    sessions = after["live_sessions"] - before["live_sessions"]
    growth_kib = after["rss_kib"] - before["rss_kib"]
    return {
        "rss_before_mib": round(before["rss_kib"] / 1024, 1),
        "rss_after_mib": round(after["rss_kib"] / 1024, 1),
        "new_live_sessions": sessions,
        "rss_mib_per_new_session": round(growth_kib / 1024 / sessions, 3) if sessions else None,
    }


async def phase_turn_start(bench: Bench) -> None:
    turns = bench.args.start_turns
    before = await bench.memory()
    start: dict[str, Any] = {}
    for agent, label in (("Bench warm", "warm"), ("Bench cold", "cold")):
        print(f"turn start, {label}: {turns} new conversations")
        result, extra = await probed(
            bench,
            lambda agent=agent, label=label: drive(
                bench,
                f"start-{label}",
                turns=turns,
                agent=agent,
                new_conversation=True,
                speech_s=0.3,
                reply_s=0.3,
            ),
        )
        figures = latencies(result)
        start[label] = figures["first_frame_ms"]
        start[f"{label}_run_request_to_first_audio"] = figures["run_request_to_first_audio_ms"]
        start[f"{label}_connect"] = extra["connect_ms"]
        start[f"{label}_turns_on_a_connection_opened_before_the_run"] = sum(
            1
            for turn in result.ok_turns
            if turn.connection_created_at is not None
            and turn.run_sent_at is not None
            and turn.connection_created_at < turn.run_sent_at
        )
    after = await bench.memory()
    warm, cold = start["warm"]["median"], start["cold"]["median"]
    start["cold_over_warm_median"] = round(cold / warm, 2) if warm and cold else None
    start["hot_same_session"] = bench.results["single"]["first_frame_ms"]
    start["memory"] = _memory_delta(before, after)
    bench.results["turn_start"] = start


async def phase_leak(bench: Bench) -> None:
    turns, traced = bench.args.leak_turns, bench.args.leak_traced
    print(
        f"leak run: {turns} turns of one conversation, audio at 10x real time "
        f"(tracemalloc over the last {traced})"
    )
    samples: list[dict[str, Any]] = []

    async def sample(done: int) -> None:
        if done % bench.args.leak_every == 0 or done == turns - traced:
            memory = await bench.memory()
            samples.append(
                {
                    "turn": done,
                    "rss_kib": memory["rss_kib"],
                    "tts_cache_kib": memory["tts_cache_kib"],
                    "sessions": memory["live_sessions"],
                    "traced": done > turns - traced,
                }
            )
        if done == turns - traced:
            await bench.control.call("trace_start")

    start = await bench.memory(objects=True)
    samples.append(
        {
            "turn": 0,
            "rss_kib": start["rss_kib"],
            "sessions": start["live_sessions"],
            "traced": False,
        }
    )
    result = await drive(
        bench, "leak", turns=turns, speed=10.0, speech_s=0.4, reply_s=0.5, after_turn=sample
    )
    growth = await bench.control.call("trace_stop") if traced else []
    end = await bench.memory(objects=True)
    closed = await bench.control.call("close_sessions")
    fitted = [s for s in samples if s["turn"] >= bench.args.leak_warmup and not s["traced"]]
    kib_per_turn = slope([s["turn"] for s in fitted], [s["rss_kib"] for s in fitted])
    without_cache = slope(
        [s["turn"] for s in fitted], [s["rss_kib"] - s["tts_cache_kib"] for s in fitted]
    )
    bench.results["leak"] = {
        "turns": len(result.turns),
        "failed_turns": len(result.turns) - len(result.ok_turns),
        "wall_s": round(result.wall_s, 1),
        "samples": samples,
        "slope_kib_per_turn": round(kib_per_turn, 2) if kib_per_turn is not None else None,
        "slope_without_tts_cache_kib_per_turn": (
            round(without_cache, 2) if without_cache is not None else None
        ),
        "slope_fitted_on_turns": [fitted[0]["turn"], fitted[-1]["turn"]] if fitted else None,
        "growth_mib": round((end["rss_kib"] - start["rss_kib"]) / 1024, 2),
        "objects_before": start["objects"],
        "objects_after": end["objects"],
        "tracemalloc_growth_last_turns": growth,
        "after_closing_every_conversation_session": {
            "rss_mib_before": round(end["rss_kib"] / 1024, 1),
            "live_sessions_before": end["live_sessions"],
            "live_sessions": sum(closed["sessions"].values()),
            "spares": closed["spares"],
            "objects": closed["objects"],
            "rss_mib": round(closed["rss_kib"] / 1024, 1),
        },
    }


async def phase_profile(bench: Bench, out_dir: Path) -> None:
    turns = bench.args.profile_turns
    print(f"profile: one satellite, {turns} turns under cProfile (CPU time)")
    path = out_dir / "profile.prof"
    await bench.control.call("profile_start")
    try:
        result = await drive(bench, "profile", turns=turns)
    finally:
        await bench.control.call("profile_stop", path=str(path))
    report = profile_report.analyze(str(path), result.audio_s, len(result.ok_turns))
    report["file"] = str(path.relative_to(PROJECT_DIR))
    report["note"] = "cProfile roughly doubles the CPU cost; compare components, not totals"
    bench.results["profile"] = report


async def phase_micro(bench: Bench) -> None:
    print("micro-benchmarks of the hot path's pieces")
    bench.results["micro"] = await micro.run(quick=bench.args.quick)


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        "python": platform.python_version(),
        "clock": "time.perf_counter = clock_gettime(CLOCK_MONOTONIC) in both processes",
    }


async def start_home_assistant(
    control_port: int, fake: BenchFakeServer, args: argparse.Namespace, log_path: Path
) -> asyncio.subprocess.Process:
    env = os.environ | {
        "BENCH_CONTROL_PORT": str(control_port),
        "BENCH_FAKE_URL": fake.url,
        "BENCH_API_KEY": fake.api_key,
        "BENCH_ENTITIES": str(args.entities),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    log = log_path.open("wb")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pytest",
            "bench/ha_process.py",
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:logging",
            "-o",
            "addopts=",
            "-o",
            "timeout=0",
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    finally:
        log.close()


async def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if not out.is_absolute():
        out = PROJECT_DIR / out
    out.parent.mkdir(parents=True, exist_ok=True)
    log_path = out.parent / "home-assistant.log"
    started = time.perf_counter()
    results: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "options": vars(args),
    }
    fake = BenchFakeServer()
    if args.transcription_delay_ms:
        fake.transcription_delay_s = args.transcription_delay_ms / 1000
    fake.pause_after_speech_stopped_s = args.pause_after_speech_stopped_ms / 1000
    await fake.start()
    control = Control()
    process = await start_home_assistant(await control.start(), fake, args, log_path)
    print(f"Home Assistant starting (pid {process.pid}, log {log_path.relative_to(PROJECT_DIR)})")
    try:
        exited = asyncio.ensure_future(process.wait())
        ready = asyncio.ensure_future(asyncio.shield(control.ready))
        done, _ = await asyncio.wait(
            {exited, ready}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"Home Assistant did not start:\n{tail}")
        ha = ready.result()
        results["model_pacing"] = {
            "first_audio_ms": args.first_audio_ms,
            "speed": args.model_speed or None,
            "chunk_ms": args.chunk_ms,
            "paced_phases": "single, satellites, newest, scaling, floor",
        }
        results["home_assistant"] = {
            "version": ha["ha_version"],
            "loop_debug": ha["loop_debug"],
            "exposed_entities": args.entities,
            "startup_s": round(time.perf_counter() - started, 1),
        }
        async with aiohttp.ClientSession() as http:
            bench = Bench(args, fake, control, http, ha, psutil.Process(ha["pid"]), results)
            fake.audio_chunk_ms = args.chunk_ms
            bench.pace(like_a_model=False)
            await phase_warmup(bench)
            phases = set(args.phases.split(","))
            if "start" in phases:
                phases.add("single")  # the same-session turn start is the single phase's
            # (phase, the fake paced like a real model, what runs it)
            steps: list[tuple[str, bool, Callable[[], Awaitable[None]]]] = [
                ("single", True, lambda: phase_single(bench)),
                ("satellites", True, lambda: phase_satellites(bench)),
                ("newest", True, lambda: phase_newest(bench, out.parent)),
                ("scaling", True, lambda: phase_scaling(bench)),
                ("floor", True, lambda: phase_floor(bench)),
                ("start", False, lambda: phase_turn_start(bench)),
                ("leak", False, lambda: phase_leak(bench)),
                ("profile", False, lambda: phase_profile(bench, out.parent)),
                ("micro", False, lambda: phase_micro(bench)),
            ]
            results["phase_seconds"] = {}
            for name, paced, run in steps:
                if name in phases:
                    bench.pace(like_a_model=paced)
                    phase_started = time.perf_counter()
                    await run()
                    results["phase_seconds"][name] = round(time.perf_counter() - phase_started, 1)
                    out.write_text(json.dumps(results, indent=2) + "\n")  # so far, if a later fails
        results["fake"] = {
            "unmatched_appends": fake.unmatched_appends,
            "protocol_errors": list(fake.protocol_errors),
        }
        with contextlib.suppress(Exception):
            await control.call("stop")
        async with asyncio.timeout(60):
            await exited
    finally:
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await process.wait()
        await control.close()
        await fake.stop()
    results["machine"]["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    results["duration_s"] = round(time.perf_counter() - started, 1)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_report(results)
    print_markdown(results)
    print(f"\nJSON: {out.relative_to(PROJECT_DIR)}  (took {results['duration_s']} s)")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=40, help="one-satellite turns")
    parser.add_argument(
        "--satellite-rounds",
        type=int,
        default=8,
        help="turns per satellite kind and reply length (satellites, newest)",
    )
    parser.add_argument(
        "--satellite-lengths",
        default=",".join(kinds.LENGTHS),
        help="reply lengths for the satellite kinds: short (under 60 characters), long",
    )
    parser.add_argument("--rounds-5", type=int, default=8, help="turns per satellite with 5")
    parser.add_argument("--rounds-20", type=int, default=5, help="turns per satellite with 20")
    parser.add_argument(
        "--floor-turns",
        type=int,
        default=20,
        help="one-satellite turns through ours and through the do-nothing floor (floor)",
    )
    parser.add_argument("--start-turns", type=int, default=20, help="warm and cold turn starts")
    parser.add_argument("--leak-turns", type=int, default=200)
    parser.add_argument("--leak-every", type=int, default=10, help="RSS sample interval")
    parser.add_argument("--leak-warmup", type=int, default=20, help="turns before the slope")
    parser.add_argument("--leak-traced", type=int, default=40, help="last turns traced")
    parser.add_argument("--profile-turns", type=int, default=10)
    parser.add_argument("--entities", type=int, default=25, help="exposed entities")
    parser.add_argument(
        "--first-audio-ms",
        type=float,
        default=300.0,
        help="the fake model's first audio after the end of the user's turn (paced phases)",
    )
    parser.add_argument(
        "--model-speed",
        type=float,
        default=2.0,
        help="the fake model generates audio this many times real time (0: at once)",
    )
    parser.add_argument("--chunk-ms", type=int, default=40, help="audio per model delta")
    parser.add_argument(
        "--transcription-delay-ms",
        type=float,
        default=0.0,
        help="delay the fake's input transcript (0: right after speech_stopped)",
    )
    parser.add_argument(
        "--pause-after-speech-stopped-ms",
        type=float,
        default=0.0,
        help="the fake pauses after speech_stopped, as a network would (0: one burst)",
    )
    parser.add_argument("--out", default="bench-results/latest.json")
    parser.add_argument(
        "--phases",
        help=f"comma-separated, of {', '.join(PHASES)} (start needs single; default: all)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of every phase but newest (which starts a second Home Assistant)",
    )
    args = parser.parse_args(argv)
    if args.phases is None:
        args.phases = ",".join(p for p in PHASES if not (args.quick and p == "newest"))
    if args.quick:
        args.turns, args.satellite_rounds = 4, 1
        args.satellite_lengths = "short"
        args.rounds_5, args.rounds_20, args.start_turns, args.floor_turns = 1, 1, 3, 3
        args.leak_turns, args.leak_warmup, args.leak_traced, args.profile_turns = 20, 5, 5, 2
        args.leak_every = 5
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]))))
