"""The integration installs, loads and starts its config flow on the newest Home Assistant."""

import json

import pytest

from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.smoke.hass_process import INTEGRATION_DIR, HassClient

DOMAIN = "realtime_assist"


async def test_integration_is_loadable(hass_client: HassClient) -> None:
    """Home Assistant reads our manifest from custom_components and offers a config flow."""
    manifest = await hass_client.ws({"type": "manifest/get", "integration": DOMAIN})
    ours = json.loads((INTEGRATION_DIR / "manifest.json").read_text())
    assert (manifest["domain"], manifest["version"]) == (DOMAIN, ours["version"])
    assert manifest["is_built_in"] is False

    handlers = await hass_client.rest("GET", "/api/config/config_entries/flow_handlers")
    assert DOMAIN in handlers


async def test_config_flow_starts_with_user_step(hass_client: HassClient) -> None:
    """Adding the integration from the UI shows the form of the `user` step."""
    flow = await hass_client.rest("POST", "/api/config/config_entries/flow", {"handler": DOMAIN})
    if flow["type"] == "form":
        # Leave no flow in progress behind for the tests that follow.
        await hass_client.rest("DELETE", f"/api/config/config_entries/flow/{flow['flow_id']}")
    assert (flow["type"], flow.get("step_id")) == ("form", "user"), flow


@pytest.mark.asyncio(loop_scope="session")
async def test_config_flow_creates_a_working_entry(
    hass_client: HassClient, fake_openai: FakeOpenAIRealtimeServer
) -> None:
    """Through the UI's REST API: a bad key is refused, a good one creates a loaded entry."""
    flow = await hass_client.rest("POST", "/api/config/config_entries/flow", {"handler": DOMAIN})
    step = f"/api/config/config_entries/flow/{flow['flow_id']}"
    form = {"provider": "openai", "api_key": "sk-wrong", "advanced": {"url": fake_openai.url}}

    refused = await hass_client.rest("POST", step, form)
    assert (refused["type"], refused["errors"]) == ("form", {"base": "invalid_auth"})

    created = await hass_client.rest("POST", step, form | {"api_key": fake_openai.api_key})
    assert created["type"] == "create_entry", created
    entry_id = created["result"]["entry_id"]
    try:
        entries = await hass_client.ws({"type": "config_entries/get", "domain": DOMAIN})
        assert [(e["entry_id"], e["state"]) for e in entries] == [(entry_id, "loaded")]
        subentries = await hass_client.ws(
            {"type": "config_entries/subentries/list", "entry_id": entry_id}
        )
        assert [s["subentry_type"] for s in subentries] == ["conversation"]
        # The key was checked (and the entry set up) by opening real sessions on the fake.
        assert len(fake_openai.connections) >= 2
        assert fake_openai.protocol_errors == []
    finally:
        await hass_client.rest("DELETE", f"/api/config/config_entries/entry/{entry_id}")
