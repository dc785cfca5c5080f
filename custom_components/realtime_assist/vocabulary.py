"""The home's words for the transcription: names of areas and of exposed entities.

The model hears the user's audio itself, but what speech-to-text returns comes
from the provider's transcription, a separate model that spells proper names
("Hue Go", "Jonas's room") right only when it is told them. The list is bounded
(`vocabulary_within_limits`), most useful first: areas, then the aliases the
owner gave entities (the words people actually say), then entity names.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from homeassistant.core import HomeAssistant, State, callback
from homeassistant.helpers import area_registry as ar, entity_registry as er

from .realtime.config import vocabulary_within_limits


@callback
def async_home_vocabulary(hass: HomeAssistant, exposed: Sequence[State]) -> tuple[str, ...]:
    """Names the user may say to the assistant, bounded; `exposed`: the exposed entities' states.

    The terms are made one by one as the bound takes them, and it stops at as
    many as it keeps.
    """
    entities = er.async_get(hass)

    def terms() -> Iterator[str]:
        for area in ar.async_get(hass).async_list_areas():
            yield area.name
            yield from sorted(area.aliases)
        for state in exposed:
            entry = entities.async_get(state.entity_id)
            if entry is not None:
                # Every entity's aliases hold its computed name unless the owner took
                # it out: names come after all the aliases the owner wrote.
                yield from (alias for alias in entry.aliases if alias is not er.COMPUTED_NAME)
        for state in exposed:
            yield state.name

    return vocabulary_within_limits(terms())
