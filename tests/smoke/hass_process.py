"""Run a real `hass` process of the newest Home Assistant release and talk to it.

The unit tests run against the Home Assistant version that
pytest-homeassistant-custom-component pins; this harness catches what they
cannot: a manifest, import or config-flow regression that only shows on the
newest release, with the integration loaded the way a user's installation
loads it (from `<config>/custom_components`) and driven through HTTP and the
websocket API like the frontend drives it.

The client opens a fresh aiohttp session for every call, so it belongs to no
event loop and tests can use it whatever loop pytest-asyncio gives them.
"""

import asyncio
from collections.abc import AsyncIterator, Mapping
import contextlib
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import re
import secrets
import shutil
import signal
import socket
import time
from typing import Any

import aiohttp

PROJECT_DIR = Path(__file__).resolve().parents[2]
INTEGRATION_DIR = PROJECT_DIR / "custom_components" / "realtime_assist"
# Test satellites of every kind inside hass (tests/smoke/satellite_harness).
HARNESS_DIR = Path(__file__).resolve().parent / "satellite_harness"

# What the tests talk to, named even where Home Assistant sets it up on its own
# (frontend pulls in api, config, websocket_api, auth and onboarding); the
# integration's manifest dependencies come with its config entries. Not
# `default_config`: it pulls integrations (bluetooth, dhcp, stream, ...) whose
# requirements the newest venv does not carry and which probe the network. A
# fixed location, time zone and country keep later tests (pipelines, timers)
# independent of the machine. Since 2026.11 `http:` from YAML is imported once
# into .storage/http as a trial that reverts (with a restart onto the default
# port, all addresses) after five minutes unless confirmed, and the frontend asks
# to confirm it on every page: `start` confirms it as the owner.
CONFIGURATION_YAML = """\
homeassistant:
  name: Realtime Assist smoke test
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
  # Where devices fetch media (TTS URLs) from: an ESPHome media player is sent this URL.
  internal_url: "http://127.0.0.1:{port}"
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
websocket_api:
logger:
  default: warning
  logs:
    custom_components.realtime_assist: {log_level}
# Test satellites of every kind (tests/smoke/satellite_harness).
satellite_harness:
# A light for the model to turn on (lights are exposed to Assist by default).
input_boolean:
  kitchen_light_power:
template:
  - light:
      - name: Kitchen light
        unique_id: smoke_kitchen_light
        state: "{{{{ is_state('input_boolean.kitchen_light_power', 'on') }}}}"
        turn_on:
          - action: input_boolean.turn_on
            target:
              entity_id: input_boolean.kitchen_light_power
        turn_off:
          - action: input_boolean.turn_off
            target:
              entity_id: input_boolean.kitchen_light_power
"""

# hass's `ffmpeg`: records its arguments, one line per process, then runs the real one.
FFMPEG_WRAPPER = """#!/bin/sh
printf '%s\\n' "$*" >> '{log}'
exec '{ffmpeg}' "$@"
"""

# Each log record starts on a new line with Home Assistant's date, time and
# level; the lines up to the next record (a traceback) belong to it.
RECORD_START = re.compile(r"^(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", re.M)
ERROR_RECORD = re.compile(r"\S+ \S+ (ERROR|CRITICAL) ")

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
POLL_INTERVAL = 0.1


# Every onboarding step but the user step, which `onboard` does (see `write_config`).
ONBOARDING_STORAGE = {
    "version": 4,
    "minor_version": 1,
    "key": "onboarding",
    "data": {"done": ["core_config", "analytics", "integration"]},
}


@dataclass(frozen=True)
class Login:
    """The owner's credentials, as typed into the frontend's login form."""

    username: str
    password: str


