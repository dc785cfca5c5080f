"""The dashboard card in headless Chromium, on the real hass, against the fake OpenAI server.

Chromium's fake microphone plays a WAV (speech, a pause, speech over the
reply) and its fake camera shows its test pattern. The first utterance turns
the kitchen light on; the page plays the model's voice (its playback
worklet's counters); the second utterance lands while the model still talks:
the page flushes, and the fake receives a truncation at what the page says it
played. The camera frame taken when the user started speaking reaches the
fake. The page's and the fake's timestamps give the browser path's latencies
(written to bench-results/browser.json; see the README's Benchmarks), and the
card's screenshot goes to docs/images/card.png.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
import json
from pathlib import Path
import statistics
import time
from typing import Any
import wave

import numpy as np
import pytest
import pytest_asyncio

from tests.fakes.audio_samples import speech_like
from tests.fakes.loopback import ModelPacing
from tests.fakes.openai_realtime import (
    FakeConnection,
    FakeOpenAIRealtimeServer,
    FunctionCallItem,
    ScriptedResponse,
    SpeechItem,
)
from tests.smoke.browser import Page, chromium, open_page
from tests.smoke.flows import realtime_entry
from tests.smoke.hass_process import PROJECT_DIR, HassClient, HassProcess
from tests.smoke.test_ui import SCREENSHOTS, log_in, screenshot

AGENT = "conversation.realtime_assist"
DASHBOARD = "realtime-talk"
LIGHT = "light.kitchen_light"
CARD = "__ra.find('realtime-assist-card')"
STATS = f"{CARD}.stats"
RATE = 48000
# The microphone: quiet, a request, quiet while the model answers, then talking over it.
FIRST_SPEECH_AT_S, SPEECH_S, SECOND_SPEECH_AT_S = 1.5, 1.0, 8.0
LONG_REPLY = (
    "The kitchen light is on now. It is a warm white light, and I set it to the brightness "
    "you used last evening, which you said felt right for cooking. If you would like it "
    "brighter for reading the recipe, or dimmer for dinner later, just tell me and I will "
    "change it."
)
RESULTS = PROJECT_DIR / "bench-results" / "browser.json"
# The page's report and the fake's truncation of the same moment (the bound).
TRUNCATION_TOLERANCE_MS = 50
WAIT_S = 30.0


def microphone_wav(path: Path) -> Path:
    """Digital silence around two utterances (silence: no noise for the auto gain to lift)."""

    def quiet(seconds: float) -> bytes:
        return bytes(2 * int(RATE * seconds))

    pcm = (
        quiet(FIRST_SPEECH_AT_S)
        + speech_like(SPEECH_S, RATE)
        + quiet(SECOND_SPEECH_AT_S - FIRST_SPEECH_AT_S - SPEECH_S)
        + speech_like(SPEECH_S, RATE, seed=3)
        + quiet(25.0)
    )
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm)
    return path


def respond(conn: FakeConnection) -> ScriptedResponse:
    """Turn the light on (then talk long about it); a later request gets a short answer."""
    if conn.items[-1]["type"] == "function_call_output":
        return ScriptedResponse(SpeechItem(LONG_REPLY))
    if any(item["type"] == "function_call" for item in conn.items):
        return ScriptedResponse(SpeechItem("Alright, I will stop."))
    turn_on = next(t["name"] for t in conn.session["tools"] if t["name"].endswith("HassTurnOn"))
    return ScriptedResponse(
        SpeechItem("Turning it on."), FunctionCallItem(turn_on, {"name": "Kitchen light"})
    )


class Stamps:
    """When the fake received the microphone's audio and sent the events that matter."""

    def __init__(self) -> None:
        self.appended: list[tuple[float, int]] = []  # (time, input samples so far)
        self.sent: list[tuple[float, dict[str, Any]]] = []

    def watch(self, conn: FakeConnection) -> None:
        """Wrap one connection's append handler and its sender (test-local timestamps)."""
        append = conn._handlers["input_audio_buffer.append"]
        send = conn.send
        samples = 0

        async def on_append(event: dict[str, Any]) -> None:
            nonlocal samples
            samples += len(event["audio"]) * 3 // 4 // 2
            self.appended.append((time.time(), samples))
            await append(event)

        async def sent(event: dict[str, Any]) -> None:
            await send(event)
            self.sent.append((time.time(), event))

        conn._handlers["input_audio_buffer.append"] = on_append
        conn.send = sent  # type: ignore[method-assign]

    def first_sent(self, kind: str, **fields: Any) -> list[float]:
        return [
            at
            for at, event in self.sent
            if event["type"] == kind and all(event.get(k) == v for k, v in fields.items())
        ]


