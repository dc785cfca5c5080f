"""The logbook's words for the record of what the model did (`EVENT_TOOL_CALL`).

Each tool call becomes one logbook entry named after the agent, in the user's
context (the logbook shows who asked), saying what the model called with which
arguments and how it ended: so "what did the assistant do at 3 am?" has an
answer in Home Assistant's own history.
"""

from __future__ import annotations

from collections.abc import Callable
import json
from typing import Any, Final

from homeassistant.components.logbook.const import (
    LOGBOOK_ENTRY_ENTITY_ID,
    LOGBOOK_ENTRY_MESSAGE,
    LOGBOOK_ENTRY_NAME,
)
from homeassistant.core import Event, HomeAssistant, callback

from .const import DOMAIN, EVENT_TOOL_CALL
from .tools import ToolOutcome

# Arguments in a logbook line are cut after this many characters (the event keeps more).
_MAX_ARGUMENT_CHARS: Final = 200


def _arguments(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _MAX_ARGUMENT_CHARS else text[: _MAX_ARGUMENT_CHARS - 1] + "…"


def _describe(data: dict[str, Any]) -> str:
    """One logbook line for a tool call's record."""
    call = f"{data.get('tool_name')} {_arguments(data.get('tool_args') or {})}"
    error = data.get("error_text") or data.get("error")
    match data.get("outcome"):
        case ToolOutcome.DONE:
            return f"called {call}"
        case ToolOutcome.REFUSED:
            return f"was refused {call}: {error}"
        case ToolOutcome.CANCELLED:
            return f"stopped waiting for {call} (the turn ended)"
        case _:
            return f"called {call}, which failed: {error}"


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, str]]], None],
) -> None:
    """Describe the tool call records."""

    @callback
    def async_describe_tool_call(event: Event) -> dict[str, str]:
        agent_id = event.data.get("agent_id")
        state = hass.states.get(agent_id) if agent_id else None
        description = {
            LOGBOOK_ENTRY_NAME: state.name if state is not None else "Realtime Assist",
            LOGBOOK_ENTRY_MESSAGE: _describe(dict(event.data)),
        }
        if agent_id:
            description[LOGBOOK_ENTRY_ENTITY_ID] = agent_id
        return description

    async_describe_event(DOMAIN, EVENT_TOOL_CALL, async_describe_tool_call)
