"""The home's words for the transcription: names of areas and of exposed entities.

The model hears the user's audio itself, but what speech-to-text returns comes
from the provider's transcription, a separate model that spells proper names
("Hue Go", "Jonas's room") right only when it is told them. The list is bounded
(`vocabulary_within_limits`), most useful first: areas, then the aliases the
owner gave entities (the words people actually say), then entity names.
"""

from __future__ import annotations

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import area_registry as ar, entity_registry as er, intent

from .realtime.config import vocabulary_within_limits


@callback
def async_home_vocabulary(hass: HomeAssistant) -> tuple[str, ...]:
    """Names the user may say to the assistant, bounded; only exposed entities count."""
    areas = [
        name
        for area in ar.async_get(hass).async_list_areas()
        for name in (area.name, *sorted(area.aliases))
    ]
    entities = er.async_get(hass)
    aliases: list[str] = []
    names: list[str] = []
    for state in hass.states.async_all():
        if not async_should_expose(hass, conversation.DOMAIN, state.entity_id):
            continue
        entry = entities.async_get(state.entity_id)
        if entry is not None and entry.aliases:
            aliases += intent.async_get_entity_aliases(hass, entry, state=state)
        names.append(state.name)
    return vocabulary_within_limits([*areas, *aliases, *names])
