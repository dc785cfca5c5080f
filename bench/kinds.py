"""When the user hears the reply, per satellite kind (issue 11).

Each kind is the test satellite of tests/satellites.py, which starts playing
when, and asks for the format that, the real one does: ESPHome with a media
player (Voice PE: FLAC 48 kHz fetched over HTTP when Home Assistant says it
streams), ESPHome with a plain speaker (WAV 16 kHz that Home Assistant streams
from `tts.async_get_stream` at `tts-end`), Wyoming (WAV 22.05 kHz), VoIP, all
Home Assistant entities that run inside Home Assistant's process, and the
frontend's Assist dialog (a websocket client here, `bench.satellite.Satellite`:
WAV fetched from `run-start`).

The fake model is paced like a real one (`bench.fake`), so a satellite that
waits for the end of the reply, or an ffmpeg process that holds its output,
shows. Per kind and reply length, two figures, where the satellite's player
got the model's voice (`tests.reply_audio.voice_reached_at`: headers and
silence do not count):
- the model's first audio (the fake sends its first delta) -> the satellite;
- the end of the user's speech (the satellite sends its last voiced frame) ->
  the satellite: the provider's voice detection (its silence duration) and
  its first-audio latency are in this one, and so is all of the input path.
VoIP is timed at the end of what Home Assistant's VoIP code reads: it reads
the whole reply before it sends the first RTP packet.

Hosts: the benchmark's Home Assistant 2026.10.4 (`HarnessHost`, the pytest
harness in a process of its own, probes on) and a real `hass` of the newest
release (`bench.newest.NewestHost`), both timed by the same code.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from bench.fake import BenchFakeServer
from bench.satellite import (
    REPLY_TEXT,
    SHORT_REPLY_TEXT,
    Satellite,
    TurnRecord,
    apply_timeline,
    make_turn,
    register,
    unregister,
)
from bench.stats import ms, summarize
from tests.reply_audio import assert_plays, decode, voice_reached_at
from tests.satellites import KINDS, AssistDialog

KIND_ORDER = (*KINDS, AssistDialog.kind)
# Reply lengths: under and over Home Assistant's 60-character streaming gate.
LENGTHS: dict[str, tuple[str, float]] = {
    "short": (SHORT_REPLY_TEXT, 1.5),
    "long": (REPLY_TEXT, 5.0),
}
SPEECH_S = 0.8
# The model's first audio -> the satellite's player (issue 11).
TARGET_MS = 50.0
# Home Assistant's VoIP code reads the whole reply before it sends RTP.
READS_WHOLE_REPLY = frozenset({"voip"})


class Host(Protocol):
    """A Home Assistant the satellites run against."""

    label: str
    pipeline_id: str

    def dialog(self, http: aiohttp.ClientSession) -> Satellite:
        """The Assist dialog: a websocket client of this Home Assistant."""
        ...

    async def entity_turn(self, kind: str, turn: TurnRecord) -> dict[str, Any]:
        """One turn of the satellite entity of `kind` with `turn`'s audio: its timeline."""
        ...


@dataclass
class HarnessHost:
    """The benchmark's Home Assistant (bench/ha_process.py), over its control line."""

    label: str
    pipeline_id: str
    base_url: str
    token: str
    control: Any  # bench.__main__.Control

    def dialog(self, http: aiohttp.ClientSession) -> Satellite:
        return Satellite(http, self.base_url, self.token, "bench-assist-dialog")

    async def entity_turn(self, kind: str, turn: TurnRecord) -> dict[str, Any]:
        timeline: dict[str, Any] = await self.control.call(
            "satellite_turn",
            kind=kind,
            pipeline=self.pipeline_id,
            audio=base64.b64encode(turn.audio).decode(),
        )
        return timeline


async def run_kinds(
    host: Host,
    fake: BenchFakeServer,
    http: aiohttp.ClientSession,
    *,
    rounds: int,
    silence_ms: int,
    lengths: Iterable[str] = LENGTHS,
    kinds: Iterable[str] = KIND_ORDER,
    warm_up: bool = True,
) -> list[TurnRecord]:
    """`rounds` rounds of every kind with a reply of each length, one turn at a time
    (interleaved, so a burst of load from elsewhere does not land on one kind).

    `warm_up`: first a short reply on each kind, not counted (its first stream pays
    for one-off set-up: the satellite's entity, the encoder's tables).
    """
    kinds, lengths = list(kinds), list(lengths)
    dialog = host.dialog(http)
    await dialog.connect()
    plan = [(0, kind, "short") for kind in kinds] if warm_up else []
    plan += [
        (number, kind, length)
        for number in range(1, rounds + 1)
        for kind in kinds
        for length in lengths
    ]
    records: list[TurnRecord] = []
    try:
        for number, kind, length in plan:
            turn = await _turn(
                host,
                fake,
                dialog,
                kind=kind,
                length=length,
                number=number,
                silence_ms=silence_ms,
            )
            if number:
                records.append(turn)
    finally:
        await dialog.close()
    failed = [turn for turn in records if turn.errors]
    if failed:
        print(f"  {len(failed)} of {len(records)} turns failed: {failed[0].errors}")
    return records


