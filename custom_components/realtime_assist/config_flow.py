"""Config flow for Realtime Assist.

The parent entry holds the provider, API key and endpoint; every realtime
agent is a `conversation` subentry with its own session settings, like
core's openai_conversation. There is no options flow.

The agent form is declared once, in `AGENT_FORM`: sections of fields, each
field one line. The form nests fields in sections; the subentry data stays
flat (one key per field), so fields can move between sections freely.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from importlib.util import find_spec
import itertools
from typing import Any, Final, override
from urllib.parse import urlsplit

from homeassistant import data_entry_flow
from homeassistant.config_entries import (
    SOURCE_REAUTH,
    SOURCE_USER,
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.const import (
    CONF_API_KEY,
    CONF_LLM_HASS_API,
    CONF_NAME,
    CONF_PROMPT,
    CONF_URL,
    Platform,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import AbortFlow, section
from homeassistant.generated import currencies
from homeassistant.helpers import llm, translation
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
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
from homeassistant.loader import Integration, async_get_integrations
import probatio

from . import async_build_provider, async_pipelines_follow_voice, endpoint_error_key
from .agent_config import provider_option_defaults, recommended_agent_options
from .const import (
    CONF_ALLOW_UNENCRYPTED,
    CONF_ALLOWED_SENSITIVE_ACTIONS,
    CONF_CAMERA_FPS,
    CONF_CAMERA_LONG_SIDE,
    CONF_CURRENCY,
    CONF_CUSTOM_PRICES,
    CONF_CUSTOM_VOICE,
    CONF_DAILY_LIMIT,
    CONF_FALLBACK_TTS,
    CONF_IDLE_TIMEOUT,
    CONF_IMAGE_DETAIL,
    CONF_KEEP_WARM,
    CONF_MAKE_PREFERRED,
    CONF_MODEL,
    CONF_NOISE_REDUCTION,
    CONF_PAIR_CAMERAS,
    CONF_PRICE_PREFIX,
    CONF_PROVIDER,
    CONF_REASONING_EFFORT,
    CONF_SERVICE_DOMAINS,
    CONF_SILENCE_DURATION_MS,
    CONF_TOOL_TIMEOUT,
    CONF_TRANSCRIPTION_MODEL,
    CONF_TURN_DETECTION,
    CONF_VAD_EAGERNESS,
    CONF_VOICE,
    DEFAULT_AGENT_NAME,
    DOCUMENTATION_URL,
    DOMAIN,
    LOGGER,
    NOISE_REDUCTION_OFF,
    PROVIDER_PROFILES,
    SECTION_ADVANCED,
    SECTION_BEHAVIOUR,
    SECTION_CAMERA,
    SECTION_COSTS,
    SECTION_LISTENING,
    SUBENTRY_CONVERSATION,
    ProviderProfile,
)
from .realtime.config import (
    Eagerness,
    ImageDetail,
    NoiseReduction,
    ReasoningEffort,
    TurnDetectionMode,
)
from .realtime.errors import (
    AuthenticationError,
    ConnectError,
    InvalidEndpointError,
    RealtimeError,
    UnencryptedEndpointError,
)
from .realtime.providers import PROVIDER_GEMINI, PROVIDER_OPENAI
from .realtime.providers.listing import ordered_models
from .service_tool import (
    allowed_service_domains,
    async_sensitive_action_options,
    async_service_domain_options,
    exposed_domains,
)
from .usage import PRICE_KINDS, agent_prices, default_prices

# Links and examples the setup texts show (URLs go in placeholders, not in strings.json).
SETUP_PLACEHOLDERS: Final = {
    "openai_key_url": PROVIDER_PROFILES[PROVIDER_OPENAI].key_url,
    "openai_billing_url": "https://platform.openai.com/settings/organization/billing/overview",
    "gemini_key_url": PROVIDER_PROFILES[PROVIDER_GEMINI].key_url,
    "gemini_billing_url": "https://ai.google.dev/gemini-api/docs/billing",
    "docs_url": DOCUMENTATION_URL,
    "azure_url": "https://<resource>.openai.azure.com/openai/v1",
}
# Azure OpenAI speaks OpenAI's protocol at its own hosts; the entry's title says which,
# and a new key comes from the resource's page in the portal.
AZURE_HOST_SUFFIXES: Final = (".openai.azure.com", ".cognitiveservices.azure.com")
AZURE_KEY_URL: Final = "https://portal.azure.com"
# Eagerness choices, the default first.
EAGERNESS_OPTIONS: Final = [
    e.value for e in (Eagerness.AUTO, Eagerness.LOW, Eagerness.MEDIUM, Eagerness.HIGH)
]
NOISE_REDUCTION_OPTIONS: Final = [
    *(n.value for n in (NoiseReduction.FAR_FIELD, NoiseReduction.NEAR_FIELD)),
    NOISE_REDUCTION_OFF,
]
# Reasons a provider gives are shown in the form; long ones are cut.
MAX_REASON_CHARS: Final = 300

_API_KEY_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
_URL_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))

# `visible` conditions on form fields exist from Home Assistant 2026.11 on (the
# frontend hides a field until its condition holds); 2026.10 shows every field.
# (2026.10's data_entry_flow has a `Required` too: typing's.)
_VISIBLE_MARKERS: Final[tuple[Any, Any] | None] = (
    (vars(data_entry_flow)["Optional"], vars(data_entry_flow)["Required"])
    if find_spec("homeassistant.helpers.field_visibility")
    else None
)


def _entry_schema(step_id: str, *, url_set: bool) -> probatio.Schema:
    """The form of the parent entry's `user`, `reconfigure` or `reauth_confirm` step.

    The endpoint override is rarely needed (Azure OpenAI, compatible servers),
    so its section is collapsed unless an endpoint is set: then the user sees
    the URL an error is about.
    """
    if step_id == "reauth_confirm":
        # Only the key: the endpoint still answered, it refused the key.
        return probatio.Schema({probatio.Required(CONF_API_KEY): _API_KEY_SELECTOR})
    fields: VolDictType = {}
    if step_id == "user":
        fields[probatio.Required(CONF_PROVIDER, default=PROVIDER_OPENAI)] = SelectSelector(
            SelectSelectorConfig(
                options=list(PROVIDER_PROFILES),
                translation_key=CONF_PROVIDER,
                mode=SelectSelectorMode.DROPDOWN,
            )
        )
        fields[probatio.Required(CONF_API_KEY)] = _API_KEY_SELECTOR
        fields[probatio.Required(CONF_MAKE_PREFERRED, default=False)] = BooleanSelector()
    else:
        # The provider is fixed once agents exist: their models and voices depend on it.
        # Left empty, the key stays as it is.
        fields[probatio.Optional(CONF_API_KEY)] = _API_KEY_SELECTOR
    fields[probatio.Required(SECTION_ADVANCED)] = section(
        probatio.Schema(
            {
                probatio.Optional(CONF_URL): _URL_SELECTOR,
                # Consent to send the key in clear text to an http:// or ws:// endpoint
                # on another machine (endpoints on this one never need it).
                probatio.Optional(CONF_ALLOW_UNENCRYPTED, default=False): BooleanSelector(),
            }
        ),
        {"collapsed": not url_set},
    )
    return probatio.Schema(fields)


def _flatten(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Entry data from a form: the advanced section is lifted to the top level.

    `url` is always stored (None without an override) so that entries with
    and without an override compare correctly for duplicates; the consent to
    clear text only when given.
    """
    data = {key: value for key, value in user_input.items() if key != SECTION_ADVANCED}
    if SECTION_ADVANCED in user_input:
        advanced = user_input[SECTION_ADVANCED]
        data[CONF_URL] = advanced.get(CONF_URL) or None
        if advanced.get(CONF_ALLOW_UNENCRYPTED):
            data[CONF_ALLOW_UNENCRYPTED] = True
    return data


