"""The results table: each figure next to its target."""

from __future__ import annotations

import itertools
from typing import Any

# A leak run is "flat" when the fitted growth stays under this per turn.
FLAT_KIB_PER_TURN = 5.0
# Issue 17's targets: our CPU above the do-nothing floor, and 20 satellites at once.
ADDED_MS_PER_AUDIO_S = 3.0
ADDED_MS_PER_TURN = 20.0
# The floor phase's microphones: 10 ms per message (how Home Assistant hands audio
# on, the most messages), and a Voice PE's 32 ms packets.
FLOOR_PACKETS_MS = {10: "10 ms messages", 32: "Voice PE 32 ms packets"}
CPU_PERCENT_20 = 25.0
P95_RATIO_20 = 2.0
# One satellite's p95 that 20 satellites' are compared with (bench.__main__.latencies).
SCALED_LATENCIES = {
    "audio_in_ms": "(1) audio in",
    "turn_end_ms": "(2) turn end",
    "audio_out_without_conversion_ms": "(3) audio out",
}


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _verdict(value: float | None, limit: float, *, at_least: bool = False) -> str:
    if value is None:
        return "n/a"
    ok = value >= limit if at_least else value <= limit
    return "ok" if ok else "MISS"


def print_report(results: dict[str, Any]) -> None:
    machine = results["machine"]
    ha = results.get("home_assistant", {})
    print()
    print(
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), load "
        f"{machine['load_average_at_start']} -> {machine.get('load_average_at_end')}; "
        f"Home Assistant {ha.get('version')} (loop debug {ha.get('loop_debug')}), "
        f"Python {machine['python']}"
    )
    header = f"{'latency (ms)':58} {'n':>6} {'min':>7} {'median':>7} {'p95':>7} {'max':>7}  target"
    print()
    print(header)
    print("-" * len(header))

    def row(label: str, summary: dict[str, Any] | None, target: str = "") -> None:
        summary = summary or {}
        print(
            f"{label:58} {_fmt(summary.get('n')):>6} {_fmt(summary.get('min')):>7} "
            f"{_fmt(summary.get('median')):>7} {_fmt(summary.get('p95')):>7} "
            f"{_fmt(summary.get('max')):>7}  {target}"
        )

    single = results.get("single", {})

    def target(summary: dict[str, Any] | None, limit: float) -> str:
        p95 = (summary or {}).get("p95")
        return f"p95 <= {limit:g}: {_verdict(p95, limit)}"

    row(
        "(1) audio in: satellite frame -> provider socket",
        single.get("audio_in_ms"),
        target(single.get("audio_in_ms"), 5),
    )
    row(
        "    HA: websocket -> pipeline -> our speech-to-text",
        single.get("audio_in_home_assistant_ms"),
    )
    row("    integration: speech-to-text -> provider socket", single.get("audio_in_integration_ms"))
    row(
        "(2) turn end: speech_stopped sent -> stt-end at satellite",
        single.get("turn_end_ms"),
        target(single.get("turn_end_ms"), 10),
    )
    row("    integration: speech_stopped -> our STT returns", single.get("turn_end_integration_ms"))
    row("    HA: STT returns -> stt-end at the satellite", single.get("turn_end_home_assistant_ms"))
    row(
        "(3) audio out, model's WAV: delta -> byte at the TTS URL",
        single.get("audio_out_ms"),
        target(single.get("audio_out_ms"), 50),
    )
    row(
        "    integration: delta -> audio handed to HA's TTS", single.get("audio_out_integration_ms")
    )
    row("    HA: TTS stream -> HTTP -> satellite", single.get("audio_out_delivery_ms"))

    start = results.get("turn_start", {})
    row("(4) turn start: first frame -> provider, same session", start.get("hot_same_session"))
    row("    new conversation, warm spare (keep_warm)", start.get("warm"))
    row("    new conversation, cold connect", start.get("cold"))
    row(
        "    run request -> first audio at provider, warm",
        start.get("warm_run_request_to_first_audio"),
    )
    row(
        "    run request -> first audio at provider, cold",
        start.get("cold_run_request_to_first_audio"),
    )
    row("    connect + configure on loopback (cold)", start.get("cold_connect"))
    ratio = start.get("cold_over_warm_median")
    print(
        f"    cold / warm first frame (medians): {_fmt(ratio)}x; target >= 10x: "
        f"{_verdict(ratio, 10, at_least=True)}  (a zero-delay loopback handshake)"
    )

    for key in ("satellites", "newest"):
        if results.get(key):
            print_kinds(results[key], results.get("model_pacing", {}))

    print()
    header = (
        f"{'scaling':22} {'CPU %':>6} {'ms CPU/s audio':>15} {'ffmpeg ms/s':>12} "
        f"{'p95 (1)':>8} {'p95 (2)':>8} {'p95 (3)*':>8} {'MiB/session':>12} {'driver %':>9}"
    )
    print(header)
    print("-" * len(header))
    base_p95 = {key: (single.get(key) or {}).get("p95") for key in SCALED_LATENCIES}
    for label, key in (
        ("1 satellite", "single"),
        ("5 satellites", "satellites_5"),
        ("20 satellites", "satellites_20"),
    ):
        phase = results.get(key)
        if not phase:
            continue
        phase_cost = phase["cost"]
        memory = phase.get("memory", {})
        print(
            f"{label:22} {_fmt(phase_cost['cpu_percent_of_one_core'], 1):>6} "
            f"{_fmt(phase_cost['cpu_ms_per_audio_s']):>15} "
            f"{_fmt(phase_cost['ffmpeg_cpu_ms_per_audio_s']):>12} "
            f"{_fmt(phase['audio_in_ms']['p95']):>8} {_fmt(phase['turn_end_ms']['p95']):>8} "
            f"{_fmt(phase['audio_out_without_conversion_ms']['p95']):>8} "
            f"{_fmt(memory.get('rss_mib_per_new_session'), 3):>12} "
            f"{_fmt(phase_cost.get('driver_cpu_percent_of_one_core'), 1):>9}"
        )
    print(
        "  * (3) without HA's conversion. CPU % and ms CPU/s: Home Assistant's process; "
        "driver %: the satellites + fake provider process"
    )
    cpu = single.get("cost", {}).get("cpu_ms_per_audio_s")
    print(
        f"  CPU per second of audio (in + out), 1 satellite, whole HA process: {_fmt(cpu)} ms "
        "(probes on; our share, above the do-nothing floor: the floor table)"
    )
    print("  measured in place (thread CPU time around the call, probes on):")
    for label, value in (single.get("cpu_in_place") or {}).items():
        print(
            f"    {label:46} {value['cpu_us_per_call']:7.1f} us CPU/call "
            f"({value['wall_us_per_call']:7.1f} wall) {value['cpu_ms_per_audio_s']:6.2f} ms/s"
        )
    twenty = results.get("satellites_20")
    if twenty:
        percent = twenty["cost"]["cpu_percent_of_one_core"]
        print(
            f"  20 satellites: {percent:.1f} % of one core (probes on); target <= "
            f"{CPU_PERCENT_20:g}: {_verdict(percent, CPU_PERCENT_20)}"
        )
        for key, value in base_p95.items():
            p95 = twenty[key]["p95"]
            if value and p95:
                print(
                    f"  20 satellites p95 {SCALED_LATENCIES[key]}: {p95 / value:.2f}x one "
                    f"satellite; target <= {P95_RATIO_20:g}x: {_verdict(p95 / value, P95_RATIO_20)}"
                )
    per_session = [
        (results.get(key) or {}).get("memory", {}).get("rss_mib_per_new_session")
        for key in ("satellites_5", "satellites_20", "turn_start")
    ]
    known = [value for value in per_session if value is not None]
    if known:
        worst = max(known)
        print(
            f"  RSS per new live session: {', '.join(_fmt(v, 3) for v in known)} MiB; "
            f"target <= 5: {_verdict(worst, 5)}"
        )
    leak = results.get("leak")
    if leak:
        slope = leak["slope_kib_per_turn"]
        without_cache = leak["slope_without_tts_cache_kib_per_turn"]
        first, last = leak["samples"][0], leak["samples"][-1]
        print(
            f"  leak run: {leak['turns']} turns ({leak['failed_turns']} failed), RSS "
            f"{first['rss_kib'] / 1024:.1f} -> {last['rss_kib'] / 1024:.1f} MiB; slope over turns "
            f"{leak['slope_fitted_on_turns']}: {_fmt(slope)} KiB/turn, "
            f"{_fmt(without_cache)} KiB/turn without HA's TTS memory cache; "
            f"flat (<= {FLAT_KIB_PER_TURN:g}): {_verdict(without_cache, FLAT_KIB_PER_TURN)}"
        )
        closed = leak["after_closing_every_conversation_session"]
        objects = closed["objects"]
        print(
            f"  after closing all {closed['live_sessions_before']} conversation sessions: "
            f"{objects['RealtimeSession']} RealtimeSession, {objects['Turn']} Turn, "
            f"{objects['OpenAIRealtimeConnection']} provider connections still alive "
            f"({closed['spares']} of them spares); RSS {closed['rss_mib_before']} -> "
            f"{closed['rss_mib']} MiB"
        )
    problems = []
    for key in ("single", "satellites_5", "satellites_20"):
        phase = results.get(key) or {}
        if phase.get("failed_turns") or phase.get("replies_read_aloud"):
            problems.append(
                f"{key}: {phase.get('failed_turns')} of {phase.get('turns')} turns failed "
                f"({len(phase.get('stt_exceptions') or [])} speech-to-text exceptions), "
                f"{phase.get('replies_read_aloud')} replies read aloud by a second model call"
            )
    if problems:
        print("  failures (left out of the figures above):")
        for problem in problems:
            print(f"    {problem}")

    if results.get("floor"):
        print_floor(results["floor"])

    profile = results.get("profile")
    if profile:
        print()
        print(
            f"profile (cProfile, CPU time, {profile['audio_s']} s of audio; "
            f"{profile['profiled_cpu_ms_per_audio_s']} ms CPU per audio second under the profiler)"
        )
        for name, value in profile["components_ms_per_audio_s"].items():
            print(f"  {name:48} {value:8.3f} ms/s")
        print(f"  per turn ({profile['profiled_cpu_ms_per_turn']} ms CPU per turn in all):")
        for name, value in profile.get("per_turn", {}).items():
            print(
                f"    {name:52} {value['cum_ms_per_turn']:8.3f} ms/turn "
                f"({value['calls_per_turn']} calls)"
            )
        print("  hot path (cumulative):")
        for name, value in profile["hot_path"].items():
            print(
                f"    {name:52} {value['cum_ms_per_audio_s']:8.3f} ms/s "
                f"{_fmt(value['us_per_call']):>8} us/call"
            )
    micro = results.get("micro")
    if micro:
        print()
        print("micro-benchmarks (CPU, this machine):")
        for name, value in micro.items():
            print(
                f"  {name:52} {value['us_per_call']:8.2f} us/call "
                f"{value['ms_per_audio_s']:8.3f} ms/s"
            )


