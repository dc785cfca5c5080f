"""Camera bridge: Home Assistant cameras feed frames into the live session.

- A tool for the model ("look at a camera"): it belongs to our agent, not to
  the Assist API shared by every agent, because it puts the frame into *our*
  live session; another agent's model could not see it.
- A satellite paired with a camera (the exposed camera in the satellite's
  area): while a turn on that satellite is live the model sees through it, on
  Gemini as a low-rate video stream, on OpenAI as a snapshot when the user
  starts speaking.
- Frames are downscaled and re-encoded to JPEG in an executor, never in the
  event loop. Unavailable or slow cameras and undecodable images become clear
  errors, never a hung turn.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import io

from homeassistant.auth.permissions.const import POLICY_READ
from homeassistant.components import camera
from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    llm,
)
from PIL import Image, UnidentifiedImageError
import probatio

from .assist_bridge import current_conversation_id
from .const import DOMAIN, LOGGER
from .realtime.errors import RealtimeError
from .realtime.pool import SessionPool
from .realtime.session import RealtimeSession
from .realtime.turn import Turn
from .tools import async_user_may, error_result

CAMERA_DOMAIN = "camera"
CAMERA_TOOL_NAME = f"{DOMAIN}__look_at_camera"
CONVERSATION_ASSISTANT = "conversation"
DEFAULT_LONG_SIDE = 1024
# A camera that does not answer within this gives the model an error instead.
SNAPSHOT_TIMEOUT_S = 5
JPEG_QUALITY = 80
# Video frames no faster than this: about what the providers take (Gemini: 1 fps).
MIN_FRAME_INTERVAL_S = 1.0
# Largest image we accept from a camera before decoding it.
MAX_IMAGE_BYTES = 20 * 1024 * 1024


class CameraError(HomeAssistantError):
    """A frame could not be had from a camera."""


@dataclass(frozen=True, slots=True)
class ExposedCamera:
    """A camera the model may look through, as the model is told about it."""

    entity_id: str
    name: str
    area: str | None


def exposed_cameras(hass: HomeAssistant) -> list[ExposedCamera]:
    """Cameras exposed to Assist, with their names and areas."""
    entities = er.async_get(hass)
    devices = dr.async_get(hass)
    areas = ar.async_get(hass)
    cameras = []
    for state in hass.states.async_all(CAMERA_DOMAIN):
        if not async_should_expose(hass, CONVERSATION_ASSISTANT, state.entity_id):
            continue
        area_id = None
        if (entry := entities.async_get(state.entity_id)) is not None:
            area_id = entry.area_id
            if (
                area_id is None
                and entry.device_id
                and (device := devices.async_get(entry.device_id))
            ):
                area_id = device.area_id
        area = areas.async_get_area(area_id) if area_id else None
        cameras.append(ExposedCamera(state.entity_id, state.name, area.name if area else None))
    return cameras


def camera_in_area_of_device(hass: HomeAssistant, device_id: str | None) -> str | None:
    """The exposed camera in the same area as a satellite (its pairing), if any."""
    if device_id is None or (device := dr.async_get(hass).async_get(device_id)) is None:
        return None
    if device.area_id is None:
        return None
    area = ar.async_get(hass).async_get_area(device.area_id)
    for exposed in exposed_cameras(hass):
        if area is not None and exposed.area == area.name:
            return exposed.entity_id
    return None


async def async_snapshot(hass: HomeAssistant, entity_id: str, long_side: int) -> bytes:
    """A JPEG of the camera's current frame, its long side at most `long_side` pixels."""
    try:
        image = await camera.async_get_image(hass, entity_id, timeout=SNAPSHOT_TIMEOUT_S)
    except HomeAssistantError as err:
        raise CameraError(f"{entity_id} gave no image: {err}") from err
    except Exception as err:
        # A camera platform's own failure (network, device library): Home Assistant
        # passes it through, and it must not kill a paired camera's feed or escape the
        # action as an unexplained error.
        LOGGER.debug("Camera %s failed to give an image", entity_id, exc_info=True)
        raise CameraError(f"{entity_id} gave no image: {err or type(err).__name__}") from err
    if len(image.content) > MAX_IMAGE_BYTES:
        raise CameraError(f"{entity_id} sent an image of {len(image.content)} bytes, too large")
    return await hass.async_add_executor_job(_to_jpeg, image.content, long_side, entity_id)