class HassApiError(Exception):
    """A REST call answered with an error status, or a websocket command failed."""

    def __init__(self, status: int | str, body: Any) -> None:
        """Keep the HTTP status (or websocket error code) and the decoded body."""
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def free_port() -> int:
    """Return a loopback port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def error_records(log_text: str, needle: str) -> list[str]:
    """Return the ERROR and CRITICAL records (tracebacks included) that mention needle."""
    return [
        record.rstrip()
        for record in RECORD_START.split(log_text)
        if ERROR_RECORD.match(record) and needle in record
    ]


@dataclass(frozen=True)
class HassClient:
    """Authenticated access to a running Home Assistant's REST and websocket APIs."""

    url: str
    token: str

    async def rest(self, method: str, path: str, json: Any = None) -> Any:
        """Call the REST API and return the decoded body; raise HassApiError on >= 400."""
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.token}"}) as session,
            session.request(method, self.url + path, json=json) as resp,
        ):
            if resp.content_type == "application/json":
                body = await resp.json()
            else:
                body = await resp.text()
            if resp.status >= 400:
                raise HassApiError(resp.status, body)
            return body

    async def switched_off(self, entity_id: str) -> str:
        """Turn an entity off (a test that turns it on must not depend on the test before)."""
        domain = entity_id.split(".", 1)[0]
        await self.rest("POST", f"/api/services/{domain}/turn_off", {"entity_id": entity_id})
        state: str = (await self.rest("GET", f"/api/states/{entity_id}"))["state"]
        return state

    @contextlib.asynccontextmanager
    async def websocket(self) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
        """One authenticated websocket connection, for commands that stream events or audio."""
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(self.url + "/api/websocket") as ws,
        ):
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self.token})
            if (auth := await ws.receive_json())["type"] != "auth_ok":
                raise HassApiError(auth["type"], auth)
            yield ws

    async def ws(self, command: Mapping[str, Any]) -> Any:
        """Send one websocket command on a fresh connection and return its result.

        Raises HassApiError with Home Assistant's error code if the command fails.
        """
        async with self.websocket() as ws:
            await ws.send_json({"id": 1, **command})
            while (message := await ws.receive_json())["type"] != "result":
                pass  # events of a subscription that raced the result
            if not message["success"]:
                raise HassApiError(message["error"]["code"], message["error"])
            return message["result"]

    async def fetch(self, path: str) -> bytes:
        """GET a path (a TTS URL, say) as the owner and return the body's bytes."""
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.token}"}) as session,
            session.get(self.url + path) as resp,
        ):
            body = await resp.read()
            if resp.status >= 400:
                raise HassApiError(resp.status, body[:500])
            return body

    async def run_pipeline(
        self,
        pipeline_id: str,
        audio: bytes,
        *,
        sample_rate: int = 16000,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> list[dict[str, Any]]:
        """Run an Assist pipeline from speech to TTS as a satellite does; return its events.

        `assist_pipeline/run` on one websocket; once the run has started, the
        audio (PCM16 mono at `sample_rate`) goes in binary frames
        `[stt_binary_handler_id][10 ms of audio]` in real time, then an empty
        one ends it. Streaming stops when speech-to-text ends, as a satellite's
        does. Events are collected until `run-end`.
        """
        events: list[dict[str, Any]] = []
        async with self.websocket() as ws:
            await ws.send_json(
                {
                    "id": 1,
                    "type": "assist_pipeline/run",
                    "pipeline": pipeline_id,
                    "start_stage": "stt",
                    "end_stage": "tts",
                    "input": {"sample_rate": sample_rate},
                }
            )
            if not (result := await ws.receive_json())["success"]:
                raise HassApiError(result["error"]["code"], result["error"])
            sender: asyncio.Task[None] | None = None
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        event = (await ws.receive_json())["event"]
                        events.append(event)
                        if event["type"] == "run-start":
                            handler = event["data"]["runner_data"]["stt_binary_handler_id"]
                            chunk = sample_rate * 2 // 100
                            sender = asyncio.create_task(_send_audio(ws, handler, audio, chunk))
                        elif event["type"] == "stt-end" and sender is not None:
                            sender.cancel()
                        elif event["type"] == "run-end":
                            return events
            finally:
                if sender is not None:
                    sender.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sender


async def _send_audio(
    ws: aiohttp.ClientWebSocketResponse, handler: int, audio: bytes, chunk_bytes: int
) -> None:
    """Stream audio in real time, 10 ms a frame, as a satellite's microphone does."""
    prefix = bytes([handler])
    loop = asyncio.get_running_loop()
    started = loop.time()
    for number, start in enumerate(range(0, len(audio), chunk_bytes)):
        await asyncio.sleep(max(0.0, started + number * 0.01 - loop.time()))
        await ws.send_bytes(prefix + audio[start : start + chunk_bytes])
    await ws.send_bytes(prefix)  # end of audio


@dataclass
class HassProcess:
    """A `hass` process on a throwaway config dir, with everything it prints in hass.log."""

    hass_bin: Path
    config_dir: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    client: HassClient | None = None
    # The owner's username and password, for logging in through the frontend.
    login: Login = field(default_factory=lambda: Login("smoke", secrets.token_urlsafe(16)))
    # Seconds from spawning hass until HTTP answered / until it was fully started.
    http_up_after: float = 0.0
    running_after: float = 0.0
    version: str = ""
    # The integration's log level (the benchmark keeps debug logging out of its timings).
    integration_log_level: str = "debug"

    @property
    def url(self) -> str:
        """Base URL of the HTTP server."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Console output rather than home-assistant.log: it also holds crashes before logging."""
        return self.config_dir / "hass.log"

    @property
    def ffmpeg_log(self) -> Path:
        """One line per ffmpeg process hass started: its arguments."""
        return self.config_dir / "ffmpeg-invocations.log"

    def write_config(self) -> None:
        """Write configuration.yaml and link the integration in as a user would install it.

        Also an `ffmpeg` for hass's PATH that records each invocation before it runs the
        real one, so tests can tell whether a reply went through a conversion.

        Onboarding's steps but the first are marked done beforehand: once `start`
        has created the owner, onboarding is complete and the frontend shows the
        real UI (it shows onboarding until then). Done through the API, the
        core_config step would start config flows for met, google_translate and
        radio_browser, which reach the internet.
        """
        config = CONFIGURATION_YAML.format(port=self.port, log_level=self.integration_log_level)
        (self.config_dir / "configuration.yaml").write_text(config)
        storage = self.config_dir / ".storage"
        storage.mkdir()
        (storage / "onboarding").write_text(json.dumps(ONBOARDING_STORAGE))
        custom_components = self.config_dir / "custom_components"
        custom_components.mkdir()
        (custom_components / INTEGRATION_DIR.name).symlink_to(INTEGRATION_DIR)
        (custom_components / HARNESS_DIR.name).symlink_to(HARNESS_DIR)
        real_ffmpeg = shutil.which("ffmpeg")
        if real_ffmpeg is None:
            raise RuntimeError("no ffmpeg on PATH: Home Assistant converts TTS audio with it")
        wrapper = self.config_dir / "bin" / "ffmpeg"
        wrapper.parent.mkdir()
        wrapper.write_text(FFMPEG_WRAPPER.format(log=self.ffmpeg_log, ffmpeg=real_ffmpeg))
        wrapper.chmod(0o755)

    def ffmpeg_invocations(self) -> list[str]:
        """The arguments of every ffmpeg process hass started so far, oldest first."""
        if not self.ffmpeg_log.exists():
            return []
        return self.ffmpeg_log.read_text().splitlines()

    async def start(self) -> None:
        """Start hass, onboard its owner into `client` and wait until it is fully started.

        --skip-pip: Home Assistant pip-installs missing requirements at startup.
        Here that would mean network access in the middle of a test run, a run far
        over its time budget, and a venv changed behind scripts/setup's back, which
        hides a missing install step until the next fresh machine. scripts/setup
        installs what this configuration needs; a gap shows as an import error in
        the log, or as recovery mode when it is the frontend's.
        """
        started_at = time.monotonic()
        path = f"{self.config_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                self.hass_bin,
                *("-c", self.config_dir, "--skip-pip", "--log-no-color"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=os.environ | {"PATH": path},
            )
        async with asyncio.timeout(STARTUP_TIMEOUT):
            await self._wait_for_onboarding_api(self.process)
            self.http_up_after = time.monotonic() - started_at
            self.client = await onboard(self.url, self.login)
            while True:
                config = await self.client.rest("GET", "/api/config")
                if config["state"] == "RUNNING":
                    break
                await asyncio.sleep(POLL_INTERVAL)
            self.running_after = time.monotonic() - started_at
        if config["recovery_mode"]:
            raise RuntimeError("hass started in recovery mode: a required integration failed")
        self.version = config["version"]
        await self.client.ws({"type": "http/config/promote"})

    async def _wait_for_onboarding_api(self, process: asyncio.subprocess.Process) -> None:
        """Wait until the onboarding views answer; they need no credentials."""
        async with aiohttp.ClientSession() as session:
            while process.returncode is None:
                try:
                    async with session.get(self.url + "/api/onboarding") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(POLL_INTERVAL)
        raise RuntimeError(f"hass exited with code {process.returncode} while starting")

    async def stop(self) -> None:
        """Stop hass: SIGTERM for a clean shutdown, SIGKILL if it hangs."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    def log_text(self) -> str:
        """The whole log so far."""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 80) -> str:
        """The last lines of the log, for failure reports."""
        return "\n".join(self.log_text().splitlines()[-lines:])


async def onboard(url: str, login: Login) -> HassClient:
    """Create the owner through the onboarding API (its user step) and log in as them."""
    client_id = url + "/"
    async with aiohttp.ClientSession() as session:
        user = {
            "client_id": client_id,
            "name": "Smoke Test",
            "username": login.username,
            "password": login.password,
            "language": "en",
        }
        async with session.post(url + "/api/onboarding/users", json=user) as resp:
            if resp.status != 200:
                raise HassApiError(resp.status, await resp.text())
            auth_code = (await resp.json())["auth_code"]
        grant = {"grant_type": "authorization_code", "code": auth_code, "client_id": client_id}
        async with session.post(url + "/auth/token", data=grant) as resp:
            if resp.status != 200:
                raise HassApiError(resp.status, await resp.text())
            return HassClient(url, (await resp.json())["access_token"])
