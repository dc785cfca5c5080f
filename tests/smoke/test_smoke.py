"""The integration installs, loads and starts its config flow on the newest Home Assistant."""

import json

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