def _azure_resource(data: Mapping[str, Any]) -> str | None:
    """The Azure OpenAI resource the entry's endpoint belongs to, if it is one."""
    host = urlsplit(data.get(CONF_URL) or "").hostname or ""
    if data[CONF_PROVIDER] == PROVIDER_OPENAI and host.endswith(AZURE_HOST_SUFFIXES):
        return host.split(".", 1)[0]
    return None


def entry_title(data: Mapping[str, Any]) -> str:
    """The entry's title: the provider, and where its endpoint is when not the provider's own.

    "OpenAI Realtime", "Azure OpenAI (myresource)", "Gemini Live (127.0.0.1:8080)".
    """
    title = PROVIDER_PROFILES[data[CONF_PROVIDER]].title
    if resource := _azure_resource(data):
        return f"Azure OpenAI ({resource})"
    if url := data.get(CONF_URL):
        # Without user info: a URL's `user:password@` must not end up in a title.
        return f"{title} ({urlsplit(url).netloc.rpartition('@')[2] or url})"
    return title


def _redact(text: str, secret: str) -> str:
    """`text` without `secret`, cut to a length a form can show."""
    if secret:
        text = text.replace(secret, "***")
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


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


def _translated_select(translation_key: str, options: Collection[str]) -> SelectSelector:
    """A dropdown whose option labels live in strings.json under `selector.<key>`."""
    return SelectSelector(
        SelectSelectorConfig(
            options=list(options),
            translation_key=translation_key,
            mode=SelectSelectorMode.DROPDOWN,
        )
    )


