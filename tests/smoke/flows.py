"""Config entries of the integration, added through the UI's REST API."""

from collections.abc import AsyncIterator
import contextlib
from typing import Any

from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.smoke.hass_process import HassClient

DOMAIN = "realtime_assist"


async def start_flow(hass_client: HassClient, handler: str = DOMAIN) -> str:
    """Start a config flow; the path of its next step."""
    flow = await hass_client.rest("POST", "/api/config/config_entries/flow", {"handler": handler})
    return f"/api/config/config_entries/flow/{flow['flow_id']}"


def entry_form(fake_openai: FakeOpenAIRealtimeServer, api_key: str) -> dict[str, Any]:
    return {"provider": "openai", "api_key": api_key, "advanced": {"url": fake_openai.url}}


@contextlib.asynccontextmanager
async def realtime_entry(
    hass_client: HassClient, fake_openai: FakeOpenAIRealtimeServer
) -> AsyncIterator[str]:
    """An entry added through the config flow; removed afterwards."""
    step = await start_flow(hass_client)
    created = await hass_client.rest("POST", step, entry_form(fake_openai, fake_openai.api_key))
    assert created["type"] == "create_entry", created
    entry_id: str = created["result"]["entry_id"]
    try:
        yield entry_id
    finally:
        await hass_client.rest("DELETE", f"/api/config/config_entries/entry/{entry_id}")


async def entry_pipeline(hass_client: HassClient, entry_id: str) -> dict[str, Any]:
    """The Assist pipeline the entry created for its agent."""
    registry = await hass_client.ws({"type": "config/entity_registry/list"})
    ours = {e["entity_id"] for e in registry if e["config_entry_id"] == entry_id}
    listed = await hass_client.ws({"type": "assist_pipeline/pipeline/list"})
    [pipeline] = [p for p in listed["pipelines"] if p["conversation_engine"] in ours]
    assert {pipeline["stt_engine"], pipeline["tts_engine"]} <= ours, pipeline
    return dict(pipeline)
