"""The Assist pipeline's internals: the one place that leans on them.

What the current run is: the pipeline calls speech-to-text, the agent and
text-to-speech without telling them which run (satellite, engines) they
serve. The run's chat session is public (`chat_session.current_session`, set
for the whole run and inherited by the text-to-speech task), and it alone
correlates the three stages. Knowing the satellite (for barge-in and the
model's area context) and the run's other engines (mixed pipelines) needs the
run itself, which only Home Assistant's private run registry has.

When the satellite starts playing is the pipeline's decision too (see
`start_streaming_reply` and `plays_from_tts_end`).

Which pipeline is preferred: only the websocket API sets it; a new agent's
pipeline becomes the preferred one when the user asks for it.

tests/test_assist_bridge.py and tests/test_pipeline.py fail loudly if these
internals change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.assist_pipeline import PipelineEventType
from homeassistant.components.assist_pipeline.models import PipelineStage
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import chat_session, entity_registry as er

from .const import LOGGER


@dataclass(frozen=True, slots=True)
class PipelineRunInfo:
    """The parts of a pipeline run the realtime entities act on."""

    conversation_id: str
    device_id: str | None
    satellite_id: str | None
    conversation_engine: str | None
    stt_engine: str | None
    tts_engine: str | None
    context: Context | None
    # The run goes on to text-to-speech (a typed question in the Assist dialog ends at intent).
    speaks: bool = True
    # False: a run is going on but Home Assistant no longer keeps the record that
    # says which (it keeps the last 10 runs per pipeline); nothing else is known.
    known: bool = True
    # Which run: a turn speech-to-text began belongs to its own run's conversation stage.
    run_id: str | None = None


def current_conversation_id() -> str | None:
    """The conversation of the pipeline run (or conversation) this code runs in."""
    session = chat_session.current_session.get()
    return session.conversation_id if session is not None else None


def current_pipeline_run(hass: HomeAssistant) -> PipelineRunInfo | None:
    """The pipeline run this code runs in, if any."""
    if (conversation_id := current_conversation_id()) is None:
        return None
    try:
        from homeassistant.components.assist_pipeline.runtime import KEY_ASSIST_PIPELINE

        data: Any = hass.data.get(KEY_ASSIST_PIPELINE)
        if data is None:
            return None
        unrecorded = False
        for runs in data.pipeline_runs._pipeline_runs.values():
            for run in runs.values():
                debug = (data.pipeline_debug.get(run.pipeline.id) or {}).get(run.id)
                if debug is None:
                    unrecorded = True
                    continue
                started = next(
                    (event for event in debug.events if event.type == PipelineEventType.RUN_START),
                    None,
                )
                if started is None or started.data.get("conversation_id") != conversation_id:
                    continue
                return PipelineRunInfo(
                    conversation_id=conversation_id,
                    device_id=run.device_id,
                    satellite_id=run.satellite_id,
                    conversation_engine=run.pipeline.conversation_engine,
                    stt_engine=run.pipeline.stt_engine,
                    tts_engine=run.pipeline.tts_engine,
                    context=run.context,
                    speaks=run.end_stage == PipelineStage.TTS,
                    run_id=run.id,
                )
        if unrecorded:
            return PipelineRunInfo(conversation_id, None, None, None, None, None, None, known=False)
    except (AttributeError, ImportError, KeyError, TypeError) as err:
        LOGGER.warning(
            "Cannot read the Assist pipeline run (Home Assistant changed its internals: %r); "
            "barge-in and mixed pipelines degrade",
            err,
        )
    return None


# Satellite integrations that start playing a reply only at the pipeline's
# `tts-end` (after the conversation stage returned), whatever streams earlier:
# VoIP always; ESPHome when the device plays through its own speaker (HA streams
# to it), not through a media player (which fetches the URL on `tts_start_streaming`).
_TTS_END_PLATFORMS = frozenset({"voip"})
_ESPHOME = "esphome"


def plays_from_tts_end(hass: HomeAssistant, run: PipelineRunInfo | None) -> bool:
    """Whether the run's satellite starts playing only at `tts-end`.

    Read from the registries (public): the satellite entity's integration and,
    for ESPHome, whether its device has a media player. Unknown satellites and
    runs without one (the Assist dialog, which plays the TTS URL from
    `run-start`) start with the stream.
    """
    if run is None or run.satellite_id is None:
        return False
    entities = er.async_get(hass)
    if (satellite := entities.async_get(run.satellite_id)) is None:
        return False
    if satellite.platform in _TTS_END_PLATFORMS:
        return True
    if satellite.platform != _ESPHOME or satellite.device_id is None:
        return False
    return not any(
        entry.domain == "media_player" and entry.platform == _ESPHOME
        for entry in er.async_entries_for_device(entities, satellite.device_id)
    )


def start_streaming_reply(chat_log: conversation.ChatLog) -> bool:
    """Make the pipeline start streaming the reply's audio to the satellite now.

    Home Assistant starts streaming text-to-speech (and tells the satellite,
    `intent-progress` with `tts_start_streaming`) once the agent has streamed
    more than `STREAM_RESPONSE_CHARS` characters, or text followed by a tool
    call; a short reply otherwise waits for the end of the conversation stage.
    Our text-to-speech plays the model's own audio, which is there before its
    words: at the model's first audio we hand the pipeline's own listener a
    delta of line breaks past that threshold, which opens the stream exactly as
    a long reply would. It reaches the listener only (the chat log keeps the
    model's words as they are); a chat view shows nothing for line breaks.
    Returns False when the run has no such listener (not a pipeline run).
    """
    listener = chat_log.delta_listener
    if listener is None:
        return False
    listener(chat_log, {"role": "assistant", "content": "\n" * (_stream_response_chars() + 1)})
    return True


def _stream_response_chars() -> int:
    from homeassistant.components.assist_pipeline.default_pipeline import STREAM_RESPONSE_CHARS

    return STREAM_RESPONSE_CHARS


def async_set_preferred_pipeline(hass: HomeAssistant, pipeline_id: str) -> None:
    """Make a pipeline the preferred one, as the Assist settings page does."""
    try:
        from homeassistant.components.assist_pipeline.runtime import KEY_ASSIST_PIPELINE

        hass.data[KEY_ASSIST_PIPELINE].pipeline_store.async_set_preferred_item(pipeline_id)
    except (AttributeError, ImportError, KeyError) as err:
        LOGGER.warning(
            "Cannot make the new pipeline the preferred one (Home Assistant changed its "
            "internals: %r); pick it under Settings > Voice assistants",
            err,
        )