async def clock_offset(page: Page) -> float:
    """The page's clock minus ours (ms), from the middle of a round trip."""
    before = time.time()
    page_ms = await page.evaluate("performance.timeOrigin + performance.now()")
    after = time.time()
    return float(page_ms) - (before + after) / 2 * 1000


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@pytest_asyncio.fixture(loop_scope="session")
async def dashboard(hass_client: HassClient) -> AsyncIterator[None]:
    """A dashboard of its own with the card on it (removed afterwards)."""
    card = {"type": "custom:realtime-assist-card", "agent": AGENT, "camera": True}
    created = await hass_client.ws(
        {"type": "lovelace/dashboards/create", "url_path": DASHBOARD, "title": "Talk"}
    )
    try:
        await hass_client.ws(
            {
                "type": "lovelace/config/save",
                "url_path": DASHBOARD,
                "config": {"views": [{"title": "Talk", "cards": [card]}]},
            }
        )
        yield
    finally:
        await hass_client.ws({"type": "lovelace/dashboards/delete", "dashboard_id": created["id"]})


@pytest.mark.asyncio(loop_scope="session")
async def test_talk_over_the_reply_and_show_the_camera(
    hass_process: HassProcess,
    hass_client: HassClient,
    fake_openai: FakeOpenAIRealtimeServer,
    dashboard: None,
    tmp_path: Path,
) -> None:
    """Speech turns the light on, the page plays the reply, talking over it cuts it exactly."""
    fake_openai.responder = respond
    fake_openai.add_input_transcript("Turn on the kitchen light.")
    fake_openai.add_input_transcript("That's enough, thanks.")
    fake_openai.pacing = ModelPacing.like_a_real_model()
    stamps = Stamps()
    flags = (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone_wav(tmp_path / 'mic.wav')}%noloop",
        "--autoplay-policy=no-user-gesture-required",
    )
    assert await hass_client.switched_off(LIGHT) == "off"
    try:
        async with (
            realtime_entry(hass_client, fake_openai),
            chromium(tmp_path / "profile", tmp_path / "chromium.log", flags) as devtools,
        ):
            page = await open_page(devtools, 900, 700)
            await log_in(page, hass_process)
            await page.goto(f"{hass_client.url}/{DASHBOARD}/0")
            await page.wait_for(f"{CARD}?.shadowRoot?.querySelector('.talk')")
            for conn in fake_openai.connections:
                stamps.watch(conn)
            await page.click(f"{CARD}.shadowRoot.querySelector('.camera')")
            await page.wait_for(f"{CARD}.cameraOn && {CARD}.video.videoWidth > 0")
            await page.click(f"{CARD}.shadowRoot.querySelector('.talk')")
            offset = await clock_offset(page)

            # The first utterance: the model turns the light on and talks about it.
            await page.wait_for(
                f"document.querySelector('home-assistant').hass.states['{LIGHT}']?.state === 'on'",
                WAIT_S,
            )
            played = await page.wait_for(f"{STATS}.totals.playedMs > 500 && {STATS}.totals")
            assert played["peak"] > 0.1, played  # the model's voice, not silence
            # The second utterance, while the reply still plays: flushed, cut to what played.
            flush = await page.wait_for(f"{STATS}.flushes.find((f) => f.wasPlaying)", WAIT_S)
            conn = next(
                c
                for c in fake_openai.connections
                if any(item["type"] == "function_call" for item in c.items)
            )
            await conn.wait_for_event("conversation.item.truncate", timeout=WAIT_S)
            [(item_id, truncated_ms)] = conn.truncations
            assert abs(truncated_ms - flush["played"][item_id]) <= TRUNCATION_TOLERANCE_MS
            assert 0 < truncated_ms < int(conn._sent_item(item_id).audio_ms)
            await page.wait_for(f"__ra.text({CARD}).includes('Alright, I will stop.')", WAIT_S)
            # The camera frame taken when the user started speaking reached the provider.
            await conn.wait_for_event(
                "conversation.item.create",
                lambda event: event["item"].get("content", [{}])[0].get("type") == "input_image",
                timeout=WAIT_S,
            )
            assert conn.images[0][0] == "image/jpeg"
            # Without the camera's picture (its test pattern shows a running clock).
            await page.click(f"{CARD}.shadowRoot.querySelector('.camera')")
            await page.wait_for(f"!{CARD}.cameraOn")
            await screenshot(page, SCREENSHOTS / "card.png", f"__ra.find('ha-card', {CARD})")
            stats = await page.evaluate(STATS)
            await page.click(f"{CARD}.shadowRoot.querySelector('.talk')")  # stop
            await page.wait_for(f"{CARD}.state === 'off'")
            # Off the page, the card lets go of the camera (its light goes out).
            await page.click(f"{CARD}.shadowRoot.querySelector('.camera')")
            await page.wait_for(f"{CARD}.cameraOn")
            await page.evaluate(
                f"(() => {{ window.__camera = {CARD}.cameraStream.getVideoTracks()[0];"
                f" {CARD}.remove(); }})()"
            )
            assert await page.evaluate("window.__camera.readyState") == "ended"
        assert fake_openai.protocol_errors == []
    finally:
        fake_openai.responder = None
        fake_openai.pacing = ModelPacing()
    _report(stamps, stats, flush, offset)


