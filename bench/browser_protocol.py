"""`python -m bench.browser_protocol`: the card's microphone frames, binary or JSON.

Home Assistant's websocket API takes a client's audio two ways: binary frames
through a binary handler (`[handler id][PCM]`, as `assist_pipeline/run` does)
or a compact JSON command per frame (`{"id", "type", "conversation", "audio":
base64}`). This measures, with Home Assistant's own code, what each costs per
20 ms frame (16 kHz PCM16, as the card sends) in the server: for JSON the
websocket API's parse (orjson), the command's schema check (probatio, as the
`websocket_command` decorator compiles it) and the base64 decode; for binary
the handler lookup and slice. The browser path's end-to-end latencies come
from the Chromium test (tests/smoke/test_card.py, bench-results/browser.json).
"""

from __future__ import annotations

import base64
import json
import statistics
import time

from homeassistant.components.websocket_api import messages
from homeassistant.util.json import json_loads
import probatio

FRAME = bytes(640)  # 20 ms of PCM16 mono at 16 kHz
ROUNDS = 20_000
SCHEMA = messages.BASE_COMMAND_MESSAGE_SCHEMA.extend(
    {
        probatio.Required("type"): "realtime_assist/browser/audio",
        probatio.Required("conversation"): int,
        probatio.Required("audio"): str,
    }
)


def _per_frame_us(work: object, payloads: list[bytes]) -> float:
    """Median over 5 runs of the time per frame (microseconds)."""
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for payload in payloads:
            work(payload)  # type: ignore[operator]
        runs.append((time.perf_counter() - started) / len(payloads) * 1e6)
    return statistics.median(runs)


def main() -> None:
    handlers = [lambda pcm: pcm]
    binary = [bytes([1]) + FRAME for _ in range(ROUNDS)]
    text = [
        json.dumps(
            {
                "id": 1000 + n,
                "type": "realtime_assist/browser/audio",
                "conversation": 1,
                "audio": base64.b64encode(FRAME).decode(),
            },
            separators=(",", ":"),
        ).encode()
        for n in range(ROUNDS)
    ]

    def by_binary(frame: bytes) -> bytes:
        return handlers[frame[0] - 1](frame[1:])

    def by_json(frame: bytes) -> bytes:
        message = SCHEMA(json_loads(frame))
        return base64.b64decode(message["audio"])

    figures = {
        "binary_us_per_frame": _per_frame_us(by_binary, binary),
        "json_us_per_frame": _per_frame_us(by_json, text),
        "binary_bytes_per_frame": len(binary[0]),
        "json_bytes_per_frame": len(text[0]),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
