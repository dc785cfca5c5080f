"""The dashboard card's websocket API (browser.py), driven as the card drives it.

A client starts a conversation, streams microphone audio in binary frames
(speech the fake's voice detection hears), gets the model's words and voice
as events, says what it played, and stops. Barge-in: a second utterance while
the model still talks makes Home Assistant ask for a flush, and the model's
memory is cut to exactly what the client said it played.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
import io
from typing import Any

from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from PIL import Image
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
from pytest_homeassistant_custom_component.typing import MockHAClientWebSocket, WebSocketGenerator

from custom_components.realtime_assist.realtime.providers import PROVIDER_OPENAI
from tests.fakes.audio_samples import utterance
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.fakes.providers import FakeProvider
from tests.fixtures_entry import every_provider
from tests.test_permissions import guest  # noqa: F401 - a fixture

AGENT_ID = "conversation.realtime_assist"

# Each test runs against each provider's fake (tests/fixtures_entry.py) unless pinned.
provider = every_provider
INPUT_RATE = 16000
KITCHEN_LIGHT_HELPERS = ("input_boolean.kitchen_light_power", "input_number.kitchen_light_level")
FRAME_BYTES = INPUT_RATE * 2 // 50  # 20 ms, as the card sends them
EVENT_TIMEOUT_S = 10.0


class Card:
    """One browser's conversation, over its own websocket connection."""

    def __init__(self, client: MockHAClientWebSocket) -> None:
        self.client = client
        self.events: list[dict[str, Any]] = []
        self.ready: dict[str, Any] = {}
        self._ids = 100

    async def start(self, **options: Any) -> None:
        await self.client.send_json({"id": 1, "type": "realtime_assist/browser/start", **options})
        result = await self.client.receive_json()
        assert result["success"], result
        self.ready = await self.wait_for(lambda e: e["type"] == "ready")

    async def speak(self, speech_s: float = 0.8) -> None:
        """An utterance into the microphone, in 20 ms binary frames."""
        prefix = bytes([self.ready["audio_handler"]])
        pcm = utterance(speech_s, rate=INPUT_RATE)
        for start in range(0, len(pcm), FRAME_BYTES):
            await self.client.send_bytes(prefix + pcm[start : start + FRAME_BYTES])

    async def command(self, kind: str, **data: Any) -> dict[str, Any]:
        """Send one of our commands for this conversation; its result (events are kept)."""
        return await self.reply_to(
            {
                "type": f"realtime_assist/browser/{kind}",
                "conversation": self.ready["conversation"],
                **data,
            }
        )

    async def reply_to(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send a websocket command; its result or pong (events are kept)."""
        self._ids += 1
        await self.client.send_json({"id": self._ids, **message})
        while True:
            answer = await self.client.receive_json()
            if answer.get("id") == self._ids and answer["type"] in ("result", "pong"):
                return dict(answer)
            self.events.append(answer["event"])

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The next event (kept ones first) that matches."""
        for event in self.events:
            if predicate(event):
                self.events.remove(event)
                return event
        async with asyncio.timeout(EVENT_TIMEOUT_S):
            while True:
                message = await self.client.receive_json()
                if message["type"] != "event":
                    continue
                if predicate(event := message["event"]):
                    return dict(event)
                self.events.append(event)

    def seen(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == kind]


@pytest.fixture
def visitor(hass: HomeAssistant, kitchen_light: str) -> MockUser:
    """A non-admin user who may talk to the agent and use the kitchen light, nothing else."""
    user = MockUser(name="Visitor").add_to_hass(hass)
    allowed = (AGENT_ID, kitchen_light, *KITCHEN_LIGHT_HELPERS)
    user.mock_policy({"entities": {"entity_ids": dict.fromkeys(allowed, True)}})
    return user


@pytest.fixture
async def card(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, loaded_entry: MockConfigEntry
) -> Card:
    """The owner's browser, its conversation started."""
    browser = Card(await hass_ws_client(hass))
    await browser.start(agent=AGENT_ID, language="en")
    return browser


async def test_a_conversation_from_start_to_stop(
    hass: HomeAssistant, card: Card, realtime_fake: FakeProvider, kitchen_light: str
) -> None:
    """Speech in, the light on, the model's words and voice out, what was played, stop."""
    realtime_fake.hear("Turn on the kitchen light.")
    realtime_fake.say_then_call("Sure.", ("intent__HassTurnOn", {"name": "Kitchen light"}))
    realtime_fake.say("The kitchen light is on.")
    assert card.ready["input_rate"] == INPUT_RATE
    assert card.ready["camera"] is None

    await card.speak()

    assert (await card.wait_for(lambda e: e["type"] == "user" and e["final"]))["text"] == (
        "Turn on the kitchen light."
    )
    await card.wait_for(lambda e: e["type"] == "tool" and e["name"] == "intent__HassTurnOn")
    audio = await card.wait_for(lambda e: e["type"] == "audio")
    assert audio["rate"] == 24000
    assert audio["item"]
    await card.wait_for(lambda e: e["type"] == "model" and e["text"] == "on.")
    assert hass.states.get(kitchen_light).state == STATE_ON
    # The model's words and the tool call are in the conversation's chat log, as a
    # satellite's would be.
    conn = realtime_fake.connections[-1]
    assert "error" not in conn.tool_results()[0]
    result = await card.command("played", played={audio["item"]: 40}, drained=True)
    assert result["success"], result

    assert (await card.command("stop"))["success"]
    assert (await card.wait_for(lambda e: e["type"] == "end"))["reason"] == "stopped"
    await conn.wait_closed()
    assert realtime_fake.protocol_errors == []


async def test_frames_sent_before_the_card_heard_of_the_end_are_no_error(
    hass: HomeAssistant, card: Card, caplog: pytest.LogCaptureFixture
) -> None:
    """The microphone's frames in flight when the conversation ends are dropped quietly."""
    assert (await card.command("stop"))["success"]
    await card.wait_for(lambda e: e["type"] == "end")
    await card.speak(0.1)  # frames the card had sent before the end reached it
    await card.reply_to({"type": "ping"})  # after the frames: they were handled
    assert "non-existing handler" not in caplog.text

    assert (await card.reply_to({"type": "unsubscribe_events", "subscription": 1}))["success"]
    await card.speak(0.02)  # a frame after the card let go: Home Assistant's own error
    await card.reply_to({"type": "ping"})
    assert "non-existing handler" in caplog.text


@pytest.mark.parametrize("provider", [PROVIDER_OPENAI], ids=["truncation is OpenAI's"])
async def test_barge_in_cuts_the_model_to_what_the_card_played(
    card: Card, realtime_fake: FakeProvider, fake_server: FakeOpenAIRealtimeServer
) -> None:
    """Talking over the reply: flush, the card's exact report, a truncation to it."""
    realtime_fake.hear("Tell me a story.")
    realtime_fake.say("Once upon a time there was a very long story that went on and on.")
    fake_server.pacing.hold = asyncio.Event()  # the reply stays under way after its first chunk
    await card.speak()
    first = await card.wait_for(lambda e: e["type"] == "audio")
    conn = fake_server.connections[-1]
    # The provider's voice detection only reports speech: the card's report decides.
    assert conn.session["audio"]["input"]["turn_detection"]["interrupt_response"] is False

    await card.speak(0.5)
    await card.wait_for(lambda e: e["type"] == "flush")
    assert (await card.command("played", played={first["item"]: 27}, final=True))["success"]

    await conn.wait_for_event("response.cancel")
    await conn.wait_for_event("conversation.item.truncate")
    assert conn.truncations == [(first["item"], 27)]
    assert realtime_fake.protocol_errors == []


async def test_a_guest_cannot_have_the_model_do_what_they_may_not(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    realtime_fake: FakeProvider,
    kitchen_light: str,
    thermostat: str,
    visitor: MockUser,
    loaded_entry: MockConfigEntry,
) -> None:
    """Tools run as the card's user: the visitor's light turns on, the thermostat is refused."""
    refresh = await hass.auth.async_create_refresh_token(visitor, "https://browser.test/")
    browser = Card(await hass_ws_client(hass, hass.auth.async_create_access_token(refresh)))
    await browser.start(agent=AGENT_ID, language="en")
    realtime_fake.hear("Make it cosy.")
    realtime_fake.say_then_call(
        None,
        ("intent__HassTurnOn", {"name": "Kitchen light"}),
        ("intent__HassTurnOn", {"name": "Thermostat"}),
    )
    realtime_fake.say("I could only turn on the light.")

    await browser.speak()
    await browser.wait_for(lambda e: e["type"] == "model" and "only" in e["text"])

    light, heating = realtime_fake.connections[-1].tool_results()
    assert "error" not in light, light
    assert "error" in heating, heating
    assert hass.states.get(kitchen_light).state == STATE_ON
    assert hass.states.get(thermostat).state == "heat"
    assert realtime_fake.protocol_errors == []


async def test_the_reply_after_tools_reaches_the_card_when_events_come_at_once(
    hass: HomeAssistant, card: Card, realtime_fake: FakeProvider, kitchen_light: str
) -> None:
    """The user's speech start and stop and the model's tool call in one read (network load):
    the speech start is the user's own turn, not a barge-in, and the reply after the tool
    result is played and shown. The turn subscribed before the card's driver, so it has
    read the whole burst (and answers) before the driver reads the speech start."""
    realtime_fake.hear("Turn on the kitchen light.")
    realtime_fake.say_then_call(None, ("intent__HassTurnOn", {"name": "Kitchen light"}))
    realtime_fake.say("The kitchen light is on.")
    realtime_fake.burst_next_user_turn()

    await card.speak()

    await card.wait_for(lambda e: e["type"] == "audio")
    await card.wait_for(lambda e: e["type"] == "model" and e["text"] == "on.")
    light = hass.states.get(kitchen_light)
    assert light is not None
    assert light.state == STATE_ON
    assert (await card.command("stop"))["success"]
    await card.wait_for(lambda e: e["type"] == "end")
    # Nothing was taken for the user talking over the model, before the end or after.
    assert card.seen("flush") == []
    assert realtime_fake.protocol_errors == []


async def test_two_browsers_hold_two_conversations(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    realtime_fake: FakeProvider,
    loaded_entry: MockConfigEntry,
) -> None:
    """A second browser gets a conversation and a session of its own, at the same time."""
    first, second = Card(await hass_ws_client(hass)), Card(await hass_ws_client(hass))
    await asyncio.gather(first.start(agent=AGENT_ID), second.start(agent=AGENT_ID))
    assert first.ready["conversation_id"] != second.ready["conversation_id"]
    realtime_fake.hear("Hello from the kitchen.")
    realtime_fake.say("Hello kitchen.")
    realtime_fake.hear("Hello from the hall.")
    realtime_fake.say("Hello hall.")

    await first.speak()
    await first.wait_for(lambda e: e["type"] == "model" and "kitchen" in e["text"])
    await second.speak()
    await second.wait_for(lambda e: e["type"] == "model" and "hall" in e["text"])

    talked = [conn for conn in realtime_fake.connections if conn.user_texts()]
    assert sorted(text for conn in talked for text in conn.user_texts()) == [
        "Hello from the hall.",
        "Hello from the kitchen.",
    ]
    assert len(talked) == 2
    assert realtime_fake.protocol_errors == []


async def test_only_a_user_who_may_see_the_agent_starts(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    guest: MockUser,  # noqa: F811 - the fixture
    loaded_entry: MockConfigEntry,
) -> None:
    """A user without read permission on the agent's entity gets no conversation."""
    refresh = await hass.auth.async_create_refresh_token(guest, "https://browser.test/")
    client = await hass_ws_client(hass, hass.auth.async_create_access_token(refresh))
    await client.send_json({"id": 1, "type": "realtime_assist/browser/start", "agent": AGENT_ID})
    result = await client.receive_json()
    assert not result["success"]
    assert result["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("provider", [PROVIDER_OPENAI], ids=["snapshots are OpenAI's"])
async def test_the_card_is_asked_for_a_frame_again_when_it_sent_none(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    realtime_fake: FakeProvider,
    fake_server: FakeOpenAIRealtimeServer,
    loaded_entry: MockConfigEntry,
) -> None:
    """The card had no picture when it was asked for one (its camera still off): the next
    time the user speaks it is asked again, and the frame it then sends reaches the model."""
    browser = Card(await hass_ws_client(hass))
    await browser.start(agent=AGENT_ID, language="en", camera=True)
    assert browser.ready["camera"] == "snapshot"
    realtime_fake.hear("Hello.")
    realtime_fake.say("Hello there.")
    realtime_fake.hear("What am I holding?")
    realtime_fake.say("A red square.")

    await browser.speak()
    await browser.wait_for(lambda e: e["type"] == "snapshot")  # the camera is off: no frame
    await browser.wait_for(lambda e: e["type"] == "model" and "there" in e["text"])

    await browser.speak()  # the user turned the camera on, and shows it something
    await browser.wait_for(lambda e: e["type"] == "snapshot")
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 48), (255, 0, 0)).save(jpeg, format="JPEG")
    image = base64.b64encode(jpeg.getvalue()).decode("ascii")
    assert (await browser.command("frame", image=image))["success"]

    conn = fake_server.connections[-1]
    await conn.wait_for_event("conversation.item.create")
    assert conn.images == [("image/jpeg", jpeg.getvalue())]
    await browser.wait_for(lambda e: e["type"] == "model" and "square" in e["text"])
    assert realtime_fake.protocol_errors == []
