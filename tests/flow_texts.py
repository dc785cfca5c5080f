"""What the frontend shows for a form a flow returned, read from our translations.

The frontend labels each field from `data.<field>` (inside a section:
`sections.<section>.data.<field>`), falls back to the raw field name when that
is missing, and formats every text of the step with the step's
`description_placeholders`; a placeholder it is not given is a "Translation
error". `assert_form_texts` checks a shown form the way a user would read it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import section
from homeassistant.helpers.translation import async_get_translations

from custom_components.realtime_assist.const import DOMAIN
from tests.icu_message import check


def form_fields(schema: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every field of a form schema as (section path + name, validator), sections included."""
    for marker, validator in schema.schema.items():
        name = (*path, str(marker))
        yield name, validator
        if isinstance(validator, section):
            yield from form_fields(validator.schema, name)


async def assert_form_texts(
    hass: HomeAssistant, result: Mapping[str, Any], subentry_type: str | None = None
) -> None:
    """Every field and section of the form has a label; every text formats with its placeholders.

    `subentry_type` for a subentry flow's form (its texts live under
    `config_subentries.<type>`).
    """
    category = "config_subentries" if subentry_type else "config"
    prefix = f"component.{DOMAIN}.{category}." + (f"{subentry_type}." if subentry_type else "")
    translations = await async_get_translations(hass, "en", category, [DOMAIN])
    selectors = await async_get_translations(hass, "en", "selector", [DOMAIN])
    step = f"{prefix}step.{result['step_id']}."

    for path, validator in form_fields(result["data_schema"]):
        sections = "".join(f"sections.{name}." for name in path[:-1])
        if isinstance(validator, section):
            assert translations.get(f"{step}sections.{path[-1]}.name"), f"section {path} unnamed"
            continue
        assert translations.get(f"{step}{sections}data.{path[-1]}"), f"field {path} unlabelled"
        if translation_key := getattr(validator, "config", {}).get("translation_key"):
            for option in validator.config["options"]:
                key = f"component.{DOMAIN}.selector.{translation_key}.options.{option}"
                assert selectors.get(key), f"option {option} of {path} has no text"

    shown = {key: text for key, text in translations.items() if key.startswith(step)}
    for error in (result.get("errors") or {}).values():
        shown[f"{prefix}error.{error}"] = translations.get(f"{prefix}error.{error}", "")
        assert shown[f"{prefix}error.{error}"], f"error {error} has no text"
    given = set(result.get("description_placeholders") or {})
    for key, text in shown.items():
        missing = check(text).arguments - given
        assert not missing, f"{key} needs placeholders {missing} the form does not give"
