"""A real `hass` of the newest Home Assistant release, for the satellite kinds (bench.kinds).

What users get: Home Assistant 2026.11 passes a reply in the format the
satellite asked for straight through, where 2026.10.4 (the benchmark's own
process) runs ffmpeg whenever a sample rate is asked for. Started, onboarded
and configured exactly as the smoke tests do (tests/smoke/hass_process.py):
the integration and the test satellites (the `satellite_harness` integration)
linked into a throwaway config dir, an entry added through the config flow
against the benchmark's fake, and every ffmpeg process hass starts recorded.
The integration logs at warning level, as the benchmark's own process does.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass
import os
from pathlib import Path
import shutil
from typing import Any

import aiohttp
import psutil

from bench.fake import BenchFakeServer
from bench.satellite import Satellite, TurnRecord
from tests.smoke.flows import entry_pipeline, realtime_entry
from tests.smoke.hass_process import HassApiError, HassClient, HassProcess

# Where scripts/bench says the newest release's virtualenv is.
NEWEST_VENV_ENV = "REALTIME_ASSIST_NEWEST_VENV"
TURN_TIMEOUT_S = 60.0


@dataclass
class NewestHost:
    """The satellites of a running newest `hass` (see bench.kinds.Host)."""

    label: str
    pipeline_id: str
    pipeline_name: str
    process: HassProcess
    client: HassClient

    def dialog(self, http: aiohttp.ClientSession) -> Satellite:
        return Satellite(http, self.process.url, self.client.token, "bench-assist-dialog")

    async def entity_turn(self, kind: str, turn: TurnRecord) -> dict[str, Any]:
        """`satellite_harness/run` with the turn's audio at a microphone's pace."""
        async with self.client.websocket() as ws:
            await ws.send_json(
                {
                    "id": 1,
                    "type": "satellite_harness/run",
                    "kind": kind,
                    "pipeline": self.pipeline_name,
                    "audio": base64.b64encode(turn.audio).decode(),
                    "real_time": True,
                    "mirror": False,
                }
            )
            result = await ws.receive_json(timeout=TURN_TIMEOUT_S)
            if not result["success"]:
                raise RuntimeError(f"the satellite harness refused the turn: {result}")
            while "done" not in (message := await ws.receive_json(timeout=TURN_TIMEOUT_S))["event"]:
                pass
        timeline: dict[str, Any] = message["event"]["timeline"]
        return timeline

    def ffmpeg_conversions(self) -> list[str]:
        """The ffmpeg processes hass started so far, other than its version check."""
        return [args for args in self.process.ffmpeg_invocations() if args != "-version"]

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds of hass, and of its reaped children (ffmpeg)."""
        assert self.process.process is not None
        times = psutil.Process(self.process.process.pid).cpu_times()
        return times.user + times.system, times.children_user + times.children_system


def _empty(directory: Path) -> None:
    """A fresh config dir: hass keeps state (auth, pipelines) in it."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)


@contextlib.asynccontextmanager
async def newest_host(fake: BenchFakeServer, config_dir: Path) -> AsyncIterator[NewestHost]:
    """A started hass of the newest release with an entry on `fake`; stopped afterwards."""
    venv = os.environ.get(NEWEST_VENV_ENV)
    if not venv:
        raise RuntimeError(f"{NEWEST_VENV_ENV} is not set: run the benchmark via scripts/bench")
    _empty(config_dir)
    process = HassProcess(Path(venv) / "bin" / "hass", config_dir, integration_log_level="warning")
    process.write_config()
    try:
        await process.start()
        assert process.client is not None
        # 2026.11 takes `http:` from YAML as a trial that reverts (and restarts the HTTP
        # server) after five minutes unless confirmed: this phase runs longer. (Where
        # `start` has confirmed it already, there is nothing pending: fine.)
        with contextlib.suppress(HassApiError):
            await process.client.ws({"type": "http/config/promote"})
        async with realtime_entry(process.client, fake) as entry_id:
            pipeline = await entry_pipeline(process.client, entry_id)
            yield NewestHost(
                f"Home Assistant {process.version} (hass)",
                pipeline["id"],
                pipeline["name"],
                process,
                process.client,
            )
    except Exception:
        print(f"  hass {process.version or '(newest)'} failed; its log:\n{process.log_tail(30)}")
        raise
    finally:
        await process.stop()
