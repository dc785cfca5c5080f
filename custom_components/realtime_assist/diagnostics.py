"""Diagnostics for Realtime Assist: settings that explain behaviour, no secrets."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_API_KEY, CONF_PROMPT, CONF_URL
from homeassistant.core import HomeAssistant

from . import RealtimeAssistConfigEntry
from .const import CONF_PROVIDER

# The URL may carry a key in its query (some proxies take one there); a
# redacted value still shows that an override is set.
TO_REDACT = {CONF_API_KEY, CONF_URL}
# Prompts are the user's own text and may describe their home; like core,
# leave them out entirely.
TO_OMIT = {CONF_PROMPT}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: RealtimeAssistConfigEntry
) -> dict[str, Any]:
    """Return diagnostics for a config entry."""
    agents = entry.runtime_data.agents if entry.state is ConfigEntryState.LOADED else {}
    return {
        "provider": entry.data[CONF_PROVIDER],
        "entry_version": f"{entry.version}.{entry.minor_version}",
        "state": entry.state.value,
        "data": async_redact_data(entry.data, TO_REDACT),
        "subentries": [
            {
                "title": subentry.title,
                "subentry_type": subentry.subentry_type,
                "data": {key: value for key, value in subentry.data.items() if key not in TO_OMIT},
                # Live sessions: counters (turns, reconnects, usage, last error), no content.
                "sessions": agent.pool.diagnostics() if (agent := agents.get(subentry_id)) else {},
                # What it cost: totals, prices, the limit, the last turns' usage (no content).
                "usage": agent.usage.diagnostics() if agent else {},
            }
            for subentry_id, subentry in entry.subentries.items()
        ],
    }