async def _turn(
    host: Host,
    fake: BenchFakeServer,
    dialog: Satellite,
    *,
    kind: str,
    length: str,
    number: int,
    silence_ms: int,
) -> TurnRecord:
    text, reply_s = LENGTHS[length]
    turn = make_turn(
        f"{kind}-{length}",
        0,
        number,
        speech_s=SPEECH_S,
        silence_ms=silence_ms,
        reply_s=reply_s,
        reply_text=text,
    )
    turn.kind, turn.length = kind, length
    register(turn, fake)
    try:
        if kind == AssistDialog.kind:
            await dialog.run_turn(turn, host.pipeline_id)
        else:
            timeline = await host.entity_turn(kind, turn)
            apply_timeline(turn, timeline)
            if timeline.get("failure"):
                turn.errors.append(timeline["failure"])
    finally:
        unregister(turn, fake)
    return turn


async def check_reply(turn: TurnRecord) -> None:
    """When the model's voice reached the player, and that what it got is the model's reply."""
    player = turn.player
    if player is None:
        turn.errors.append("the satellite never started playing")
        return
    turn.voice_at = await voice_reached_at(player)
    decoded = await decode(player)
    turn.tts_audio_bytes, turn.tts_sample_rate = len(decoded.pcm), decoded.rate or None
    if turn.errors:
        return
    try:
        assert_plays(decoded, [turn.reply_pcm])
    except AssertionError as err:
        turn.errors.append(f"the satellite did not get the model's reply: {err}")


def heard_at(turn: TurnRecord) -> float | None:
    """When the satellite can first play the reply."""
    if turn.kind in READS_WHOLE_REPLY:
        return turn.player.ended_at if turn.player is not None else None
    return turn.voice_at


def figures(turns: list[TurnRecord], *, silence_ms: int, first_audio_ms: float) -> dict[str, Any]:
    """Per kind and reply length: the satellite's figures, their parts, and the targets.

    "End of speech" includes the provider's part, which is not ours to meet: its
    voice detection (`silence_ms` of silence, decided in the fake's 20 ms frames,
    plus the input path) and its first-audio latency (`first_audio_ms`). Its target
    is that part, as measured in the same run (medians), plus `TARGET_MS`.
    """
    ok = [turn for turn in turns if not turn.errors]
    provider = {
        # The satellite's last voiced frame -> the fake's speech_stopped.
        "speech_end_to_speech_stopped": summarize(
            [v for t in ok if (v := ms(t.speech_stopped_at, t.speech_end_at)) is not None]
        ),
        "speech_stopped_to_first_audio": summarize(
            [v for t in ok if (v := ms(t.first_delta_at, t.speech_stopped_at)) is not None]
        ),
    }
    vad = provider["speech_end_to_speech_stopped"]["median"] or float(silence_ms)
    model = provider["speech_stopped_to_first_audio"]["median"] or first_audio_ms
    result: dict[str, Any] = {
        "targets_ms": {
            "model_to_satellite": TARGET_MS,
            "speech_end_to_satellite": round(vad + model + TARGET_MS),
            "speech_end_to_satellite_is": (
                f"the provider's part + {TARGET_MS:g} ms: voice detection {vad:.0f} ms "
                f"(configured silence {silence_ms} ms), then the model's first audio "
                f"{model:.0f} ms (paced at {first_audio_ms:g} ms), medians of this run"
            ),
        },
        "provider_ms": provider,
        "kinds": {},
    }
    for kind in dict.fromkeys(turn.kind for turn in turns):
        per_length: dict[str, Any] = {}
        for length in dict.fromkeys(turn.length for turn in turns):
            group = [t for t in turns if t.kind == kind and t.length == length]
            ok = [t for t in group if not t.errors]
            samples: dict[str, list[float]] = {
                name: []
                for name in (
                    "model_to_satellite_ms",
                    "speech_end_to_satellite_ms",
                    "model_to_first_byte_read_ms",
                    "integration_ms",
                    "conversion_ms",
                    "ffmpeg_start_ms",
                    "delivery_ms",
                    "vad_ms",
                    "model_first_audio_ms",
                )
            }
            for turn in ok:
                heard = heard_at(turn)
                # Starting ffmpeg is Home Assistant's, although our stream waits for it.
                spawn = ms(turn.conversion_reads_at, turn.conversion_asked_at) or 0.0
                ours = ms(turn.tts_ours_at, turn.first_delta_at)
                conversion = ms(turn.conversion_out_at, turn.conversion_in_at)
                parts = {
                    "model_to_satellite_ms": ms(heard, turn.first_delta_at),
                    "speech_end_to_satellite_ms": ms(heard, turn.speech_end_at),
                    "model_to_first_byte_read_ms": (
                        ms(turn.voice_at, turn.first_delta_at)
                        if turn.kind in READS_WHOLE_REPLY
                        else None
                    ),
                    "integration_ms": None if ours is None else ours - spawn,
                    "conversion_ms": None if conversion is None else conversion + spawn,
                    "ffmpeg_start_ms": spawn if conversion is not None else None,
                    "delivery_ms": ms(turn.voice_at, turn.conversion_out_at or turn.tts_ours_at),
                    "vad_ms": ms(turn.speech_stopped_at, turn.speech_end_at),
                    "model_first_audio_ms": ms(turn.first_delta_at, turn.speech_stopped_at),
                }
                for name, value in parts.items():
                    if value is not None:
                        samples[name].append(value)
            per_length[length] = {
                "turns": len(group),
                "failed_turns": len(group) - len(ok),
                "errors": sorted({error for t in group for error in t.errors})[:3],
                "started_by": dict(
                    Counter(t.player.started_by for t in ok if t.player is not None)
                ),
                "reply_s": LENGTHS[length][1],
                "reply_characters": len(LENGTHS[length][0]),
            } | {name: summarize(values) for name, values in samples.items()}
        result["kinds"][kind] = per_length
    result["turn_timelines"] = [turn.timeline() for turn in turns]
    return result
