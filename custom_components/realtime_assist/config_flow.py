"""Config flow for Realtime Assist.

The parent entry holds the provider, API key and endpoint; every realtime
agent is a `conversation` subentry with its own session settings, like
core's openai_conversation. There is no options flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, override

from homeassistant.config_entries import (
    SOURCE_USER,
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_API_KEY, CONF_LLM_HASS_API, CONF_NAME, CONF_PROMPT, CONF_URL
from homeassistant.core import callback
from homeassistant.data_entry_flow import section
from homeassistant.helpers import llm
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TemplateSelector,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.typing import VolDictType
import probatio

from . import async_build_provider
from .agent_config import recommended_agent_options
from .const import (
    CONF_CAMERA_FPS,
    CONF_CAMERA_LONG_SIDE,
    CONF_IDLE_TIMEOUT,
    CONF_KEEP_WARM,
    CONF_MODEL,
    CONF_PAIR_CAMERAS,
    CONF_PROVIDER,
    CONF_SERVICE_DOMAINS,
    CONF_SILENCE_DURATION_MS,
    CONF_TOOL_TIMEOUT,
    CONF_TURN_DETECTION,
    CONF_VAD_EAGERNESS,
    CONF_VOICE,
    DEFAULT_AGENT_NAME,
    DEFAULT_CAMERA_FPS,
    DEFAULT_CAMERA_LONG_SIDE,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_KEEP_WARM,
    DEFAULT_PAIR_CAMERAS,
    DEFAULT_SILENCE_DURATION_MS,
    DEFAULT_TOOL_TIMEOUT,
    DEFAULT_TURN_DETECTION,
    DEFAULT_VAD_EAGERNESS,
    DOMAIN,
    LOGGER,
    PROVIDER_PROFILES,
    SECTION_ADVANCED,
    SUBENTRY_CONVERSATION,
)
from .realtime.config import Eagerness, TurnDetectionMode
from .realtime.errors import AuthenticationError, ConnectError
from .realtime.providers import PROVIDER_OPENAI
from .service_tool import async_service_domain_options

_API_KEY_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))

# The endpoint override is rarely needed (Azure OpenAI, compatible servers),
# so it sits in a collapsed section.
_ADVANCED_SECTION = section(
    probatio.Schema(
        {probatio.Optional(CONF_URL): TextSelector(TextSelectorConfig(type=TextSelectorType.URL))}
    ),
    {"collapsed": True},
)

STEP_USER_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_PROVIDER, default=PROVIDER_OPENAI): SelectSelector(
            SelectSelectorConfig(
                options=list(PROVIDER_PROFILES),
                translation_key=CONF_PROVIDER,
                mode=SelectSelectorMode.DROPDOWN,
            )
        ),
        probatio.Required(CONF_API_KEY): _API_KEY_SELECTOR,
        probatio.Required(SECTION_ADVANCED): _ADVANCED_SECTION,
    }
)
# Reauth only asks for the key: the endpoint still answered, it refused the key.
STEP_REAUTH_SCHEMA = probatio.Schema({probatio.Required(CONF_API_KEY): _API_KEY_SELECTOR})
# The provider is fixed once agents exist: their models and voices depend on it.
STEP_RECONFIGURE_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_API_KEY): _API_KEY_SELECTOR,
        probatio.Required(SECTION_ADVANCED): _ADVANCED_SECTION,
    }
)


def _flatten(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Entry data from a form: the advanced section is lifted to the top level.

    `url` is always stored (None without an override) so that entries with
    and without an override compare correctly for duplicates.
    """
    data = {key: value for key, value in user_input.items() if key != SECTION_ADVANCED}
    if SECTION_ADVANCED in user_input:
        data[CONF_URL] = user_input[SECTION_ADVANCED].get(CONF_URL) or None
    return data


def _number_box(minimum: float, maximum: float, step: float, unit: str) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(
            min=minimum,
            max=maximum,
            step=step,
            unit_of_measurement=unit,
            mode=NumberSelectorMode.BOX,
        )
    )


def _whole_number(minimum: int, maximum: int, step: int, unit: str) -> probatio.All[Any]:
    """A number box whose value is stored as an int (the selector hands over floats)."""
    return probatio.All(_number_box(minimum, maximum, step, unit), probatio.Coerce(int))


class RealtimeAssistConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a realtime provider and keep its credentials working."""

    VERSION = 1
    MINOR_VERSION = 1

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the provider, key and optional endpoint."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = _flatten(user_input)
            errors = await self._async_validate(data)
            if not errors:
                provider: str = data[CONF_PROVIDER]
                return self.async_create_entry(
                    title=PROVIDER_PROFILES[provider].title,
                    data=data,
                    subentries=[
                        {
                            "subentry_type": SUBENTRY_CONVERSATION,
                            "data": recommended_agent_options(provider),
                            "title": DEFAULT_AGENT_NAME,
                            "unique_id": None,
                        }
                    ],
                )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(STEP_USER_SCHEMA, user_input),
            errors=errors,
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start reauth after the provider rejected the stored key."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for a new key."""
        return await self._async_step_update_entry(
            self._get_reauth_entry(), "reauth_confirm", STEP_REAUTH_SCHEMA, user_input, None
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the key or the endpoint."""
        entry = self._get_reconfigure_entry()
        return await self._async_step_update_entry(
            entry,
            "reconfigure",
            STEP_RECONFIGURE_SCHEMA,
            user_input,
            {SECTION_ADVANCED: {CONF_URL: entry.data.get(CONF_URL)}},
        )

    async def _async_step_update_entry(
        self,
        entry: ConfigEntry,
        step_id: str,
        schema: probatio.Schema,
        user_input: dict[str, Any] | None,
        suggested: Mapping[str, Any] | None,
    ) -> ConfigFlowResult:
        """Validate new settings for an existing entry, then store them and reload."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**entry.data, **_flatten(user_input)}
            errors = await self._async_validate(data)
            if not errors:
                # A loaded entry reloads through its update listener; reloading
                # it from the flow as well is reported by Home Assistant (and
                # refused from 2026.12). A failed entry has no listener.
                if entry.update_listeners:
                    return self.async_update_and_abort(entry, data=data)
                return self.async_update_reload_and_abort(entry, data=data)
            suggested = user_input
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders={CONF_NAME: entry.title},
        )

    async def _async_validate(self, data: dict[str, Any]) -> dict[str, str]:
        """Check entry data by opening a session; return the form errors.

        Aborts when another entry already uses the same key and endpoint.
        """
        self._async_abort_entries_match(
            {CONF_API_KEY: data[CONF_API_KEY], CONF_URL: data.get(CONF_URL)}
        )
        try:
            await async_build_provider(data)
        except AuthenticationError:
            return {"base": "invalid_auth"}
        except ConnectError:
            return {"base": "cannot_connect"}
        except Exception:
            LOGGER.exception("Unexpected error while checking the realtime endpoint")
            return {"base": "unknown"}
        return {}

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Realtime agents are the only subentries."""
        return {SUBENTRY_CONVERSATION: AgentSubentryFlowHandler}


class AgentSubentryFlowHandler(ConfigSubentryFlow):
    """Add or edit a realtime agent: its model, voice, prompt and turn taking."""

    options: dict[str, Any]

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Add an agent, starting from the recommended settings."""
        self.options = recommended_agent_options(self._get_entry().data[CONF_PROVIDER])
        return await self.async_step_init()

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Edit an agent, starting from its stored settings."""
        self.options = dict(self._get_reconfigure_subentry().data)
        return await self.async_step_init()

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Show and store the agent's settings."""
        entry = self._get_entry()
        # Like core: agents are only edited while the entry works.
        if entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="entry_not_loaded")

        is_new = self.source == SOURCE_USER
        if user_input is not None:
            if is_new:
                return self.async_create_entry(title=user_input.pop(CONF_NAME), data=user_input)
            return self.async_update_and_abort(
                entry, self._get_reconfigure_subentry(), data=user_input
            )

        valid_apis = {api.id for api in llm.async_get_apis(self.hass)}
        suggested = dict(self.options)
        suggested[CONF_LLM_HASS_API] = [
            api for api in suggested.get(CONF_LLM_HASS_API, []) if api in valid_apis
        ]
        service_domains = await async_service_domain_options(
            self.hass, suggested.get(CONF_SERVICE_DOMAINS) or ()
        )
        schema = self._schema(entry.data[CONF_PROVIDER], is_new, service_domains)
        return self.async_show_form(
            step_id="init", data_schema=self.add_suggested_values_to_schema(schema, suggested)
        )

    def _schema(self, provider: str, is_new: bool, service_domains: list[str]) -> probatio.Schema:
        """The agent form; choices come from the parent entry's provider.

        `service_domains` are the domains offered for the call-service tool.
        """
        profile = PROVIDER_PROFILES[provider]
        fields: VolDictType = {}
        if is_new:
            fields[probatio.Required(CONF_NAME, default=DEFAULT_AGENT_NAME)] = str
        fields.update(
            {
                probatio.Required(CONF_MODEL, default=profile.default_model): SelectSelector(
                    SelectSelectorConfig(
                        options=list(profile.models),
                        custom_value=True,
                        mode=SelectSelectorMode.DROPDOWN,
                    )
                ),
                probatio.Required(CONF_VOICE, default=profile.default_voice): SelectSelector(
                    SelectSelectorConfig(
                        options=list(profile.voices),
                        custom_value=True,
                        mode=SelectSelectorMode.DROPDOWN,
                    )
                ),
                probatio.Optional(CONF_PROMPT): TemplateSelector(),
                probatio.Optional(CONF_LLM_HASS_API): SelectSelector(
                    SelectSelectorConfig(
                        options=[
                            SelectOptionDict(label=api.name, value=api.id)
                            for api in llm.async_get_apis(self.hass)
                        ],
                        multiple=True,
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                # Left empty, the tool follows the domains of the exposed entities.
                probatio.Optional(CONF_SERVICE_DOMAINS): SelectSelector(
                    SelectSelectorConfig(
                        options=service_domains,
                        multiple=True,
                        custom_value=True,
                        mode=SelectSelectorMode.DROPDOWN,
                    )
                ),
                probatio.Required(CONF_TOOL_TIMEOUT, default=DEFAULT_TOOL_TIMEOUT): _whole_number(
                    1, 120, 1, "s"
                ),
                probatio.Required(
                    CONF_TURN_DETECTION, default=DEFAULT_TURN_DETECTION.value
                ): SelectSelector(
                    SelectSelectorConfig(
                        options=[mode.value for mode in profile.turn_detection_modes],
                        translation_key=CONF_TURN_DETECTION,
                        mode=SelectSelectorMode.DROPDOWN,
                    )
                ),
                probatio.Required(
                    CONF_SILENCE_DURATION_MS, default=DEFAULT_SILENCE_DURATION_MS
                ): _whole_number(100, 5000, 50, "ms"),
                probatio.Required(CONF_IDLE_TIMEOUT, default=DEFAULT_IDLE_TIMEOUT): _whole_number(
                    10, 3600, 1, "s"
                ),
                probatio.Required(CONF_KEEP_WARM, default=DEFAULT_KEEP_WARM): BooleanSelector(),
                probatio.Required(
                    CONF_PAIR_CAMERAS, default=DEFAULT_PAIR_CAMERAS
                ): BooleanSelector(),
                probatio.Required(
                    CONF_CAMERA_LONG_SIDE, default=DEFAULT_CAMERA_LONG_SIDE
                ): _whole_number(256, 2048, 64, "px"),
            }
        )
        if profile.video_input:
            fields[probatio.Required(CONF_CAMERA_FPS, default=DEFAULT_CAMERA_FPS)] = _number_box(
                0.1, 1.0, 0.1, "fps"
            )
        if TurnDetectionMode.SEMANTIC_VAD not in profile.turn_detection_modes:
            return probatio.Schema(fields)
        # Eagerness only means something to semantic turn detection.
        fields[probatio.Required(CONF_VAD_EAGERNESS, default=DEFAULT_VAD_EAGERNESS.value)] = (
            SelectSelector(
                SelectSelectorConfig(
                    options=[eagerness.value for eagerness in Eagerness],
                    translation_key=CONF_VAD_EAGERNESS,
                    mode=SelectSelectorMode.DROPDOWN,
                )
            )
        )
        return probatio.Schema(fields)
