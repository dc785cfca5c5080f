"""What a cProfile of Home Assistant's event loop says, per second of conversation audio.

The profile's timer is process CPU time, so waiting (epoll) costs nothing.
Time spent outside the named components (C functions, the stdlib, numpy,
yaml, schema validation…) is charged to whoever called them, so a component
is "this code and what it called that is not another component".
"""

from __future__ import annotations

import pstats
from typing import Any

# (component, substring of the file path), first match wins.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("integration (realtime_assist)", "custom_components/realtime_assist/"),
    ("websockets (provider socket)", "/websockets/"),
    ("HA assist_pipeline", "/homeassistant/components/assist_pipeline/"),
    ("HA tts", "/homeassistant/components/tts/"),
    ("HA stt", "/homeassistant/components/stt/"),
    ("HA conversation + llm", "/homeassistant/components/conversation/"),
    ("HA conversation + llm", "/homeassistant/helpers/llm"),
    ("HA websocket_api + http", "/homeassistant/components/websocket_api/"),
    ("HA websocket_api + http", "/homeassistant/components/http/"),
    ("HA core + helpers", "/homeassistant/"),
    ("aiohttp (HA's server)", "/aiohttp/"),
    ("asyncio event loop", "/asyncio/"),
    ("benchmark probes", "/bench/"),
)
# Everything else (C functions, the stdlib, numpy, yaml, schema libraries…)
# is charged to its callers.
# Hot-path functions reported one by one: (label, file substring, function name).
HOT_PATH: tuple[tuple[str, str, str], ...] = (
    ("in: RealtimeSession.send_audio", "realtime/session.py", "send_audio"),
    ("in: RealtimeSession._flush_audio", "realtime/session.py", "_flush_audio"),
    ("in: Resampler.process", "realtime/audio.py", "process"),
    ("in: OpenAIRealtimeConnection.send_audio", "providers/openai.py", "send_audio"),
    ("in: OpenAIRealtimeConnection.send_audio_now", "providers/openai.py", "send_audio_now"),
    ("in: Turn._send_audio", "realtime/turn.py", "_send_audio"),
    ("in: HA websocket binary handler", "assist_pipeline/websocket_api.py", "handle_binary"),
    ("in: HA stt_stream", "assist_pipeline/websocket_api.py", "stt_stream"),
    ("in: HA process_enhance_audio (microVAD)", "default_pipeline.py", "process_enhance_audio"),
    ("out: OpenAIRealtimeConnection.events", "providers/openai.py", "events"),
    ("out: _on_audio_delta", "providers/openai.py", "_on_audio_delta"),
    ("out: RealtimeSession._observe", "realtime/session.py", "_observe"),
    ("out: Subscription.put", "realtime/session.py", "put"),
    ("out: Subscription.__anext__", "realtime/session.py", "__anext__"),
    ("out: Turn.reply_audio", "realtime/turn.py", "reply_audio"),
    ("out: TTS _encoded (WAV/FLAC)", "realtime_assist/tts.py", "_encoded"),
    ("out: HA _async_convert_audio (ffmpeg)", "components/tts/__init__.py", "_async_convert_audio"),
    ("out: HA TTS view get", "components/tts/__init__.py", "get"),
)
# Per-turn work (not per audio chunk): (label, file substring, function name).
PER_TURN: tuple[tuple[str, str, str], ...] = (
    ("STT stage, whole (incl. its audio)", "realtime_assist/stt.py", "async_process_audio_stream"),
    ("STT: prompt and tools for the turn", "realtime_assist/stt.py", "_async_turn_config"),
    (
        "agent: the turn's prompt and tools (built once)",
        "realtime_assist/agent.py",
        "async_turn_prompt",
    ),
    (
        "agent: session config (reuses the turn's)",
        "realtime_assist/agent.py",
        "async_session_config",
    ),
    (
        "conversation: _async_handle_message",
        "realtime_assist/conversation.py",
        "_async_handle_message",
    ),
    (
        "assist_bridge: current_pipeline_run",
        "realtime_assist/assist_bridge.py",
        "current_pipeline_run",
    ),
    ("pool: lease", "realtime/pool.py", "lease"),
    ("session: update (session.update)", "realtime/session.py", "update"),
    ("tools: tool_specs", "realtime_assist/tools.py", "tool_specs"),
    ("HA llm: API prompt", "helpers/llm.py", "_async_get_api_prompt"),
    ("HA llm: async_get_api", "helpers/llm.py", "async_get_api"),
    ("HA chat log: async_provide_llm_data", "conversation/chat_log.py", "async_provide_llm_data"),
    ("HA pipeline: execute", "assist_pipeline/run.py", "execute"),
)
_GENERIC = ("/asyncio/", "/_pytest/", "/pluggy/", "/pytest_asyncio/", "/bench/ha_process.py")

