"""The Assist pipeline's private internals: the one place that touches them.

What the current run is: the pipeline calls speech-to-text, the agent and
text-to-speech without telling them which run (satellite, engines) they
serve. The run's chat session is public (`chat_session.current_session`, set
for the whole run and inherited by the text-to-speech task), and it alone
correlates the three stages. Knowing the satellite (for barge-in and the
model's area context) and the run's other engines (mixed pipelines) needs the
run itself, which only Home Assistant's private run registry has.

Which pipeline is preferred: only the websocket API sets it; a new agent's
pipeline becomes the preferred one when the user asks for it.

tests/test_assist_bridge.py and tests/test_pipeline.py fail loudly if these
internals change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeassistant.components.assist_pipeline import PipelineEventType
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import chat_session

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
    # False: a run is going on but Home Assistant no longer keeps the record that
    # says which (it keeps the last 10 runs per pipeline); nothing else is known.
    known: bool = True


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