def print_kinds(phase: dict[str, Any], pacing: dict[str, Any]) -> None:
    """When the user hears the reply, per satellite kind and reply length (bench/kinds.py)."""
    targets = phase["targets_ms"]
    model, speech = targets["model_to_satellite"], targets["speech_end_to_satellite"]
    print()
    print(
        f"satellites on {phase['home_assistant']}: the model's voice at the satellite's player "
        f"(ms, p50 / p95); model paced: first audio {_fmt(pacing.get('first_audio_ms'), 0)} ms "
        f"after the turn ends, then {_fmt(pacing.get('speed'), 1)}x real time"
    )
    header = (
        f"{'kind':21} {'reply':5} {'n':>3}  {'model audio -> satellite':>24} {'':4}  "
        f"{'end of speech -> satellite':>26} {'':4}  {'ours':>6} {'ffmpeg':>7} {'deliver':>7}"
        "  started by"
    )
    print(header)
    print(f"{'':31}{f'target p95 <= {model:g}':>29}  {f'target p95 <= {speech:g}':>31}  (p95)")
    print("-" * len(header))
    for kind, lengths in phase["kinds"].items():
        for length, cell in lengths.items():
            first, end = cell["model_to_satellite_ms"], cell["speech_end_to_satellite_ms"]
            started = ", ".join(f"{event} {n}" for event, n in cell["started_by"].items())
            failed = f" ({cell['failed_turns']} failed)" if cell["failed_turns"] else ""
            print(
                f"{kind:21} {length:5} {cell['turns']:>3}  "
                f"{_fmt(first['median'], 1):>11} / {_fmt(first['p95'], 1):>8} "
                f"{_verdict(first['p95'], model):>4}  "
                f"{_fmt(end['median'], 1):>13} / {_fmt(end['p95'], 1):>8} "
                f"{_verdict(end['p95'], speech):>4}  "
                f"{_fmt(cell['integration_ms']['p95'], 1):>6} "
                f"{_fmt(cell['conversion_ms']['p95'], 1):>7} "
                f"{_fmt(cell['delivery_ms']['p95'], 1):>7}  {started}{failed}"
            )
            if (read := cell.get("model_to_first_byte_read_ms")) and read.get("n"):
                print(
                    f"{'':31}(Home Assistant's VoIP code had the first byte at "
                    f"{_fmt(read['median'], 1)} / {_fmt(read['p95'], 1)}; it sends RTP once it "
                    "has read the whole reply)"
                )
    print(f"  end of speech -> satellite, target: {targets['speech_end_to_satellite_is']}")
    cost = phase.get("cost") or {}
    extras = [f"{phase['wall_s']} s"]
    if "ffmpeg_processes" in phase:
        extras.append(f"ffmpeg processes started by hass: {phase['ffmpeg_processes']}")
    if cost.get("cpu_ms_per_audio_s") is not None:
        extras.append(
            f"Home Assistant's CPU per second of audio {_fmt(cost['cpu_ms_per_audio_s'], 1)} ms "
            f"+ ffmpeg {_fmt(cost.get('ffmpeg_cpu_ms_per_audio_s'), 1)} ms (satellites included)"
        )
    print(
        "  ours: model delta -> our first encoded audio byte (not waiting for ffmpeg to start); "
        "ffmpeg: Home Assistant's conversion, starting the process included (probes on "
        "2026.10.4 only); deliver: -> the player. " + "; ".join(extras)
    )
    for kind, lengths in phase["kinds"].items():
        for length, cell in lengths.items():
            if cell["errors"]:
                print(f"  {kind} {length}: {cell['errors'][0][:300]}")