def _labelled_select(
    options: list[SelectOptionDict], *, multiple: bool = False, custom_value: bool = True
) -> SelectSelector:
    """A dropdown of labelled options; by default the user may also type a value."""
    return SelectSelector(
        SelectSelectorConfig(
            options=options,
            multiple=multiple,
            custom_value=custom_value,
            mode=SelectSelectorMode.DROPDOWN,
        )
    )


@dataclass(frozen=True, slots=True)
class FormContext:
    """What the agent form's choices depend on, gathered once per form shown."""

    profile: ProviderProfile
    # The models the key may use (the built-in list if the provider's list could not be
    # had), the recommended ones first, and the agent's own if it is none of them.
    models: list[str]
    # The provider's voices by label, and the agent's own if it is none of them.
    voices: list[SelectOptionDict]
    # The LLM APIs registered in Home Assistant, by name.
    llm_apis: list[SelectOptionDict]
    # Domains offered to the call-service tool, labelled with their integration's name.
    service_domains: list[SelectOptionDict]
    # Sensitive actions the owner may allow the call-service tool, each with its risk.
    sensitive_actions: list[SelectOptionDict]
    # Whether Home Assistant has any camera entity at all.
    has_cameras: bool


def _always(_: FormContext) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class AgentField:
    """One setting of the agent form, stored under `key` in the subentry data."""

    key: str
    # Builds the field's selector (choices can depend on the provider and the home).
    selector: Callable[[FormContext], Any]
    # An optional field may be left empty, which removes it from the data.
    optional: bool = False
    # Shown only while a field of the same section has a value (2026.11+), e.g.
    # {"field": CONF_TURN_DETECTION, "value": "semantic_vad"}. A hidden field
    # keeps its stored value.
    visible: Mapping[str, Any] | None = None
    # Whether the field is on the form at all (the provider's features, the home).
    applies: Callable[[FormContext], bool] = _always

    def marker(self, default: Any) -> probatio.Marker:
        """The schema key of the field; `default` fills a required field missing from the data."""
        kwargs: dict[str, Any] = {} if self.optional else {"default": default}
        optional, required = probatio.Optional, probatio.Required
        if self.visible and _VISIBLE_MARKERS is not None:
            kwargs["visible"] = dict(self.visible)
            optional, required = _VISIBLE_MARKERS
        marker: probatio.Marker = (optional if self.optional else required)(self.key, **kwargs)
        return marker


@dataclass(frozen=True, slots=True)
class FormSection:
    """A titled group of fields of the agent form."""

    key: str
    fields: tuple[AgentField, ...]
    collapsed: bool = False


def _static(selector: Any) -> Callable[[FormContext], Any]:
    """A selector that is the same on every form."""
    return lambda _: selector


def _when(field: str, value: Any) -> Mapping[str, Any]:
    """A `visible` condition: the other field has this value."""
    return {"field": field, "value": value}


def _model_selector(context: FormContext) -> SelectSelector:
    return _labelled_select([SelectOptionDict(value=m, label=m) for m in context.models])


