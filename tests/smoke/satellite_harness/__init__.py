"""Test satellites of every kind inside a real `hass`, driven over the websocket API.

A test-only custom integration (tests/smoke/): it loads the satellites of
tests/satellites.py (each real kind's start rule and reply format, registered
under the real kind's platform name) into the newest Home Assistant, and
`satellite_harness/run` runs one turn of one of them, streaming back its
pipeline events and every reply byte its player receives, and at the end the
turn's timeline (`SatelliteTurn.timeline`: what happened when, by the loop's
clock). The benchmark (bench/) sends its own audio, at a microphone's pace,
and reads only the timeline. The test process decodes the audio: nothing here
starts an ffmpeg process of its own.
"""

import base64
from collections.abc import AsyncIterator
from pathlib import Path
import sys
from typing import Any

from homeassistant.components import websocket_api
from homeassistant.components.media_player import async_process_play_media_url
from homeassistant.config_entries import SOURCE_IMPORT, ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType
import voluptuous as vol

DOMAIN = "satellite_harness"
# This file is linked into the config's custom_components: the project is where it lives.
PROJECT_DIR = Path(__file__).resolve().parents[3]
if str(PROJECT_DIR) not in sys.path:
    sys.path.append(str(PROJECT_DIR))

from tests.satellites import (  # noqa: E402 - after the project is on the path
    KINDS,
    SimulatedSatellite,
    async_add_satellite,
    spoken_utterance,
)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    websocket_api.async_register_command(hass, ws_run)
    if DOMAIN in config:
        hass.async_create_task(
            hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_IMPORT}, data={})
        )
    return True


async def async_setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """One satellite of each kind, their pipelines left to the tests."""

    async def read_url(path: str) -> AsyncIterator[bytes]:
        session = async_get_clientsession(hass)
        async with session.get(async_process_play_media_url(hass, path)) as response:
            response.raise_for_status()
            async for chunk in response.content.iter_any():
                yield chunk

    satellites: dict[str, SimulatedSatellite] = {}
    for name, kind in KINDS.items():
        satellites[name] = await async_add_satellite(hass, kind, entry, read_url, None)
    hass.data[DOMAIN] = satellites
    return True


@websocket_api.websocket_command(
    {
        vol.Required("type"): "satellite_harness/run",
        vol.Required("kind"): vol.In(list(KINDS)),
        vol.Required("pipeline"): str,
        # The user's speech (PCM16 mono 16 kHz, base64); default `spoken_utterance()`.
        vol.Optional("audio"): str,
        # At a microphone's pace rather than as fast as the pipeline takes it.
        vol.Optional("real_time", default=False): bool,
        # Stream the events and reply bytes as they come (the timeline comes either way).
        vol.Optional("mirror", default=True): bool,
    }
)
@websocket_api.async_response
async def ws_run(
    hass: HomeAssistant, connection: websocket_api.ActiveConnection, msg: dict[str, Any]
) -> None:
    """One turn of one satellite: its events and reply bytes, then `done` with its timeline."""
    satellite: SimulatedSatellite = hass.data[DOMAIN][msg["kind"]]
    assert satellite.pipeline_select is not None
    await satellite.pipeline_select.async_select_option(msg["pipeline"])
    audio = base64.b64decode(msg["audio"]) if "audio" in msg else spoken_utterance()
    turn = await satellite.start_turn(audio, real_time=msg["real_time"])

    @callback
    def send(message: dict[str, Any]) -> None:
        connection.send_message(websocket_api.event_message(msg["id"], message))

    def on_event(event: dict[str, Any]) -> None:
        data = event["data"] if event["type"] in ("intent-end", "error") else None
        send({"pipeline": event["type"], "data": data})

    def on_player(what: str, detail: Any) -> None:
        if what == "audio":
            detail = base64.b64encode(detail).decode()
        send({"player": what, "detail": detail, "sample_rate": turn.player.sample_rate})

    if msg["mirror"]:
        turn.listeners.append(on_event)
        turn.player.listeners.append(on_player)
    connection.send_result(
        msg["id"], {"raw_pcm": turn.player.raw_pcm, "sample_rate": turn.player.sample_rate}
    )
    try:
        await turn.finished(60)
    finally:
        send({"done": True, "sample_rate": turn.player.sample_rate, "timeline": turn.timeline()})
