"""The harness's one config entry, imported from its YAML key: satellites need an entry."""

from typing import Any

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult

from . import DOMAIN


class HarnessFlow(ConfigFlow, domain=DOMAIN):
    """Creates the entry the satellites hang on."""

    async def async_step_import(self, import_data: dict[str, Any]) -> ConfigFlowResult:
        await self.async_set_unique_id(DOMAIN)
        self._abort_if_unique_id_configured()
        return self.async_create_entry(title="Satellite harness", data={})