def _transcription_model_selector(context: FormContext) -> SelectSelector:
    models = context.profile.transcription_models
    return _labelled_select([SelectOptionDict(value=m, label=m) for m in models])


def _provider_has(option: str) -> Callable[[FormContext], bool]:
    """The field is one of the provider's own options (`ProviderProfile.provider_options`)."""
    return lambda context: option in context.profile.provider_options


def _voice_selector(context: FormContext) -> SelectSelector:
    # No typing: a dropdown that takes typed values shows values, not labels.
    return _labelled_select(context.voices, custom_value=False)


def _llm_api_selector(context: FormContext) -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(options=context.llm_apis, multiple=True, mode=SelectSelectorMode.LIST)
    )


def _service_domain_selector(context: FormContext) -> SelectSelector:
    return _labelled_select(context.service_domains, multiple=True)


def _sensitive_action_selector(context: FormContext) -> SelectSelector:
    # A list to tick, not a dropdown: each choice is made knowingly.
    return SelectSelector(
        SelectSelectorConfig(
            options=context.sensitive_actions, multiple=True, mode=SelectSelectorMode.LIST
        )
    )


def _has_sensitive_actions(context: FormContext) -> bool:
    return bool(context.sensitive_actions)


def _turn_detection_selector(context: FormContext) -> SelectSelector:
    modes = [mode.value for mode in context.profile.turn_detection_modes]
    return _translated_select(CONF_TURN_DETECTION, modes)


def _has_semantic_vad(context: FormContext) -> bool:
    return TurnDetectionMode.SEMANTIC_VAD in context.profile.turn_detection_modes


def _has_cameras(context: FormContext) -> bool:
    return context.has_cameras


def _has_camera_video(context: FormContext) -> bool:
    return context.has_cameras and context.profile.video_input


def _has_image_detail(context: FormContext) -> bool:
    return context.has_cameras and CONF_IMAGE_DETAIL in context.profile.provider_options


# Own prices: shown (2026.11+) and used only with "Use my own prices".
_OWN_PRICES = _when(CONF_CUSTOM_PRICES, True)
_PRICE = _static(_number_box(0, 10_000, 0.001, "/ 1M tokens"))
_CURRENCIES = _static(
    SelectSelector(
        SelectSelectorConfig(
            options=sorted(currencies.ACTIVE_CURRENCIES), mode=SelectSelectorMode.DROPDOWN
        )
    )
)
_LIMIT = _static(
    NumberSelector(NumberSelectorConfig(min=0, max=100_000, step=0.01, mode=NumberSelectorMode.BOX))
)