def floor_key(satellites: int, packet_ms: int) -> str:
    """Where the floor phase keeps the pair of `satellites` sending `packet_ms` at a time."""
    return f"satellites_{satellites}" + ("" if packet_ms == 10 else f"_packets_{packet_ms}ms")


def print_floor(floor: dict[str, Any]) -> None:
    """Ours against the do-nothing floor (bench/floor.py): what we add to Home Assistant's own."""
    print()
    print(
        "our added CPU: the same turns through ours and through a do-nothing STT, agent and "
        "TTS (bench/floor.py), probes off; Home Assistant's process"
    )
    header = f"{'':62} {'ours':>8} {'floor':>8} {'added':>8}  target"
    print(header)
    print("-" * len(header))
    rows = (
        ("1 satellite: ms CPU per audio second", 1, "cpu_ms_per_audio_s", ADDED_MS_PER_AUDIO_S),
        ("1 satellite: ms CPU per turn", 1, "cpu_ms_per_turn", ADDED_MS_PER_TURN),
        ("20 satellites: ms CPU per audio second", 20, "cpu_ms_per_audio_s", None),
        ("20 satellites: ms CPU per turn", 20, "cpu_ms_per_turn", None),
        ("20 satellites: % of one core", 20, "cpu_percent_of_one_core", None),
    )
    for (packet_ms, packets), (label, satellites, key, limit) in itertools.product(
        FLOOR_PACKETS_MS.items(), rows
    ):
        pair = floor.get(floor_key(satellites, packet_ms))
        if not pair:
            continue
        shown = label.replace(":", f", {packets}:", 1)
        added = pair["added"].get(key)
        if limit is not None:
            target = f"added <= {limit:g}: {_verdict(added, limit)}"
        elif key == "cpu_percent_of_one_core":
            ours = pair["ours"][key]
            target = f"ours <= {CPU_PERCENT_20:g}: {_verdict(ours, CPU_PERCENT_20)}"
        else:
            target = ""
        print(
            f"{shown:62} {_fmt(pair['ours'][key], 1):>8} {_fmt(pair['floor'][key], 1):>8} "
            f"{_fmt(added, 1):>8}  {target}"
        )
    for packet_ms, satellites in itertools.product(FLOOR_PACKETS_MS, (1, 20)):
        pair = floor.get(floor_key(satellites, packet_ms)) or {}
        who = f"{satellites} satellite(s), {FLOOR_PACKETS_MS[packet_ms]}"
        for label in ("ours", "floor"):
            if (side := pair.get(label)) and side["failed_turns"]:
                print(f"  {who}, {label}: {side['failed_turns']} turns failed")
        if pair:
            print(
                f"  {who}, the same shape? end of speech -> stt-end "
                f"(median): ours {_fmt(pair['ours']['speech_end_to_stt_end_ms']['median'], 0)}, "
                f"floor {_fmt(pair['floor']['speech_end_to_stt_end_ms']['median'], 0)} ms; "
                "-> first reply audio at the satellite: ours "
                f"{_fmt(pair['ours']['speech_end_to_first_audio_ms']['median'], 0)}, floor "
                f"{_fmt(pair['floor']['speech_end_to_first_audio_ms']['median'], 0)} ms; "
                "provider messages per 10 ms chunk: "
                f"{_fmt(pair['ours'].get('provider_messages_per_chunk'), 2)}"
            )
    if one := floor.get("satellites_1"):
        ours = one["ours"]
        print(
            "  per turn and per audio second are the same CPU divided two ways; a turn here: "
            f"{ours['audio_in_s'] / ours['turns']:.2f} s of audio in, "
            f"{ours['audio_out_s'] / ours['turns']:.2f} s out"
        )
    if (idle := floor.get("idle_cpu_percent_of_one_core")) is not None:
        print(
            f"  Home Assistant's process idle (no turn; both runs pay it): {idle:.1f} % of one core"
        )


