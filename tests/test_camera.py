"""The camera bridge with real Home Assistant cameras, against each provider's fake server.

A real camera entity (`front_door_camera`, tests/fixtures_home.py) serves a
1920x1080 JPEG, red on the left and blue on the right. The tests decode what
the fake model received: the picture it would have seen, at the agent's size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import io
import itertools
import time
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import area_registry as ar, device_registry as dr
from PIL import Image
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.realtime_assist.camera import CAMERA_TOOL_NAME
from custom_components.realtime_assist.const import (
    CONF_CAMERA_FPS,
    CONF_PAIR_CAMERAS,
    DOMAIN,
)
from custom_components.realtime_assist.realtime.providers import PROVIDER_GEMINI, PROVIDER_OPENAI
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.gemini_live import FakeGeminiLiveServer
from tests.fakes.providers import (
    FakeProvider,
    FakeSession,
    GeminiSession,
    OpenAISession,
    Reply,
)
from tests.fixtures_entry import every_provider
from tests.fixtures_home import (
    CAMERA_AREA,
    CAMERA_LEFT_COLOUR,
    CAMERA_RIGHT_COLOUR,
    FRONT_DOOR_CAMERA,
    HomeCamera,
)
from tests.pipeline_helpers import PipelineRun, our_pipeline, run_pipeline

AGENT_ID = "conversation.realtime_assist"
SATELLITE_DOMAIN = "camera_satellite_test"
SATELLITE_RATE = 16000
UTTERANCE = (
    silence(0.2, SATELLITE_RATE) + speech_like(1.0, SATELLITE_RATE) + silence(1.0, SATELLITE_RATE)
)
# The agent's default `camera_long_side`: 1920x1080 frames reach the model at 1024x576.
EXPECTED_SIZE = (1024, 576)

# Each test runs against each provider's fake, unless it pins one (tests/fixtures_entry.py).
provider = every_provider


# -- helpers -------------------------------------------------------------------


def _update_agent(hass: HomeAssistant, entry: MockConfigEntry, **options: Any) -> None:
    """Change the default agent's settings (before the entry is set up)."""
    subentry = next(iter(entry.subentries.values()))
    hass.config_entries.async_update_subentry(entry, subentry, data={**subentry.data, **options})


async def _converse(hass: HomeAssistant, text: str) -> conversation.ConversationResult:
    return await conversation.async_converse(hass, text, None, Context(), agent_id=AGENT_ID)


def _speech(result: conversation.ConversationResult) -> str:
    return str(result.response.speech["plain"]["speech"])


def _answer_after_tools(text: str) -> Callable[[FakeSession], Reply | None]:
    """A model that answers once it has the results of its tool calls."""

    def respond(conn: FakeSession) -> Reply | None:
        return Reply(text) if conn.last_input_was_tool_result() else None

    return respond


def _images(conn: FakeSession) -> list[bytes]:
    """Every image the client showed the model on this connection, in order."""
    if isinstance(conn, OpenAISession):
        return [data for _mime, data in conn.conn.images]
    assert isinstance(conn, GeminiSession)
    return [frame.data for frame in conn.conn.video_frames]


def _image_mimes(conn: FakeSession) -> list[str]:
    if isinstance(conn, OpenAISession):
        return [mime for mime, _data in conn.conn.images]
    assert isinstance(conn, GeminiSession)
    return [frame.mime_type for frame in conn.conn.video_frames]


def _inputs(conn: FakeSession) -> list[str]:
    """What the client sent the model, in order: "image", "text" (a user message) or
    "tool_result"; audio and configuration are left out."""
    kinds: list[str] = []
    if isinstance(conn, OpenAISession):
        for event in conn.conn.received:
            if event.get("type") != "conversation.item.create":
                continue
            item = event.get("item") or {}
            if item.get("type") == "function_call_output":
                kinds.append("tool_result")
            for part in item.get("content") or []:
                if part.get("type") == "input_image":
                    kinds.append("image")
                elif part.get("type") == "input_text":
                    kinds.append("text")
        return kinds
    assert isinstance(conn, GeminiSession)
    for message in conn.conn.received:
        realtime = message.get("realtimeInput") or {}
        if "video" in realtime:
            kinds.append("image")
        if "text" in realtime:
            kinds.append("text")
        kinds.extend(
            "text"
            for turn in (message.get("clientContent") or {}).get("turns") or []
            if turn.get("role") == "user" and any("text" in p for p in turn.get("parts", []))
        )
        if "toolResponse" in message:
            kinds.append("tool_result")
    return kinds