AGENT_FORM: Final = (
    FormSection(
        SECTION_BEHAVIOUR,
        (
            AgentField(CONF_MODEL, _model_selector),
            AgentField(CONF_VOICE, _voice_selector),
            AgentField(
                CONF_CUSTOM_VOICE,
                _static(TextSelector()),
                optional=True,
                applies=_provider_has(CONF_CUSTOM_VOICE),
            ),
            AgentField(
                CONF_FALLBACK_TTS,
                _static(EntitySelector(EntitySelectorConfig(domain="tts"))),
                optional=True,
            ),
            AgentField(CONF_PROMPT, _static(TemplateSelector()), optional=True),
            AgentField(CONF_LLM_HASS_API, _llm_api_selector, optional=True),
            # Left empty, the tool follows the domains of the exposed entities.
            AgentField(CONF_SERVICE_DOMAINS, _service_domain_selector, optional=True),
            # Left empty, every sensitive action stays refused.
            AgentField(
                CONF_ALLOWED_SENSITIVE_ACTIONS,
                _sensitive_action_selector,
                optional=True,
                applies=_has_sensitive_actions,
            ),
        ),
    ),
    FormSection(
        SECTION_LISTENING,
        (
            AgentField(CONF_TURN_DETECTION, _turn_detection_selector),
            AgentField(
                CONF_SILENCE_DURATION_MS,
                _static(_whole_number(100, 5000, 50, "ms")),
                visible=_when(CONF_TURN_DETECTION, TurnDetectionMode.SERVER_VAD.value),
            ),
            AgentField(
                CONF_VAD_EAGERNESS,
                _static(_translated_select(CONF_VAD_EAGERNESS, EAGERNESS_OPTIONS)),
                visible=_when(CONF_TURN_DETECTION, TurnDetectionMode.SEMANTIC_VAD.value),
                applies=_has_semantic_vad,
            ),
            # The provider options below are optional: left empty, the default applies.
            AgentField(
                CONF_NOISE_REDUCTION,
                _static(_translated_select(CONF_NOISE_REDUCTION, NOISE_REDUCTION_OPTIONS)),
                optional=True,
                applies=_provider_has(CONF_NOISE_REDUCTION),
            ),
            AgentField(
                CONF_TRANSCRIPTION_MODEL,
                _transcription_model_selector,
                optional=True,
                applies=_provider_has(CONF_TRANSCRIPTION_MODEL),
            ),
        ),
    ),
    FormSection(
        SECTION_CAMERA,
        (
            AgentField(CONF_PAIR_CAMERAS, _static(BooleanSelector()), applies=_has_cameras),
            AgentField(
                CONF_CAMERA_FPS,
                _static(_number_box(0.1, 1.0, 0.1, "fps")),
                visible=_when(CONF_PAIR_CAMERAS, True),
                applies=_has_camera_video,
            ),
            # Not tied to pairing: every image the model is shown is scaled to it
            # (the camera tool and the ask_about_camera action too).
            AgentField(
                CONF_CAMERA_LONG_SIDE,
                _static(_whole_number(256, 2048, 64, "px")),
                applies=_has_cameras,
            ),
            AgentField(
                CONF_IMAGE_DETAIL,
                _static(_translated_select(CONF_IMAGE_DETAIL, [d.value for d in ImageDetail])),
                optional=True,
                applies=_has_image_detail,
            ),
        ),
        collapsed=True,
    ),
    FormSection(
        SECTION_COSTS,
        (
            AgentField(CONF_DAILY_LIMIT, _LIMIT, optional=True),
            AgentField(CONF_CUSTOM_PRICES, _static(BooleanSelector()), optional=True),
            AgentField(CONF_CURRENCY, _CURRENCIES, optional=True, visible=_OWN_PRICES),
            *(
                AgentField(CONF_PRICE_PREFIX + kind, _PRICE, optional=True, visible=_OWN_PRICES)
                for kind in PRICE_KINDS
            ),
        ),
        collapsed=True,
    ),
    FormSection(
        SECTION_ADVANCED,
        (
            AgentField(CONF_TOOL_TIMEOUT, _static(_whole_number(1, 120, 1, "s"))),
            AgentField(CONF_IDLE_TIMEOUT, _static(_whole_number(10, 3600, 1, "s"))),
            AgentField(CONF_KEEP_WARM, _static(BooleanSelector())),
            AgentField(
                CONF_REASONING_EFFORT,
                _static(
                    _translated_select(CONF_REASONING_EFFORT, [r.value for r in ReasoningEffort])
                ),
                optional=True,
                applies=_provider_has(CONF_REASONING_EFFORT),
            ),
        ),
        collapsed=True,
    ),
)


def agent_schema(
    context: FormContext, defaults: Mapping[str, Any], extra: VolDictType
) -> probatio.Schema:
    """The agent form: `extra` fields on top, then the sections that have a field here."""
    fields: VolDictType = dict(extra)
    for form_section in AGENT_FORM:
        inner: VolDictType = {
            field.marker(defaults.get(field.key)): field.selector(context)
            for field in form_section.fields
            if field.applies(context)
        }
        if inner:
            fields[probatio.Required(form_section.key)] = section(
                probatio.Schema(inner), {"collapsed": form_section.collapsed}
            )
    return probatio.Schema(fields)


def nest_agent_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Flat subentry data as the form's sections hold it (for suggested values)."""
    return {
        form_section.key: {f.key: options[f.key] for f in form_section.fields if f.key in options}
        for form_section in AGENT_FORM
    }


def agent_data(
    context: FormContext, previous: Mapping[str, Any], user_input: Mapping[str, Any]
) -> dict[str, Any]:
    """The subentry data after the form: `previous` updated with what was submitted.

    A field not submitted keeps its value (hidden, or not on this provider's
    form), except an optional field on the form, which the user emptied.
    """
    data = dict(previous)
    for form_section in AGENT_FORM:
        submitted: Mapping[str, Any] = user_input.get(form_section.key, {})
        for field in form_section.fields:
            if field.key in submitted:
                data[field.key] = submitted[field.key]
            elif field.optional and field.applies(context):
                data.pop(field.key, None)
    return data