def print_markdown(results: dict[str, Any]) -> None:
    """This run's rows of README's Benchmarks "The rest", labelled as there.

    Paste them in, or add their figures to a row's after " · " (one run each).
    """
    machine = results["machine"]
    single = results.get("single") or {}
    twenty = results.get("satellites_20") or {}
    floor = results.get("floor") or {}
    rows: list[tuple[str, str, str, str, str]] = []

    def met(value: float | None, limit: float) -> str:
        return "met" if value is not None and value <= limit else "missed"

    for label, key, limit in (
        ("(1) audio in: satellite frame -> provider socket", "audio_in_ms", 5.0),
        ("(2) turn end: provider `speech_stopped` -> pipeline `stt-end`", "turn_end_ms", 10.0),
        (
            "(3) audio out: first model audio -> first byte at the TTS URL (Assist dialog)",
            "audio_out_ms",
            50.0,
        ),
    ):
        if (summary := single.get(key) or {}).get("n"):
            median, tail = _fmt(summary["median"], 1), _fmt(summary["p95"], 1)
            rows.append((label, median, tail, f"<= {limit:g}", met(summary["p95"], limit)))
    if cost := single.get("cost"):
        rows.append(
            (
                "CPU per second of audio, one satellite (whole HA process, probes on)",
                f"{_fmt(cost['cpu_ms_per_audio_s'], 0)} ms",
                "",
                "",
                "the target is on our share: next row",
            )
        )
    for (packet_ms, packets), (label, key, digits, limit) in itertools.product(
        FLOOR_PACKETS_MS.items(),
        (
            ("CPU per second of audio (in + out)", "cpu_ms_per_audio_s", 1, ADDED_MS_PER_AUDIO_S),
            ("CPU per turn", "cpu_ms_per_turn", 0, ADDED_MS_PER_TURN),
        ),
    ):
        if one := floor.get(floor_key(1, packet_ms)):
            rows.append(
                (
                    f"*floor*, {packets}: {label}, one satellite: HA process with ours / "
                    "do-nothing floor / ours added",
                    _triple(one, key, digits),
                    "",
                    f"added <= {limit:g} ms",
                    met(one["added"].get(key), limit),
                )
            )
    if many := floor.get("satellites_20"):
        rows.append(
            (
                "*floor*: CPU per turn, 20 satellites at once: ours / floor / added",
                _triple(many, "cpu_ms_per_turn", 0),
                "",
                "",
                "",
            )
        )
    if cost := twenty.get("cost"):
        percent = cost["cpu_percent_of_one_core"]
        rows.append(
            (
                "20 satellites at once: HA CPU of one core",
                f"{_fmt(percent, 0)} %",
                "",
                f"<= {CPU_PERCENT_20:g} %",
                met(percent, CPU_PERCENT_20),
            )
        )
    for packet_ms, packets in FLOOR_PACKETS_MS.items():
        if not (pair := floor.get(floor_key(20, packet_ms))):
            continue
        percent = pair["ours"]["cpu_percent_of_one_core"]
        rows.append(
            (
                f"*floor*, {packets}: 20 satellites at once: HA CPU of one core, ours "
                "(do-nothing floor)",
                f"{_fmt(percent, 1)} ({_fmt(pair['floor']['cpu_percent_of_one_core'], 1)}) %",
                "",
                f"<= {CPU_PERCENT_20:g} %",
                met(percent, CPU_PERCENT_20),
            )
        )
    ratios = [
        p95 / base
        for key in SCALED_LATENCIES
        if (base := (single.get(key) or {}).get("p95"))
        and (p95 := (twenty.get(key) or {}).get("p95"))
    ]
    if len(ratios) == len(SCALED_LATENCIES):
        rows.append(
            (
                "20 satellites: p95 of (1)/(2)/(3) vs one",
                " / ".join(f"{ratio:.0f}x" for ratio in ratios),
                "",
                f"<= {P95_RATIO_20:g}x",
                met(max(ratios), P95_RATIO_20),
            )
        )
    if not rows:
        return
    start, end = machine["load_average_at_start"], machine.get("load_average_at_end")
    print()
    print(
        f"README, Benchmarks, The rest: this run ({results['started'][:10]}, load average "
        f"{start[0]:.1f} -> {end[0] if end else '-'}):"
    )
    print()
    print("| measure | median | p95 | target | |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _triple(pair: dict[str, Any], key: str, digits: int) -> str:
    """ours / floor / added of one figure of the floor phase."""
    values = (pair["ours"].get(key), pair["floor"].get(key), pair["added"].get(key))
    return " / ".join(_fmt(float(v), digits) if v is not None else "-" for v in values) + " ms"
