"""The integration installs, loads and starts its config flow on the newest Home Assistant."""

from collections.abc import AsyncIterator
import contextlib
import json
from typing import Any

import pytest

from tests.fakes.openai_realtime import (
    FakeConnection,
    FakeOpenAIRealtimeServer,
    FunctionCallItem,
    ScriptedResponse,
    SpeechItem,
)
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


async def _start_flow(hass_client: HassClient) -> str:
    flow = await hass_client.rest("POST", "/api/config/config_entries/flow", {"handler": DOMAIN})
    return f"/api/config/config_entries/flow/{flow['flow_id']}"


def _form(fake_openai: FakeOpenAIRealtimeServer, api_key: str) -> dict[str, Any]:
    return {"provider": "openai", "api_key": api_key, "advanced": {"url": fake_openai.url}}


@contextlib.asynccontextmanager
async def _entry(
    hass_client: HassClient, fake_openai: FakeOpenAIRealtimeServer
) -> AsyncIterator[str]:
    """An entry added through the config flow; removed afterwards."""
    step = await _start_flow(hass_client)
    created = await hass_client.rest("POST", step, _form(fake_openai, fake_openai.api_key))
    assert created["type"] == "create_entry", created
    entry_id: str = created["result"]["entry_id"]
    try:
        yield entry_id
    finally:
        await hass_client.rest("DELETE", f"/api/config/config_entries/entry/{entry_id}")


@pytest.mark.asyncio(loop_scope="session")
async def test_config_flow_refuses_a_bad_key_and_creates_a_working_entry(
    hass_client: HassClient, fake_openai: FakeOpenAIRealtimeServer
) -> None:
    """Through the UI's REST API: a bad key is refused, a good one creates a loaded entry."""
    step = await _start_flow(hass_client)
    refused = await hass_client.rest("POST", step, _form(fake_openai, "sk-wrong"))
    assert (refused["type"], refused["errors"]) == ("form", {"base": "invalid_auth"})
    await hass_client.rest("DELETE", step)

    async with _entry(hass_client, fake_openai) as entry_id:
        entries = await hass_client.ws({"type": "config_entries/get", "domain": DOMAIN})
        assert [(e["entry_id"], e["state"]) for e in entries] == [(entry_id, "loaded")]
        subentries = await hass_client.ws(
            {"type": "config_entries/subentries/list", "entry_id": entry_id}
        )
        assert [s["subentry_type"] for s in subentries] == ["conversation"]
    assert fake_openai.protocol_errors == []


def _turn_on_then_confirm(conn: FakeConnection) -> ScriptedResponse:
    """The model turns the light on with the Assist tool, then confirms."""
    if conn.items[-1]["type"] == "function_call_output":
        return ScriptedResponse(SpeechItem("The kitchen light is on."))
    turn_on = next(t["name"] for t in conn.session["tools"] if t["name"].endswith("HassTurnOn"))
    return ScriptedResponse(
        SpeechItem("Turning it on."), FunctionCallItem(turn_on, {"name": "Kitchen light"})
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_conversation_turn_turns_on_a_light(
    hass_client: HassClient, fake_openai: FakeOpenAIRealtimeServer
) -> None:
    """A conversation over the websocket API: the model's tool call turns a real light on."""
    fake_openai.responder = _turn_on_then_confirm
    try:
        async with _entry(hass_client, fake_openai):
            before = await hass_client.rest("GET", "/api/states/light.kitchen_light")
            assert before["state"] == "off"

            result = await hass_client.ws(
                {
                    "type": "conversation/process",
                    "text": "Turn on the kitchen light",
                    "agent_id": "conversation.realtime_assist",
                }
            )

            speech = result["response"]["speech"]["plain"]["speech"]
            assert speech == "The kitchen light is on."
            after = await hass_client.rest("GET", "/api/states/light.kitchen_light")
            assert after["state"] == "on"
    finally:
        fake_openai.responder = None
    assert fake_openai.protocol_errors == []
