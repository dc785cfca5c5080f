"""The agent form's Costs section: a daily limit, and prices of one's own or the list's."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SOURCE_RECONFIGURE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.realtime_assist.const import (
    CONF_CURRENCY,
    CONF_CUSTOM_PRICES,
    CONF_DAILY_LIMIT,
    CONF_PRICE_PREFIX,
    SECTION_COSTS,
    SUBENTRY_CONVERSATION,
)
from custom_components.realtime_assist.usage import PRICE_KINDS, default_prices
from tests.flow_texts import assert_form_texts
from tests.test_config_flow import AGENT_INPUT

pytestmark = pytest.mark.usefixtures("ha_core")
OWN_PRICES = {CONF_PRICE_PREFIX + kind: 1.5 * (n + 1) for n, kind in enumerate(PRICE_KINDS)}


async def _edit_agent(hass: HomeAssistant, entry: MockConfigEntry) -> tuple[str, Any]:
    subentry_id = next(iter(entry.subentries))
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONVERSATION),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    return subentry_id, result


def _suggested(result: Any, key: str) -> Any:
    """The value a field of the Costs section starts with."""
    costs = result["data_schema"].schema[SECTION_COSTS].schema
    [marker] = [m for m in costs.schema if m == key]
    return (marker.description or {}).get("suggested_value")


async def test_costs_start_from_the_list_prices_and_store_a_limit(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Own prices start from the model's list prices; unused, they are not stored."""
    hass.config.currency = "EUR"
    subentry_id, result = await _edit_agent(hass, loaded_entry)
    await assert_form_texts(hass, result, SUBENTRY_CONVERSATION)
    list_prices = default_prices("gpt-realtime")
    assert list_prices is not None
    assert _suggested(result, CONF_PRICE_PREFIX + "audio_out") == list_prices.audio_out
    assert _suggested(result, CONF_CURRENCY) == "EUR"

    costs = {
        CONF_DAILY_LIMIT: 2.5,
        CONF_CUSTOM_PRICES: False,
        CONF_CURRENCY: "EUR",
        **{CONF_PRICE_PREFIX + kind: getattr(list_prices, kind) for kind in PRICE_KINDS},
    }
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**AGENT_INPUT, SECTION_COSTS: costs}
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    data = loaded_entry.subentries[subentry_id].data
    assert data[CONF_DAILY_LIMIT] == 2.5
    assert not {CONF_CUSTOM_PRICES, CONF_CURRENCY, *OWN_PRICES} & data.keys()
    [agent] = loaded_entry.runtime_data.agents.values()
    assert (agent.usage.daily_limit, agent.usage.currency) == (2.5, "USD")
    assert agent.usage.prices == default_prices(data["model"])


async def test_own_prices_are_all_or_nothing(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    subentry_id, result = await _edit_agent(hass, loaded_entry)
    partial = {CONF_CUSTOM_PRICES: True, CONF_CURRENCY: "CHF", CONF_PRICE_PREFIX + "text_in": 1.0}

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**AGENT_INPUT, SECTION_COSTS: partial}
    )

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "prices_incomplete"}
    await assert_form_texts(hass, result, SUBENTRY_CONVERSATION)
    # What was entered is still there.
    assert _suggested(result, CONF_CURRENCY) == "CHF"

    own = {CONF_CUSTOM_PRICES: True, CONF_CURRENCY: "CHF", **OWN_PRICES}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**AGENT_INPUT, SECTION_COSTS: own}
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.ABORT
    data = loaded_entry.subentries[subentry_id].data
    assert {key: data[key] for key in own} == own
    [agent] = loaded_entry.runtime_data.agents.values()
    assert agent.usage.currency == "CHF"
    assert agent.usage.prices is not None
    assert agent.usage.prices.audio_out == OWN_PRICES[CONF_PRICE_PREFIX + "audio_out"]