type Func = tuple[str, int, str]


def _component(func: Func) -> str | None:
    """The component a function belongs to; None when it is charged to its callers."""
    for name, part in COMPONENTS:
        if part in func[0]:
            return name
    return None


def _matching(stats: dict[Func, Any], file_part: str, name: str) -> tuple[int, float] | None:
    """Calls and cumulative seconds of the functions called `name` in files matching."""
    rows = [row for func, row in stats.items() if file_part in func[0] and func[2] == name]
    if not rows:
        return None
    return sum(row[1] for row in rows), sum(row[3] for row in rows)


def analyze(path: str, audio_s: float, turns: int, top: int = 25) -> dict[str, Any]:
    stats: dict[Func, Any] = pstats.Stats(path).stats  # type: ignore[attr-defined]
    share_cache: dict[Func, dict[str, float]] = {}

    def shares(func: Func, depth: int = 0) -> dict[str, float]:
        """How a function's own time divides among components."""
        if func in share_cache:
            return share_cache[func]
        component = _component(func)
        if component is not None:
            result = {component: 1.0}
        else:
            callers = stats[func][4] if func in stats else {}
            total = sum(edge[2] for edge in callers.values())
            result = {}
            if depth > 20 or total <= 0:
                result = {"unattributed (no known caller)": 1.0}
            else:
                for caller, edge in callers.items():
                    for name, fraction in shares(caller, depth + 1).items():
                        result[name] = result.get(name, 0.0) + fraction * edge[2] / total
        share_cache[func] = result
        return result

    components: dict[str, float] = {}
    total_s = 0.0
    for func, (_cc, _nc, tottime, _ct, _callers) in stats.items():
        total_s += tottime
        for name, fraction in shares(func).items():
            components[name] = components.get(name, 0.0) + tottime * fraction

    def per_audio_s(seconds: float) -> float:
        return round(seconds * 1000 / audio_s, 3) if audio_s else 0.0

    hot_path = {}
    for label, file_part, name in HOT_PATH:
        if (found := _matching(stats, file_part, name)) is None:
            continue
        calls, cumulative = found
        hot_path[label] = {
            "calls": calls,
            "cum_ms_per_audio_s": per_audio_s(cumulative),
            "us_per_call": round(cumulative / calls * 1e6, 2) if calls else None,
        }
    per_turn = {}
    for label, file_part, name in PER_TURN:
        if (found := _matching(stats, file_part, name)) is None or not turns:
            continue
        calls, cumulative = found
        per_turn[label] = {
            "calls_per_turn": round(calls / turns, 1),
            "cum_ms_per_turn": round(cumulative * 1000 / turns, 3),
        }

    ranked = sorted(
        (
            (func, row)
            for func, row in stats.items()
            if func[0] != "~" and not any(part in func[0] for part in _GENERIC)
        ),
        key=lambda item: item[1][3],
        reverse=True,
    )
    top_cumulative = [
        {
            "function": f"{_short(func[0])}:{func[1]}({func[2]})",
            "calls": row[1],
            "cum_ms_per_audio_s": per_audio_s(row[3]),
            "own_ms_per_audio_s": per_audio_s(row[2]),
        }
        for func, row in ranked[:top]
    ]
    top_own = [
        {
            "function": f"{_short(func[0])}:{func[1]}({func[2]})",
            "calls": row[1],
            "own_ms_per_audio_s": per_audio_s(row[2]),
        }
        for func, row in sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    ]
    return {
        "audio_s": round(audio_s, 2),
        "profiled_cpu_ms_per_audio_s": per_audio_s(total_s),
        "components_ms_per_audio_s": {
            name: per_audio_s(seconds)
            for name, seconds in sorted(components.items(), key=lambda item: -item[1])
        },
        "turns": turns,
        "profiled_cpu_ms_per_turn": round(total_s * 1000 / turns, 2) if turns else None,
        "hot_path": hot_path,
        "per_turn": per_turn,
        "top_cumulative": top_cumulative,
        "top_own_time": top_own,
    }


def _short(path: str) -> str:
    for marker in ("site-packages/", "custom_components/", "lib/python3.14/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path
