"""Adding Gemini Live in the UI: the key is checked against a real Live session."""

from __future__ import annotations

from homeassistant.config_entries import SOURCE_USER, ConfigEntry, ConfigEntryState
from homeassistant.const import CONF_API_KEY
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.realtime_assist.const import (
    CONF_CAMERA_FPS,
    CONF_CAMERA_LONG_SIDE,
    CONF_MODEL,
    CONF_PAIR_CAMERAS,
    CONF_PROVIDER,
    CONF_TURN_DETECTION,
    CONF_VAD_EAGERNESS,
    CONF_VOICE,
    DOMAIN,
    SECTION_ADVANCED,
    SECTION_CAMERA,
    SUBENTRY_CONVERSATION,
)
from tests.fakes.gemini_live import FakeGeminiLiveServer
from tests.flow_texts import assert_form_texts, form_fields
from tests.test_config_flow import form_field, sections

pytestmark = pytest.mark.usefixtures("ha_core")


def _form(gemini: FakeGeminiLiveServer, api_key: str) -> dict[str, object]:
    return {CONF_PROVIDER: "gemini", CONF_API_KEY: api_key, SECTION_ADVANCED: {"url": gemini.url}}


async def _gemini_entry(hass: HomeAssistant, gemini: FakeGeminiLiveServer) -> ConfigEntry:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _form(gemini, gemini.api_key)
    )
    await hass.async_block_till_done()
    entry: ConfigEntry = result["result"]
    return entry


async def test_gemini_key_is_checked_and_the_entry_created(
    hass: HomeAssistant, gemini: FakeGeminiLiveServer
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _form(gemini, "AIza-not-a-key")
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    assert result["description_placeholders"]["url"] == gemini.url
    assert "AIza-not-a-key" not in str(result["description_placeholders"])
    await assert_form_texts(hass, result)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _form(gemini, gemini.api_key)
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"Gemini Live ({gemini.url.split('/')[2]})"
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    (subentry,) = entry.subentries.values()
    assert subentry.subentry_type == SUBENTRY_CONVERSATION
    assert subentry.data[CONF_MODEL].startswith("gemini-")
    assert subentry.data[CONF_VOICE] == "Puck"
    assert gemini.protocol_errors == []


async def test_gemini_agent_form_hides_what_gemini_lacks(
    hass: HomeAssistant, gemini: FakeGeminiLiveServer
) -> None:
    """No semantic turn detection and no eagerness for Gemini; its 30 voices, described."""
    entry = await _gemini_entry(hass, gemini)
    form = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONVERSATION),
        context={"source": SOURCE_USER},
    )

    fields = {path[-1]: validator for path, validator in form_fields(form["data_schema"])}
    assert CONF_VAD_EAGERNESS not in fields
    modes = fields[CONF_TURN_DETECTION].config["options"]
    assert "semantic_vad" not in modes
    voices = fields[CONF_VOICE].config["options"]
    assert len(voices) == 30
    assert voices[0] == {"value": "Zephyr", "label": "Zephyr (Bright)"}
    assert {"value": "Puck", "label": "Puck (Upbeat)"} in voices
    await assert_form_texts(hass, form, SUBENTRY_CONVERSATION)


@pytest.mark.usefixtures("front_door_camera")
async def test_gemini_camera_section_has_the_video_frame_rate(
    hass: HomeAssistant, gemini: FakeGeminiLiveServer
) -> None:
    """Gemini watches a paired camera as video: its frame rate shows only while pairing is on."""
    entry = await _gemini_entry(hass, gemini)
    form = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONVERSATION),
        context={"source": SOURCE_USER},
    )
    camera = sections(form)[SECTION_CAMERA]
    assert [str(m) for m in camera.schema.schema] == [
        CONF_PAIR_CAMERAS,
        CONF_CAMERA_FPS,
        CONF_CAMERA_LONG_SIDE,
    ]
    marker, _ = form_field(form, CONF_CAMERA_FPS)
    # Home Assistant 2026.11 hides it until pairing is on; 2026.10 always shows it.
    if hasattr(marker, "visible"):
        assert marker.visible == {"field": CONF_PAIR_CAMERAS, "value": True}
    await assert_form_texts(hass, form, SUBENTRY_CONVERSATION)