def prices_in_use(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` without own prices unless they are used (the form shows the list prices)."""
    if data.get(CONF_CUSTOM_PRICES):
        return dict(data)
    unused = {
        CONF_CUSTOM_PRICES,
        CONF_CURRENCY,
        *(CONF_PRICE_PREFIX + kind for kind in PRICE_KINDS),
    }
    return {key: value for key, value in data.items() if key not in unused}


def suggested_prices(hass: HomeAssistant, options: Mapping[str, Any]) -> dict[str, Any]:
    """Own prices to start from: the model's list prices and the home's currency."""
    if options.get(CONF_CUSTOM_PRICES):
        return {}
    suggested: dict[str, Any] = {CONF_CURRENCY: hass.config.currency}
    if (prices := default_prices(str(options.get(CONF_MODEL, "")))) is not None:
        suggested |= {CONF_PRICE_PREFIX + kind: getattr(prices, kind) for kind in PRICE_KINDS}
    return suggested


def unused_agent_name(taken: Collection[str]) -> str:
    """The default name of a new agent: "Realtime Assist", then "Realtime Assist 2"..."""
    names = (
        f"{DEFAULT_AGENT_NAME} {n}" if n > 1 else DEFAULT_AGENT_NAME for n in itertools.count(1)
    )
    return next(name for name in names if name not in taken)


def _agent_names(hass: HomeAssistant) -> set[str]:
    """The names of every realtime agent, in every entry."""
    return {
        subentry.title
        for entry in hass.config_entries.async_entries(DOMAIN)
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_CONVERSATION
    }


async def _async_sensitive_action_options(
    hass: HomeAssistant, options: Mapping[str, Any]
) -> list[SelectOptionDict]:
    """The sensitive actions the agent's action tool could be allowed, each with its risk.

    Each is labelled with Home Assistant's name of the action, the action and
    what it risks (in Home Assistant's language, as the tool's descriptions);
    actions allowed before but gone from the home stay listed, so they can be
    unticked.
    """
    allowed: list[str] = list(options.get(CONF_ALLOWED_SENSITIVE_ACTIONS) or ())
    domains = allowed_service_domains(options.get(CONF_SERVICE_DOMAINS), exposed_domains(hass))
    entries = await async_sensitive_action_options(
        hass, domains | {action.partition(".")[0] for action in allowed}
    )
    language = hass.config.language
    risks = await translation.async_get_translations(hass, language, "selector", [DOMAIN])
    names = await translation.async_get_translations(
        hass, language, "services", {entry.action.partition(".")[0] for entry in entries}
    )
    choices = []
    for entry in entries:
        domain, _, service = entry.action.partition(".")
        name = names.get(f"component.{domain}.services.{service}.name", entry.action)
        risk = risks.get(f"component.{DOMAIN}.selector.sensitive_risk.options.{entry.risk}", "")
        choices.append(
            SelectOptionDict(value=entry.action, label=f"{name} ({entry.action}): {risk}")
        )
    known = {entry.action for entry in entries}
    choices += [
        SelectOptionDict(value=action, label=action) for action in allowed if action not in known
    ]
    return choices


class RealtimeAssistConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a realtime provider and keep its credentials working."""

    VERSION = 1
    MINOR_VERSION = 1

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the provider, key and optional endpoint."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            data = _flatten(user_input)
            make_preferred = data.pop(CONF_MAKE_PREFERRED, False)
            errors, placeholders = await self._async_validate(data)
            if not errors:
                agent = recommended_agent_options(data[CONF_PROVIDER])
                if make_preferred:
                    agent[CONF_MAKE_PREFERRED] = True
                return self.async_create_entry(
                    title=entry_title(data),
                    data=data,
                    subentries=[
                        {
                            "subentry_type": SUBENTRY_CONVERSATION,
                            "data": agent,
                            "title": unused_agent_name(_agent_names(self.hass)),
                            "unique_id": None,
                        }
                    ],
                )
        return self._show_entry_form("user", user_input, errors, placeholders)

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start reauth after the provider rejected the stored key."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for a new key."""
        return await self._async_step_update_entry(self._get_reauth_entry(), user_input)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the key or the endpoint."""
        return await self._async_step_update_entry(self._get_reconfigure_entry(), user_input)

    async def _async_step_update_entry(
        self, entry: ConfigEntry, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        """Validate new settings for an existing entry, then store them and reload."""
        step_id = "reauth_confirm" if self.source == SOURCE_REAUTH else "reconfigure"
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        shown: Mapping[str, Any] = {
            SECTION_ADVANCED: {
                CONF_URL: entry.data.get(CONF_URL),
                CONF_ALLOW_UNENCRYPTED: entry.data.get(CONF_ALLOW_UNENCRYPTED, False),
            }
        }
        if user_input is not None:
            kept = dict(entry.data)
            if SECTION_ADVANCED in user_input:
                kept.pop(CONF_ALLOW_UNENCRYPTED, None)  # the form asked again: unticked, it goes
            data = {**kept, **_flatten(user_input)}
            if not data.get(CONF_API_KEY):
                data[CONF_API_KEY] = entry.data[CONF_API_KEY]  # left empty: keep it
            errors, placeholders = await self._async_validate(data, entry.entry_id)
            if not errors:
                # An entry still titled after its endpoint follows the endpoint;
                # a title the user chose stays.
                title = entry_title(data) if entry.title == entry_title(entry.data) else entry.title
                # A loaded entry reloads through its update listener; reloading
                # it from the flow as well is reported by Home Assistant (and
                # refused from 2026.12). A failed entry has no listener.
                if entry.update_listeners:
                    return self.async_update_and_abort(entry, data=data, title=title)
                return self.async_update_reload_and_abort(entry, data=data, title=title)
            shown = user_input
        placeholders = {
            CONF_NAME: entry.title,
            "key_url": AZURE_KEY_URL
            if _azure_resource(entry.data)
            else PROVIDER_PROFILES[entry.data[CONF_PROVIDER]].key_url,
            **placeholders,
        }
        return self._show_entry_form(step_id, shown, errors, placeholders)

    def _show_entry_form(
        self,
        step_id: str,
        shown: Mapping[str, Any] | None,
        errors: dict[str, str],
        placeholders: dict[str, str],
    ) -> ConfigFlowResult:
        """Show a parent entry form with what the user entered (never the stored key)."""
        url_set = bool(shown and (shown.get(SECTION_ADVANCED) or {}).get(CONF_URL))
        suggested = {k: v for k, v in (shown or {}).items() if k != CONF_API_KEY}
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                _entry_schema(step_id, url_set=url_set), suggested
            ),
            errors=errors,
            description_placeholders={**SETUP_PLACEHOLDERS, **placeholders},
        )

    async def _async_validate(
        self, data: dict[str, Any], entry_id: str | None = None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Check entry data by opening a session: the form errors and what they name.

        Aborts when another entry already uses the same key and endpoint. An
        error names the endpoint and the provider's reason, never the key.
        """
        for entry in self._async_current_entries(include_ignore=False):
            if entry.entry_id != entry_id and (
                entry.data.get(CONF_API_KEY),
                entry.data.get(CONF_URL),
            ) == (data[CONF_API_KEY], data.get(CONF_URL)):
                raise AbortFlow("already_configured")
        url = data.get(CONF_URL) or PROVIDER_PROFILES[data[CONF_PROVIDER]].default_url
        try:
            await async_build_provider(data, async_get_clientsession(self.hass))
        except (InvalidEndpointError, UnencryptedEndpointError) as err:
            return {"base": endpoint_error_key(err)}, {"url": url}
        except (AuthenticationError, ConnectError) as err:
            error = "invalid_auth" if isinstance(err, AuthenticationError) else "cannot_connect"
            reason = _redact(str(err) or type(err).__name__, data[CONF_API_KEY])
            return {"base": error}, {"url": url, "reason": reason}
        except Exception:
            # Not the URL: it may hold a key (the form shows it to the user who typed it).
            LOGGER.exception("Unexpected error while checking the realtime endpoint")
            return {"base": "unknown"}, {"url": url}
        return {}, {}

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

        provider = entry.data[CONF_PROVIDER]
        context = await self._async_form_context(provider)
        is_new = self.source == SOURCE_USER
        errors: dict[str, str] = {}
        if user_input is not None:
            data = prices_in_use(agent_data(context, self.options, user_input))
            # Own prices are all or nothing: a spend estimate never guesses.
            if data.get(CONF_CUSTOM_PRICES) and agent_prices(data, provider)[0] is None:
                errors["base"] = "prices_incomplete"
                self.options = data
        if user_input is not None and not errors:
            if is_new:
                if user_input.get(CONF_MAKE_PREFERRED):
                    data[CONF_MAKE_PREFERRED] = True
                return self.async_create_entry(title=user_input[CONF_NAME], data=data)
            subentry = self._get_reconfigure_subentry()
            await async_pipelines_follow_voice(
                self.hass,
                entry.runtime_data.agents[subentry.subentry_id].entity_ids.get(Platform.TTS),
                subentry.data.get(CONF_VOICE),
                data.get(CONF_VOICE),
            )
            return self.async_update_and_abort(entry, subentry, data=data)

        valid_apis = {option["value"] for option in context.llm_apis}
        # The provider's options are not stored until edited: the form shows their defaults.
        suggested = (
            provider_option_defaults(provider)
            | suggested_prices(self.hass, self.options)
            | self.options
        )
        suggested[CONF_LLM_HASS_API] = [
            api for api in suggested.get(CONF_LLM_HASS_API, []) if api in valid_apis
        ]
        extra: VolDictType = {}
        if is_new:
            extra[
                probatio.Required(CONF_NAME, default=unused_agent_name(_agent_names(self.hass)))
            ] = str
            extra[probatio.Required(CONF_MAKE_PREFERRED, default=False)] = BooleanSelector()
        schema = agent_schema(context, recommended_agent_options(provider), extra)
        # A form shown again keeps what was typed in the fields above the sections.
        typed = {str(marker) for marker in extra}
        typed_values = {k: v for k, v in (user_input or {}).items() if k in typed}
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                schema, nest_agent_options(suggested) | typed_values
            ),
            errors=errors,
        )

    async def _async_form_context(self, provider: str) -> FormContext:
        """The choices of the entry's provider and of the home, for the form."""
        profile = PROVIDER_PROFILES[provider]
        models = await self._async_models(profile)
        if (model := self.options.get(CONF_MODEL)) and model not in models:
            models.append(model)
        voices = [SelectOptionDict(value=v.voice_id, label=v.label) for v in profile.voices]
        if (voice := self.options.get(CONF_VOICE)) and voice not in {
            v.voice_id for v in profile.voices
        }:
            voices.append(SelectOptionDict(value=voice, label=voice))
        stored_domains = self.options.get(CONF_SERVICE_DOMAINS) or ()
        domains = await async_service_domain_options(self.hass, stored_domains)
        integrations = await async_get_integrations(self.hass, domains)
        domain_options = [
            SelectOptionDict(
                value=domain,
                label=integration.name if isinstance(integration, Integration) else domain,
            )
            for domain, integration in ((d, integrations.get(d)) for d in domains)
        ]
        return FormContext(
            profile=profile,
            models=models,
            sensitive_actions=await _async_sensitive_action_options(self.hass, self.options),
            voices=voices,
            llm_apis=[
                SelectOptionDict(label=api.name, value=api.id)
                for api in llm.async_get_apis(self.hass)
            ],
            service_domains=sorted(domain_options, key=lambda option: option["label"].casefold()),
            has_cameras=bool(self.hass.states.async_entity_ids("camera")),
        )

    async def _async_models(self, profile: ProviderProfile) -> list[str]:
        """The models the entry's key may use, as the provider lists them; the built-in
        list when it cannot say (no listing, an error, nothing realtime listed)."""
        provider = self._get_entry().runtime_data.provider
        try:
            listed = await provider.list_models(async_get_clientsession(self.hass))
        except RealtimeError as err:
            LOGGER.info("Could not list the provider's models, offering the usual ones: %s", err)
            listed = []
        return ordered_models(listed, profile.models) if listed else list(profile.models)
