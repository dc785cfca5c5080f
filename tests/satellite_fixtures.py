"""The `satellites` fixture: a satellite of any kind on demand (see tests/satellites.py).

Apart from tests/satellites.py because the smoke test's `hass` (no pytest there)
imports that module through its test integration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from tests.pipeline_helpers import our_pipeline, run_pipeline
from tests.satellites import KINDS, AssistDialog, Satellite, async_add_satellite

type SatelliteFactory = Callable[[str], Awaitable[Satellite]]


@pytest.fixture
async def satellites(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client_no_auth: ClientSessionGenerator,
    loaded_entry: MockConfigEntry,
    kitchen_light: str,
) -> SatelliteFactory:
    """A satellite of any kind on demand, its pipeline set to the integration's."""
    assert await async_setup_component(hass, "assist_satellite", {})
    pipeline = our_pipeline(hass, loaded_entry)

    async def read_url(path: str) -> AsyncIterator[bytes]:
        client = await hass_client_no_auth()
        response = await client.get(path)
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {await response.text()}")
        async for chunk in response.content.iter_any():
            yield chunk

    async def run_dialog(audio: bytes, on_event: Callable[[dict[str, Any]], None]) -> None:
        await run_pipeline(hass_ws_client, pipeline.id, audio, on_event=on_event)

    async def make(kind: str) -> Satellite:
        if kind == AssistDialog.kind:
            return AssistDialog(hass, run_dialog, read_url)
        satellite_kind = KINDS[kind]
        entry = MockConfigEntry(domain=satellite_kind.platform_name)
        entry.add_to_hass(hass)
        return await async_add_satellite(hass, satellite_kind, entry, read_url, pipeline.name)

    return make