def _report(stamps: Stamps, stats: dict[str, Any], flush: dict[str, Any], offset: float) -> None:
    """The browser path's latencies (ms) from the page's and the fake's clocks."""
    # (1) A microphone frame (20 ms at 16 kHz: 480 samples at the provider's 24 kHz) left
    # the page, and the provider has all of it (less the resampler's few samples of delay).
    mic = []
    for frame, sent_ms in stats["sent"]:
        needed = frame * 480 - 48
        arrived = next((at for at, samples in stamps.appended if samples >= needed), None)
        if arrived is not None:
            mic.append(arrived * 1000 - (sent_ms - offset))
    # (2) The model's first audio of each reply: sent by the fake -> in the page -> heard.
    first_delta = {
        event["item_id"]: at
        for at, event in reversed(stamps.sent)
        if event["type"] == "response.output_audio.delta"
    }
    arrived_ms = {}
    for item_id, at_ms, _ms in stats["audioEvents"]:
        arrived_ms.setdefault(item_id, at_ms - offset)
    to_page = [arrived_ms[i] - first_delta[i] * 1000 for i in arrived_ms if i in first_delta]
    heard = [
        at_ms - offset - first_delta[i] * 1000 for i, at_ms in stats["started"] if i in first_delta
    ]
    # (3) Barge-in: the provider heard the user -> the page had stopped playing.
    started = stamps.first_sent("input_audio_buffer.speech_started")
    speech_at = max(at for at in started if at * 1000 < flush["asked"] - offset)
    figures = {
        "mic_frame_to_provider_ms": {
            "median": statistics.median(mic),
            "p95": percentile(mic, 95),
            "frames": len(mic),
        },
        "model_audio_to_page_ms": to_page,
        "model_audio_to_playback_ms": heard,
        "barge_in_to_flush_request_ms": flush["asked"] - offset - speech_at * 1000,
        "barge_in_to_playback_stopped_ms": flush["flushed"] - offset - speech_at * 1000,
        "clock_offset_ms": offset,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2))
    print(f"\nBrowser path (ms): {json.dumps(figures)}")
