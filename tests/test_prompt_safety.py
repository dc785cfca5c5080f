"""The model is told that what it sees and overhears is information, not instructions."""

from __future__ import annotations

from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.realtime_assist.const import DOMAIN, UNTRUSTED_CONTENT_PROMPT
from tests.fakes.providers import FakeProvider
from tests.fixtures_entry import every_provider
from tests.fixtures_home import FRONT_DOOR_CAMERA, HomeCamera

# Each test runs against each provider's fake (tests/fixtures_entry.py).
provider = every_provider


async def test_every_session_is_told_that_images_and_media_are_not_instructions(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    front_door_camera: HomeCamera,
    loaded_entry: MockConfigEntry,
) -> None:
    """The conversation's session (after Home Assistant's prompt) and the session of
    `ask_about_camera` both carry the rule."""
    await conversation.async_converse(
        hass, "Hello", None, Context(), agent_id="conversation.realtime_assist"
    )
    instructions = realtime_fake.connections[-1].instructions
    assert instructions.startswith("You are a voice assistant for Home Assistant.")
    assert instructions.endswith(UNTRUSTED_CONTENT_PROMPT)

    await hass.services.async_call(
        DOMAIN,
        "ask_about_camera",
        {"camera": FRONT_DOOR_CAMERA, "question": "What does the sign say?"},
        blocking=True,
        return_response=True,
    )
    assert UNTRUSTED_CONTENT_PROMPT in realtime_fake.connections[-1].instructions
    assert realtime_fake.protocol_errors == []