def _assert_is_the_front_door_picture(jpeg: bytes) -> None:
    """A JPEG of the camera's picture, scaled to the agent's default size."""
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG"
        assert image.size == EXPECTED_SIZE
        rgb = image.convert("RGB")
    width, height = EXPECTED_SIZE
    for (x, y), expected in (
        ((width // 4, height // 2), CAMERA_LEFT_COLOUR),
        ((3 * width // 4, height // 2), CAMERA_RIGHT_COLOUR),
    ):
        pixel = rgb.getpixel((x, y))
        assert isinstance(pixel, tuple)
        assert all(abs(a - b) < 20 for a, b in zip(pixel, expected, strict=True)), (pixel, expected)


def _session_connection(fake: FakeProvider) -> FakeSession:
    """The connection of the conversation's session (setup's key check opened the first)."""
    return fake.connections[-1]


# -- the camera tool -----------------------------------------------------------


async def test_model_looks_through_the_camera_and_describes_it(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    front_door_camera: HomeCamera,
    loaded_entry: MockConfigEntry,
) -> None:
    """The model calls the camera tool; it sees the current picture; the user gets its answer."""
    realtime_fake.say_then_call("Let me look.", (CAMERA_TOOL_NAME, {"camera": FRONT_DOOR_CAMERA}))
    realtime_fake.respond_with(_answer_after_tools("A parcel is lying on the doormat."))

    result = await _converse(hass, "Is there a parcel at the front door?")

    assert _speech(result) == "A parcel is lying on the doormat."
    conn = _session_connection(realtime_fake)
    assert CAMERA_TOOL_NAME in conn.tool_names
    [jpeg] = _images(conn)
    assert _image_mimes(conn) == ["image/jpeg"]
    _assert_is_the_front_door_picture(jpeg)
    assert len(front_door_camera.requests) == 1
    [output] = conn.tool_results()
    assert output["success"] is True
    assert output["camera"] == "Front door"
    assert "error" not in output
    # The picture was in the conversation before the model went on after the tool.
    assert _inputs(conn) == ["text", "image", "tool_result"]
    assert realtime_fake.protocol_errors == []


async def test_camera_tool_describes_the_exposed_cameras(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    front_door_camera: HomeCamera,
    loaded_entry: MockConfigEntry,
) -> None:
    """The model is told which cameras it may look through, and where they are."""
    realtime_fake.say("Hello.")

    await _converse(hass, "Hello")

    conn = _session_connection(realtime_fake)
    assert CAMERA_TOOL_NAME in conn.tool_names
    description = _tool_description(conn, CAMERA_TOOL_NAME)
    assert f"{FRONT_DOOR_CAMERA}: Front door (area {CAMERA_AREA})" in description
    assert realtime_fake.protocol_errors == []


def _tool_description(conn: FakeSession, name: str) -> str:
    if isinstance(conn, OpenAISession):
        tools = conn.conn.session["tools"]
    else:
        assert isinstance(conn, GeminiSession)
        tools = [
            declaration
            for tool in conn.conn.setup.get("tools", [])
            for declaration in tool.get("functionDeclarations", [])
        ]
    [description] = [str(tool.get("description", "")) for tool in tools if tool["name"] == name]
    return description


async def test_no_camera_tool_without_an_exposed_camera(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    front_door_camera: HomeCamera,
    loaded_entry: MockConfigEntry,
) -> None:
    async_expose_entity(hass, "conversation", FRONT_DOOR_CAMERA, False)
    realtime_fake.say("Hello.")

    await _converse(hass, "Hello")

    assert CAMERA_TOOL_NAME not in _session_connection(realtime_fake).tool_names
    assert realtime_fake.protocol_errors == []


def _break_camera(hass: HomeAssistant, camera: HomeCamera, how: str) -> None:
    if how == "no_image":
        camera.image = None
    elif how == "raises":
        camera.error = ConnectionError("connection refused by 192.0.2.10")
    elif how == "raises_ha_error":
        camera.error = HomeAssistantError("The camera is rebooting")
    elif how == "undecodable":
        camera.image = b"<html>502 Bad Gateway</html>"
    else:
        assert how == "unavailable"
        camera.go_offline()
        assert hass.states.get(FRONT_DOOR_CAMERA).state == "unavailable"


BROKEN_CAMERAS = ("no_image", "raises", "raises_ha_error", "undecodable", "unavailable")


@pytest.mark.parametrize("broken", BROKEN_CAMERAS)
async def test_broken_camera_gives_the_model_an_error_and_the_user_an_answer(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    front_door_camera: HomeCamera,
    loaded_entry: MockConfigEntry,
    broken: str,
) -> None:
    _break_camera(hass, front_door_camera, broken)
    realtime_fake.say_then_call(None, (CAMERA_TOOL_NAME, {"camera": FRONT_DOOR_CAMERA}))
    realtime_fake.respond_with(_answer_after_tools("I can't see the front door right now."))

    async with asyncio.timeout(10):
        result = await _converse(hass, "Is there a parcel at the front door?")

    assert _speech(result) == "I can't see the front door right now."
    conn = _session_connection(realtime_fake)
    [output] = conn.tool_results()
    # The model hears why it sees nothing, naming the camera.
    assert output["error"] == "CameraUnavailable", output
    assert FRONT_DOOR_CAMERA in output["error_text"]
    assert _images(conn) == []
    assert realtime_fake.protocol_errors == []


async def test_model_cannot_look_through_an_unexposed_camera(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    front_door_camera: HomeCamera,
    loaded_entry: MockConfigEntry,
) -> None:
    """A camera name the model made up (or one not exposed) is an error, and nothing is shown."""
    realtime_fake.say_then_call(None, (CAMERA_TOOL_NAME, {"camera": "camera.bedroom"}))
    realtime_fake.respond_with(_answer_after_tools("I have no bedroom camera."))

    result = await _converse(hass, "What is in the bedroom?")

    assert _speech(result) == "I have no bedroom camera."
    conn = _session_connection(realtime_fake)
    [output] = conn.tool_results()
    assert "error" in output, output
    assert _images(conn) == []
    assert front_door_camera.requests == []
    assert realtime_fake.protocol_errors == []


# -- the ask_about_camera action -----------------------------------------------


async def _ask(hass: HomeAssistant, question: str, **data: Any) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN,
        "ask_about_camera",
        {"camera": FRONT_DOOR_CAMERA, "question": question, **data},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    return dict(response)


async def test_ask_about_camera_returns_the_models_answer(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    front_door_camera: HomeCamera,
    loaded_entry: MockConfigEntry,
) -> None:
    realtime_fake.say("Yes, a brown parcel is on the doormat.")

    response = await _ask(hass, "Is there a parcel?", agent=AGENT_ID)

    assert response == {
        "camera": FRONT_DOOR_CAMERA,
        "answer": "Yes, a brown parcel is on the doormat.",
    }
    conn = _session_connection(realtime_fake)
    assert conn.user_texts() == ["Is there a parcel?"]
    # The picture came before the question.
    assert _inputs(conn) == ["image", "text"]
    [jpeg] = _images(conn)
    _assert_is_the_front_door_picture(jpeg)
    assert realtime_fake.protocol_errors == []


@pytest.mark.parametrize("broken", BROKEN_CAMERAS)
async def test_ask_about_a_broken_camera_raises_a_clear_error(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    front_door_camera: HomeCamera,
    loaded_entry: MockConfigEntry,
    broken: str,
) -> None:
    _break_camera(hass, front_door_camera, broken)
    connections = len(realtime_fake.connections)

    with pytest.raises(HomeAssistantError) as raised:
        await _ask(hass, "Is there a parcel?")

    message = str(raised.value)
    assert FRONT_DOOR_CAMERA in message
    assert "gave no usable image" in message
    # The model was not bothered with a question it could not answer.
    assert len(realtime_fake.connections) == connections
    assert realtime_fake.protocol_errors == []


# -- a satellite paired with the camera in its area -------------------------------


@pytest.fixture
def porch_satellite(hass: HomeAssistant, front_door_camera: HomeCamera) -> str:
    """A satellite device in the camera's area; returns its device id."""
    entry = MockConfigEntry(domain=SATELLITE_DOMAIN)
    entry.add_to_hass(hass)
    devices = dr.async_get(hass)
    device = devices.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(SATELLITE_DOMAIN, "porch")},
        name="Porch satellite",
    )
    area = ar.async_get(hass).async_get_area_by_name(CAMERA_AREA)
    assert area is not None
    devices.async_update_device(device.id, area_id=area.id)
    return device.id


async def _set_up(hass: HomeAssistant, entry: MockConfigEntry, **options: Any) -> None:
    _update_agent(hass, entry, **options)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def _spoken_turn(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    entry: MockConfigEntry,
    device_id: str,
    *,
    realtime: bool = True,
) -> PipelineRun:
    """A spoken turn on the satellite, its audio streamed in real time (or at once)."""
    run = await run_pipeline(
        hass_ws_client,
        our_pipeline(hass, entry).id,
        UTTERANCE,
        device_id=device_id,
        realtime=realtime,
    )
    assert "error" not in run.types, run.of_type("error")
    return run


async def _until_turn_complete(conn: GeminiSession) -> None:
    """Until the fake has sent `turnComplete` (the real server's end of the turn)."""
    await conn.conn.wait_idle()


# Gemini: video input.
@pytest.mark.parametrize("provider", [PROVIDER_GEMINI])
@pytest.mark.parametrize("camera_fps", [None, 4.0])
async def test_paired_camera_streams_video_at_most_once_a_second_until_the_turn_ends(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    ha_core: None,
    realtime_fake: FakeProvider,
    gemini_server: FakeGeminiLiveServer,
    mock_config_entry: MockConfigEntry,
    front_door_camera: HomeCamera,
    porch_satellite: str,
    camera_fps: float | None,
) -> None:
    """While the turn is live the model watches the porch: about one frame a second (even
    when the agent asks for more), and nothing once the turn is over."""
    options: dict[str, Any] = {CONF_PAIR_CAMERAS: True}
    if camera_fps is not None:
        options[CONF_CAMERA_FPS] = camera_fps
    await _set_up(hass, mock_config_entry, **options)
    gemini_server.turn_complete_delay_s = 0.2
    realtime_fake.chunk_delay_s = 0.04  # about real time: the reply takes ~1.5 s
    realtime_fake.hear("Who is at the door?")
    realtime_fake.say("A courier with a parcel.")

    run = await _spoken_turn(hass, hass_ws_client, mock_config_entry, porch_satellite)

    assert run.one("stt-end")["stt_output"]["text"] == "Who is at the door?"
    conn = _session_connection(realtime_fake)
    assert isinstance(conn, GeminiSession)
    await _until_turn_complete(conn)
    turn_over_at = time.monotonic()
    frames = list(conn.conn.video_frames)
    assert len(frames) >= 2, [f.received_at for f in frames]
    intervals = [b.received_at - a.received_at for a, b in itertools.pairwise(frames)]
    assert all(0.9 <= interval < 2.0 for interval in intervals), intervals
    for frame in frames:
        assert frame.mime_type == "image/jpeg"
        _assert_is_the_front_door_picture(frame.data)
    # The camera was only asked for the frames that were sent (none queued), and at most
    # one more: the picture it was taking as the turn ended, dropped.
    assert len(frames) <= len(front_door_camera.requests) <= len(frames) + 1
    # It watched the whole turn, not just its start.
    assert turn_over_at - frames[-1].received_at < 1.5, turn_over_at - frames[-1].received_at
    # The turn is over: no more frames (the next would have come within a second).
    await asyncio.sleep(1.2)
    assert len(conn.conn.video_frames) == len(frames)
    assert all(frame.received_at <= turn_over_at for frame in conn.conn.video_frames)
    assert realtime_fake.protocol_errors == []


# OpenAI: no video input, a snapshot when the user starts speaking.
@pytest.mark.parametrize("provider", [PROVIDER_OPENAI])
async def test_paired_camera_shows_one_snapshot_when_the_user_starts_speaking(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    ha_core: None,
    realtime_fake: FakeProvider,
    mock_config_entry: MockConfigEntry,
    front_door_camera: HomeCamera,
    porch_satellite: str,
) -> None:
    await _set_up(hass, mock_config_entry, **{CONF_PAIR_CAMERAS: True})
    realtime_fake.chunk_delay_s = 0.02
    realtime_fake.hear("Who is at the door?")
    realtime_fake.say("A courier with a parcel.")

    run = await _spoken_turn(hass, hass_ws_client, mock_config_entry, porch_satellite)

    assert run.one("stt-end")["stt_output"]["text"] == "Who is at the door?"
    conn = _session_connection(realtime_fake)
    assert isinstance(conn, OpenAISession)
    [jpeg] = _images(conn)
    _assert_is_the_front_door_picture(jpeg)
    # The snapshot is in the conversation before the user's words: the model answered
    # with it in view.
    kinds = [_item_kind(item) for item in conn.conn.items]
    assert kinds.index("image") < kinds.index("user_audio"), kinds
    await asyncio.sleep(1.2)
    assert len(_images(conn)) == 1
    assert len(front_door_camera.requests) == 1
    assert realtime_fake.protocol_errors == []


def _item_kind(item: dict[str, Any]) -> str:
    if item.get("type") != "message":
        return str(item.get("type"))
    parts = {part.get("type") for part in item.get("content") or []}
    if "input_image" in parts:
        return "image"
    if "input_audio" in parts:
        return "user_audio"
    return f"{item.get('role')}_message"


async def test_satellite_elsewhere_is_not_paired(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    ha_core: None,
    realtime_fake: FakeProvider,
    mock_config_entry: MockConfigEntry,
    front_door_camera: HomeCamera,
    porch_satellite: str,
) -> None:
    """A satellite in another area does not see through the porch camera."""
    kitchen = ar.async_get(hass).async_get_or_create("Kitchen")
    dr.async_get(hass).async_update_device(porch_satellite, area_id=kitchen.id)
    await _set_up(hass, mock_config_entry, **{CONF_PAIR_CAMERAS: True})
    realtime_fake.hear("Who is at the door?")
    realtime_fake.say("I cannot see the door from here.")

    await _spoken_turn(hass, hass_ws_client, mock_config_entry, porch_satellite, realtime=False)

    assert _images(_session_connection(realtime_fake)) == []
    assert front_door_camera.requests == []
    assert realtime_fake.protocol_errors == []


async def test_pairing_is_off_by_default(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    ha_core: None,
    realtime_fake: FakeProvider,
    mock_config_entry: MockConfigEntry,
    front_door_camera: HomeCamera,
    porch_satellite: str,
) -> None:
    await _set_up(hass, mock_config_entry)
    realtime_fake.hear("Who is at the door?")
    realtime_fake.say("I don't know.")

    await _spoken_turn(hass, hass_ws_client, mock_config_entry, porch_satellite, realtime=False)

    assert _images(_session_connection(realtime_fake)) == []
    assert front_door_camera.requests == []
    assert realtime_fake.protocol_errors == []


# Gemini: video input.
@pytest.mark.parametrize("provider", [PROVIDER_GEMINI])
async def test_paired_camera_that_fails_once_keeps_streaming(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    ha_core: None,
    realtime_fake: FakeProvider,
    gemini_server: FakeGeminiLiveServer,
    mock_config_entry: MockConfigEntry,
    front_door_camera: HomeCamera,
    porch_satellite: str,
) -> None:
    """A camera whose first picture fails (a network hiccup): that frame is skipped and the
    model still watches the porch for the rest of the turn; the user gets the answer."""
    await _set_up(hass, mock_config_entry, **{CONF_PAIR_CAMERAS: True})
    gemini_server.turn_complete_delay_s = 0.2
    realtime_fake.chunk_delay_s = 0.04
    realtime_fake.hear("Who is at the door?")
    realtime_fake.say("A courier with a parcel.")
    front_door_camera.error = ConnectionError("connection reset by 192.0.2.10")
    front_door_camera.error_count = 1

    run = await _spoken_turn(hass, hass_ws_client, mock_config_entry, porch_satellite)

    assert run.one("intent-end")["intent_output"]["response"]["speech"]["plain"]["speech"] == (
        "A courier with a parcel."
    )
    conn = _session_connection(realtime_fake)
    assert len(front_door_camera.requests) >= 2
    # Every picture but the failed one went to the model, except one the camera may have
    # been taking as the turn ended (that one is dropped, not sent late).
    assert len(front_door_camera.requests) - 2 <= len(_images(conn))
    assert len(_images(conn)) <= len(front_door_camera.requests) - 1
    assert realtime_fake.protocol_errors == []


# Gemini: video input.
@pytest.mark.parametrize("provider", [PROVIDER_GEMINI])
async def test_slow_paired_camera_skips_frames_and_sends_none_after_the_turn(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    ha_core: None,
    realtime_fake: FakeProvider,
    gemini_server: FakeGeminiLiveServer,
    mock_config_entry: MockConfigEntry,
    front_door_camera: HomeCamera,
    porch_satellite: str,
) -> None:
    """A camera slower than the frame rate (1.2 s a picture): one picture at a time, frames
    as fast as it goes (skipped, never queued up), and the picture still on its way when the
    turn ends is not shown to the model afterwards."""
    await _set_up(hass, mock_config_entry, **{CONF_PAIR_CAMERAS: True})
    gemini_server.turn_complete_delay_s = 0.2
    realtime_fake.chunk_delay_s = 0.04
    realtime_fake.hear("Who is at the door?")
    realtime_fake.say("A courier with a parcel.")
    front_door_camera.delay_s = 1.2

    await _spoken_turn(hass, hass_ws_client, mock_config_entry, porch_satellite)

    conn = _session_connection(realtime_fake)
    assert isinstance(conn, GeminiSession)
    await _until_turn_complete(conn)
    turn_over_at = time.monotonic()
    requests = list(front_door_camera.requests)
    assert len(requests) >= 2, requests
    # One picture at a time: the next is asked for only once the last one came.
    gaps = [b - a for a, b in itertools.pairwise(requests)]
    assert all(gap >= 1.15 for gap in gaps), gaps
    # The picture asked for last was on its way when the turn ended; it would have come
    # within 1.2 s.
    await asyncio.sleep(2.0)
    late = [frame.received_at - turn_over_at for frame in conn.conn.video_frames]
    assert all(delay <= 0 for delay in late), late
    assert realtime_fake.protocol_errors == []


# Gemini: video input.
@pytest.mark.parametrize("provider", [PROVIDER_GEMINI])
async def test_paired_camera_stops_when_the_agent_is_unloaded_mid_turn(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    ha_core: None,
    realtime_fake: FakeProvider,
    gemini_server: FakeGeminiLiveServer,
    mock_config_entry: MockConfigEntry,
    front_door_camera: HomeCamera,
    porch_satellite: str,
) -> None:
    """Reloading the integration (a changed setting) during a turn stops the camera at once,
    even while the camera is busy taking a picture."""
    await _set_up(hass, mock_config_entry, **{CONF_PAIR_CAMERAS: True})
    realtime_fake.chunk_delay_s = 0.04
    realtime_fake.hear("Who is at the door?")
    realtime_fake.say("A courier with a parcel, and he is ringing the bell again and again.")
    front_door_camera.delay_s = 0.5
    run = asyncio.create_task(
        _spoken_turn(hass, hass_ws_client, mock_config_entry, porch_satellite)
    )
    await front_door_camera.wait_for_requests(2)

    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
    unloaded_at = time.monotonic()
    requests = len(front_door_camera.requests)
    await asyncio.sleep(1.5)
    run.cancel()

    assert len(front_door_camera.requests) == requests
    conn = _session_connection(realtime_fake)
    assert all(frame.received_at <= unloaded_at for frame in _gemini_frames(conn))
    assert realtime_fake.protocol_errors == []


def _gemini_frames(conn: FakeSession) -> list[Any]:
    assert isinstance(conn, GeminiSession)
    return list(conn.conn.video_frames)


# Gemini: the video stream is what would go on.
@pytest.mark.parametrize("provider", [PROVIDER_GEMINI])
async def test_paired_camera_stops_when_the_user_said_nothing(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    ha_core: None,
    realtime_fake: FakeProvider,
    mock_config_entry: MockConfigEntry,
    front_door_camera: HomeCamera,
    porch_satellite: str,
) -> None:
    """A wake word and then silence: the turn ends without the model answering, and the
    camera stops with it (it must not watch the porch until the session times out)."""
    await _set_up(hass, mock_config_entry, **{CONF_PAIR_CAMERAS: True})

    run = await run_pipeline(
        hass_ws_client,
        our_pipeline(hass, mock_config_entry).id,
        silence(1.0, SATELLITE_RATE),
        device_id=porch_satellite,
        realtime=True,
    )

    assert "stt-end" not in run.types
    assert run.of_type("error"), run.types
    conn = _session_connection(realtime_fake)
    await asyncio.sleep(0.2)
    frames = len(_images(conn))
    requests = len(front_door_camera.requests)
    await asyncio.sleep(1.5)
    assert len(_images(conn)) == frames
    assert len(front_door_camera.requests) == requests
    assert realtime_fake.protocol_errors == []