def _to_jpeg(content: bytes, long_side: int, entity_id: str) -> bytes:
    """Decode, downscale and re-encode (runs in an executor: CPU work)."""
    try:
        with Image.open(io.BytesIO(content)) as source:
            frame = source.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise CameraError(f"{entity_id} sent an image that cannot be decoded") from err
    frame.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    frame.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


class CameraTool(llm.Tool):
    """Puts a camera's current frame in front of the model, mid-conversation."""

    name = CAMERA_TOOL_NAME

    def __init__(
        self,
        hass: HomeAssistant,
        sessions: SessionPool,
        cameras: list[ExposedCamera],
        long_side: int,
    ) -> None:
        self.integration = DOMAIN
        self._hass = hass
        self._sessions = sessions
        self._cameras = {c.entity_id: c for c in cameras}
        self._long_side = long_side
        listed = "; ".join(
            f"{c.entity_id}: {c.name}" + (f" (area {c.area})" if c.area else "") for c in cameras
        )
        self.description = (
            "Look through one of the home's cameras: you will see its current image and "
            f"can describe it. Cameras: {listed}"
        )
        self.parameters = probatio.Schema(
            {probatio.Required("camera"): probatio.In(list(self._cameras))}
        )

    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> llm.ToolResult:
        entity_id = str(tool_input.tool_args.get("camera", ""))
        if entity_id not in self._cameras:
            return error_result(
                "CameraNotExposed",
                f"{entity_id} is not a camera you may look through",
                refused=True,
            )
        if not await async_user_may(hass, llm_context.context, entity_id, POLICY_READ):
            return error_result(
                "Unauthorized", f"The user is not allowed to see {entity_id}.", refused=True
            )
        conversation_id = current_conversation_id()
        session = self._sessions.get(conversation_id) if conversation_id else None
        if session is None:
            return error_result("NoSession", "There is no live conversation to show the image in")
        try:
            jpeg = await async_snapshot(hass, entity_id, self._long_side)
        except CameraError as err:
            LOGGER.warning("Camera tool: %s", err)
            return error_result("CameraUnavailable", str(err))
        await session.send_image(jpeg, "image/jpeg")
        return llm.ToolResult(
            data={
                "success": True,
                "camera": self._cameras[entity_id].name,
                "note": "The camera's current image is now in the conversation: describe it.",
            }
        )


async def async_run_paired_camera(
    hass: HomeAssistant,
    turn: Turn,
    entity_id: str,
    *,
    video: bool,
    frame_interval_s: float,
    long_side: int,
) -> None:
    """Let the model see through a satellite's camera while its turn is live.

    Video (Gemini): a frame every `frame_interval_s`; when the camera is slower,
    frames are skipped, never queued. Snapshot (OpenAI, no video input): one
    frame when the user starts speaking. Runs as a task attached to the turn,
    which cancels it when it ends.
    """
    try:
        if not video:
            await turn.speech_started.wait()
            await _send_frame(hass, turn.session, entity_id, long_side)
            return
        interval = max(frame_interval_s, MIN_FRAME_INTERVAL_S)
        while True:
            if (jpeg := await _snapshot_or_none(hass, entity_id, long_side)) is not None:
                await turn.session.send_image(jpeg, "image/jpeg")
            # From the last frame sent: never faster than the provider takes them.
            await asyncio.sleep(interval)
    except RealtimeError as err:
        LOGGER.debug("The paired camera stopped: %s", err)


async def _snapshot_or_none(hass: HomeAssistant, entity_id: str, long_side: int) -> bytes | None:
    """A frame of the camera, or None when it gave none (the frame is skipped).

    Cancellable: Home Assistant's `camera.async_get_image` swallows cancellation, so
    the picture is taken in a task of its own, left to finish (or give up) when this
    is cancelled, and dropped.
    """
    snapshot = asyncio.ensure_future(async_snapshot(hass, entity_id, long_side))
    try:
        await asyncio.wait({snapshot})
    finally:
        if not snapshot.done():
            snapshot.add_done_callback(_drop_outcome)
            snapshot.cancel()
    try:
        return snapshot.result()
    except CameraError as err:
        LOGGER.debug("Skipping a frame: %s", err)
        return None


def _drop_outcome(task: asyncio.Future[bytes]) -> None:
    """Retrieve an abandoned picture's outcome, so a failure is not logged as unhandled."""
    if not task.cancelled():
        task.exception()


async def _send_frame(
    hass: HomeAssistant, session: RealtimeSession, entity_id: str, long_side: int
) -> None:
    if (jpeg := await _snapshot_or_none(hass, entity_id, long_side)) is not None:
        await session.send_image(jpeg, "image/jpeg")
