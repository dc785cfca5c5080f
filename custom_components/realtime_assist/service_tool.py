"""An LLM tool that calls Home Assistant actions (services) on exposed entities.

The Assist API lets the model run intents and exposed scripts; many everyday
requests ("set the thermostat to 21", "volume to 30 percent") need an action
with fields. Home Assistant 2026.11 offers an admin-only `homeassistant` API
with a generic action tool; this tool is the narrow variant that also works on
2026.10 and for non-admin users:

* only actions of the domains the agent allows (by default the domains of the
  entities exposed to the conversation assistant);
* only actions that target entities, and only entities that are exposed and
  belong to the action's own domain (`climate.*` on `climate.` entities), so
  system actions such as `homeassistant.restart` can never run;
* entities named in a field (`media_player.join`'s `group_members`) pass the same
  checks; fields that name devices or areas are refused;
* no sensitive action (unlocking, disarming, opening a garage door, blinding a
  camera, writing files...: `sensitive_actions.py`) unless the owner allowed it,
  on a target or on any member of a group it targets;
* with the user's context, so Home Assistant's permissions apply.

Build one per turn with `await CallServiceTool.async_create(hass, domains)`:
the service descriptions and their translations load asynchronously.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from functools import lru_cache
import re
from typing import Any, Final, override

from homeassistant.auth.permissions.const import POLICY_CONTROL
from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.const import (
    ATTR_ENTITY_ID,
    ATTR_FRIENDLY_NAME,
    ATTR_SUPPORTED_FEATURES,
    CONF_LLM_HASS_API,
)
from homeassistant.core import HomeAssistant, State, callback
from homeassistant.exceptions import HomeAssistantError, Unauthorized
from homeassistant.helpers import entity_registry as er, intent, llm, service, translation
from homeassistant.util.json import JsonObjectType
import probatio

from .const import CONF_ALLOWED_SENSITIVE_ACTIONS, CONF_SERVICE_DOMAINS, DOMAIN
from .sensitive_actions import (
    SensitiveAction,
    description_fields,
    refusal_text,
    sensitive_action,
)
from .tools import async_user_may, error_result

# The assistant whose exposure settings decide what the model may see and touch.
CONVERSATION_ASSISTANT: Final = "conversation"

TOOL_NAME: Final = f"{DOMAIN}__call_service"

# System domains whose actions are never offered, even if typed into the
# agent's settings. (They could not pass the checks anyway: no entity has
# these domains, and entities must match the action's domain.)
NEVER_DOMAINS: Final = frozenset({"homeassistant", "hassio", "backup", "recorder"})

# Target keys the model must not pass inside `data`: they could reach entities
# that are not exposed (an area, a device, a label, "exclude" lists...).
_TARGET_KEYS: Final = frozenset(
    {"entity_id", "device_id", "area_id", "floor_id", "label_id", "exclude"}
)
# Selectors of fields that name devices, places or whole targets: the entities they
# reach cannot be checked, so such fields are refused like the keys above.
_PLACE_SELECTORS: Final = frozenset({"device", "area", "floor", "label", "target"})

# Budget for the tool description. Actions beyond their share are left to
# the `service` parameter's list; entities beyond the rest are left out (the
# tool still finds them by name).
MAX_DESCRIPTION_CHARS: Final = 6000
_MAX_SERVICES_CHARS: Final = 3500
_MAX_SERVICE_TEXT_CHARS: Final = 120

# Attributes worth telling the model after an action (when the entity has them).
_REPORTED_ATTRIBUTES: Final = (
    "brightness",
    "color_mode",
    "color_temp_kelvin",
    "rgb_color",
    "effect",
    "hvac_action",
    "current_temperature",
    "temperature",
    "target_temp_high",
    "target_temp_low",
    "current_humidity",
    "humidity",
    "preset_mode",
    "fan_mode",
    "swing_mode",
    "percentage",
    "oscillating",
    "direction",
    "current_position",
    "current_tilt_position",
    "volume_level",
    "is_volume_muted",
    "media_title",
    "media_artist",
    "source",
    "sound_mode",
    "unit_of_measurement",
)

_BASE_DESCRIPTION: Final = (
    "Call a Home Assistant action (service) on exposed entities, for what the other "
    "tools cannot do, such as setting a thermostat's temperature or a media player's "
    "volume. Pass the action as `service`, the entities as `entity_id` and the "
    "action's fields in `data`. Available actions with their fields:"
)
_ENTITIES_INTRO: Final = "\nEntities (entity_id: name):"

_ARGS_SCHEMA: Final = probatio.Schema(
    {
        probatio.Required("service"): str,
        probatio.Required("entity_id"): [str],
        probatio.Optional("data", default={}): dict,
    }
)


@dataclass(frozen=True, slots=True)
class EntityField:
    """Where a call names entities: `entity_id`, or a field with an entity selector
    (`media_player.join`'s `group_members`). Entities named there can be reached as
    surely as the targets, so each must be exposed, fit and the user's to control."""

    name: str
    filters: tuple[Mapping[str, Any], ...] = ()
    """Which entities fit (domain, device class, features); empty: any entity."""

    @classmethod
    def of_selector(cls, name: str, config: Mapping[str, Any] | None) -> EntityField:
        """The field of an entity selector (its `filter` list, or the legacy filter keys)."""
        config = config or {}
        filters = [f for f in _as_list(config.get("filter")) if isinstance(f, Mapping)]
        legacy = {key: config[key] for key in ("domain", "device_class") if key in config}
        return cls(name, tuple(filters or ([legacy] if legacy else [])))

    @property
    def domains(self) -> list[str] | None:
        """The domains whose entities may fit, or None when any domain may."""
        if not self.filters or not all(f.get("domain") for f in self.filters):
            return None
        return [str(domain) for f in self.filters for domain in _as_list(f["domain"])]

    @property
    def kind(self) -> str:
        """The fitting entities' kind, for the model ("media_player")."""
        return " or ".join(self.domains or ["suitable"])

    def fits(self, state: State) -> bool:
        """Whether an entity may be named here."""
        return not self.filters or any(_entity_filter_matches(f, state) for f in self.filters)


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What the tool knows about one allowed action."""

    domain: str
    service: str
    fields: tuple[str, ...]
    text: str
    returns_response: bool
    sensitive: SensitiveAction | None = None
    """The policy's entry when the action is sensitive and the owner did not allow it."""
    entity_fields: tuple[EntityField, ...] = ()
    """Fields that name entities (entity selectors): checked like `entity_id`."""
    place_fields: frozenset[str] = frozenset()
    """Fields that name devices, areas, floors, labels or targets: refused."""

    @property
    def full_name(self) -> str:
        """The action as `domain.service`."""
        return f"{self.domain}.{self.service}"

    @property
    def refused(self) -> bool:
        """Whether every call would be refused: then the action is not offered at all."""
        return self.sensitive is not None and not self.sensitive.conditional

    def describe(self) -> str:
        """One line for the tool description."""
        line = f"{self.full_name}({', '.join(self.fields)})"
        return f"{line}: {self.text}" if self.text else line


@callback
def exposed_states(hass: HomeAssistant, assistant: str = CONVERSATION_ASSISTANT) -> list[State]:
    """The states of the entities exposed to `assistant` (the conversation assistant)."""
    return [
        state
        for state in hass.states.async_all()
        if async_should_expose(hass, assistant, state.entity_id)
    ]


@callback
def exposed_domains(hass: HomeAssistant, assistant: str = CONVERSATION_ASSISTANT) -> set[str]:
    """The domains of the entities exposed to `assistant` (the conversation assistant)."""
    return {state.domain for state in exposed_states(hass, assistant)}


def _has_entity_target(description: Mapping[str, Any]) -> bool:
    """Whether an action's description says it targets entities."""
    if "target" not in description:
        return False
    target = description["target"]
    # An empty target means any kind of target, entities included.
    return not target or "entity" in target


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return [value]


def _features_match(required: Iterable[Any], supported: int) -> bool:
    """Whether an entity has one of the required feature sets (None means no filter)."""
    wanted = [feature for feature in required if isinstance(feature, int)]
    return not wanted or any(feature & supported == feature for feature in wanted)


def _entity_filter_matches(entity_filter: Mapping[str, Any], state: State) -> bool:
    """Whether a state passes one `target.entity` filter of a service description."""
    if (domains := _as_list(entity_filter.get("domain"))) and state.domain not in domains:
        return False
    if (device_classes := _as_list(entity_filter.get("device_class"))) and (
        state.attributes.get("device_class") not in device_classes
    ):
        return False
    features = _as_list(entity_filter.get("supported_features"))
    return _features_match(features, int(state.attributes.get(ATTR_SUPPORTED_FEATURES, 0) or 0))


def _by_kind(states: Iterable[State]) -> dict[tuple[str, str], list[State]]:
    """States of one domain grouped by what a target filter reads (device class and
    features): the filters then run once per kind, not once per entity."""
    kinds: dict[tuple[str, str], list[State]] = {}
    for state in states:
        attributes = state.attributes
        kind = (repr(attributes.get("device_class")), repr(attributes.get(ATTR_SUPPORTED_FEATURES)))
        kinds.setdefault(kind, []).append(state)
    return kinds


def _target_matches(description: Mapping[str, Any], state: State) -> bool:
    """Whether an entity can be a target of an action, by its description's filters."""
    target = description.get("target") or {}
    filters = [f for f in _as_list(target.get("entity")) if isinstance(f, Mapping)]
    return not filters or any(_entity_filter_matches(f, state) for f in filters)


def _field_matches(field: Mapping[str, Any], states: Collection[State]) -> bool:
    """Whether a field applies to at least one of the entities (by its `filter`)."""
    if not (field_filter := field.get("filter")):
        return True
    for state in states:
        supported = int(state.attributes.get(ATTR_SUPPORTED_FEATURES, 0) or 0)
        if "supported_features" in field_filter and not _features_match(
            _as_list(field_filter["supported_features"]), supported
        ):
            continue
        attribute_filter: Mapping[str, Any] = field_filter.get("attribute") or {}
        if all(
            {str(v) for v in _as_list(state.attributes.get(attribute))}
            & {str(v) for v in _as_list(values)}
            for attribute, values in attribute_filter.items()
        ):
            return True
    return False


def _selector(field: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any] | None]:
    """A field's selector: its kind ("entity", "number"...) and its configuration."""
    selector = field.get("selector")
    if not isinstance(selector, Mapping) or not selector:
        return None, None
    kind, config = next(iter(selector.items()))
    return str(kind), config if isinstance(config, Mapping) else None


def _entity_fields(fields: Mapping[str, Any]) -> tuple[EntityField, ...]:
    """An action's fields that name entities; sections are flattened."""
    return tuple(
        EntityField.of_selector(name, config)
        for name, field in description_fields(fields)
        for kind, config in [_selector(field)]
        if kind == "entity"
    )


def _place_fields(fields: Mapping[str, Any]) -> frozenset[str]:
    """An action's fields that name devices, areas, floors, labels or targets."""
    return frozenset(
        name
        for name, field in description_fields(fields)
        if _selector(field)[0] in _PLACE_SELECTORS
    )


def _field_names(
    fields: Mapping[str, Any], states: Collection[State], place_fields: frozenset[str]
) -> list[str]:
    """The names of an action's fields that apply to the entities and may be passed (not
    targets, not `place_fields`); sections are flattened."""
    refused = _TARGET_KEYS | place_fields
    return [
        name
        for name, field in description_fields(fields)
        if name not in refused and _field_matches(field, states)
    ]


def _short_text(text: str) -> str:
    """The first sentence of a description, capped."""
    text = " ".join(text.split())
    if match := re.match(r"(.+?[.!?])(\s|$)", text):
        text = match.group(1)
    if len(text) > _MAX_SERVICE_TEXT_CHARS:
        text = text[: _MAX_SERVICE_TEXT_CHARS - 1].rstrip() + "…"
    return text


def allowed_service_domains(
    allowed_domains: Collection[str] | None, exposed: Collection[str]
) -> set[str]:
    """The domains whose actions may be offered.

    `allowed_domains` None (or empty) means the domains of the exposed
    entities (`exposed`). System domains are never included.
    """
    domains = {domain.strip().lower() for domain in allowed_domains or ()} - {""}
    return (domains or set(exposed)) - NEVER_DOMAINS


async def async_service_domain_options(
    hass: HomeAssistant, selected: Iterable[str] = ()
) -> list[str]:
    """The domains the agent settings offer: those with entity-targeted actions.

    Limited to the domains of the exposed entities when any of them has such
    actions (else all of them), plus whatever is `selected` already.
    """
    descriptions = await service.async_get_all_descriptions(hass)
    targetable = {
        domain
        for domain, services in descriptions.items()
        if any(_has_entity_target(description) for description in services.values())
    } - NEVER_DOMAINS
    return sorted((targetable & exposed_domains(hass) or targetable) | set(selected))


async def async_sensitive_action_options(
    hass: HomeAssistant, domains: Collection[str]
) -> list[SensitiveAction]:
    """The sensitive actions of `domains` the tool could offer, for the agent's settings."""
    descriptions = await service.async_get_all_descriptions(hass)
    found = [
        entry
        for domain in set(domains) - NEVER_DOMAINS
        for name, description in (descriptions.get(domain) or {}).items()
        if _has_entity_target(description)
        and (entry := sensitive_action(f"{domain}.{name}", description)) is not None
    ]
    return sorted(found, key=lambda entry: entry.action)


def _sensitive(
    action: str,
    description: Mapping[str, Any],
    targets: Collection[State],
    allowed: Collection[str],
) -> SensitiveAction | None:
    """The policy's entry for an action the owner did not allow, as it applies to `targets`.

    An action that is sensitive only on some entities (garage doors) and has no
    other target here is refused outright.
    """
    entry = sensitive_action(action, description)
    if entry is None or action in allowed:
        return None
    if entry.device_classes and all(entry.applies_to(state) for state in targets):
        return replace(entry, device_classes=frozenset())
    return entry


async def async_get_services(
    hass: HomeAssistant,
    exposed_states: Collection[State],
    language: str | None = None,
    allowed_sensitive: Collection[str] = (),
) -> list[ServiceInfo]:
    """The actions that target entities and apply to one of `exposed_states` (the exposed
    entities of the allowed domains).

    Sensitive actions the owner did not allow (`allowed_sensitive`) carry their
    policy entry (`ServiceInfo.sensitive`).
    """
    if not exposed_states:
        return []
    descriptions = await service.async_get_all_descriptions(hass)
    domains = {state.domain for state in exposed_states} & set(descriptions)
    texts = await translation.async_get_translations(
        hass, language or hass.config.language, "services", domains
    )

    services: list[ServiceInfo] = []
    for domain in sorted(domains):
        kinds = _by_kind(state for state in exposed_states if state.domain == domain)
        for name, description in sorted(descriptions[domain].items()):
            if not _has_entity_target(description):
                continue
            targets = [
                state
                for states in kinds.values()
                if _target_matches(description, states[0])
                for state in states
            ]
            if not targets:
                continue
            text = texts.get(f"component.{domain}.services.{name}.description") or str(
                description.get("description") or description.get("name") or ""
            )
            if placeholders := description.get("description_placeholders"):
                for key, value in placeholders.items():
                    text = text.replace(f"{{{key}}}", str(value))
            sensitive = _sensitive(f"{domain}.{name}", description, targets, allowed_sensitive)
            if sensitive is not None and sensitive.device_classes:
                targets = [state for state in targets if not sensitive.applies_to(state)]
            fields = description.get("fields") or {}
            place_fields = _place_fields(fields)
            services.append(
                ServiceInfo(
                    domain=domain,
                    service=name,
                    fields=tuple(_field_names(fields, targets, place_fields)),
                    text=_short_text(text),
                    returns_response="response" in description,
                    sensitive=sensitive,
                    entity_fields=_entity_fields(fields),
                    place_fields=place_fields,
                )
            )
    return services


def _entity_names(hass: HomeAssistant, state: State) -> list[str]:
    """An entity's name and aliases, as Assist knows them."""
    entry = er.async_get(hass).async_get(state.entity_id)
    return [name for name in intent.async_get_entity_aliases(hass, entry, state=state) if name]


class _TargetNames(Mapping[str, str]):
    """Exposed entities the actions can act on (id: name), each name looked up only when
    read: the description names as many as fit, and a large home has far more.

    Assist's prompt names entities without their ids; the tool description
    lists the ids so the model can target them.
    """

    def __init__(self, hass: HomeAssistant, states: Iterable[State]) -> None:
        self._hass = hass
        self._states = {state.entity_id: state for state in states}

    def __getitem__(self, entity_id: str) -> str:
        state = self._states[entity_id]
        return next(iter(_entity_names(self._hass, state)), state.name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._states)

    def __len__(self) -> int:
        return len(self._states)


def _describe(services: Collection[ServiceInfo], targets: Mapping[str, str]) -> str:
    """The tool description: the base text, one line per action and the entities.

    Actions past their share of the budget are only in the `service`
    parameter's list; entities past the rest are found by name.
    """
    parts = [_BASE_DESCRIPTION]
    actions = (f"\n- {info.describe()}" for info in services)
    if left_out := _add_within(parts, actions, len(services), _MAX_SERVICES_CHARS):
        parts.append(f"\n({left_out} more actions: see the service parameter.)")
    if not targets:
        return "".join(parts)
    parts.append(_ENTITIES_INTRO)
    entities = (f"\n- {entity_id}: {name}" for entity_id, name in targets.items())
    if left_out := _add_within(parts, entities, len(targets), MAX_DESCRIPTION_CHARS - 80):
        parts.append(f"\n({left_out} more; entity_id also accepts an entity's name.)")
    return "".join(parts)


def _add_within(parts: list[str], lines: Iterable[str], count: int, budget: int) -> int:
    """Add `lines` (`count` of them, each made only when it is read) to `parts` while all
    of them stay within `budget` characters; returns how many were left out."""
    length = sum(len(part) for part in parts)
    for index, line in enumerate(lines):
        if length + len(line) > budget:
            return count - index
        parts.append(line)
        length += len(line)
    return 0


def _json_value(value: Any) -> Any:
    """A state attribute as plain JSON."""
    if isinstance(value, Enum):  # ColorMode, HVACAction...
        value = value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value(item) for item in value]
    return str(value)


def _state_summary(hass: HomeAssistant, entity_id: str) -> dict[str, Any]:
    """An entity's state and its useful attributes, for the model."""
    state = hass.states.get(entity_id)
    if state is None:
        return {"entity_id": entity_id, "state": "unknown"}
    summary: dict[str, Any] = {"entity_id": entity_id}
    if name := state.attributes.get(ATTR_FRIENDLY_NAME):
        summary["name"] = name
    summary["state"] = state.state
    if attributes := {
        key: _json_value(state.attributes[key])
        for key in _REPORTED_ATTRIBUTES
        if state.attributes.get(key) is not None
    }:
        summary["attributes"] = attributes
    return summary


def _error_text(err: Exception) -> str:
    """A message for the model from an exception."""
    text = str(err)
    if not text or text == type(err).__name__:
        return type(err).__name__
    return text


@lru_cache(maxsize=16)
def _parameters_schema(services: tuple[str, ...]) -> probatio.Schema:
    """The tool's parameters for these actions: the same object while they stay the same.

    So its converted form is reused between turns (`tools.ToolSpecCache`).
    """
    service_schema: Any = probatio.In(list(services)) if services else str
    return probatio.Schema(
        {
            probatio.Required(
                "service", description="The action to call, as domain.service."
            ): service_schema,
            probatio.Required(
                "entity_id",
                description="The entity ids to act on (from this tool's entity list); "
                "they must be exposed and of the action's domain.",
            ): [str],
            probatio.Optional(
                "data",
                description='The action\'s fields, e.g. {"temperature": 21}. '
                "Leave out targets: only entity_id selects entities.",
            ): dict,
        }
    )


class CallServiceTool(llm.Tool):
    """Call an allowed Home Assistant action on exposed entities."""

    name = TOOL_NAME
    title = "Call action"
    integration = DOMAIN
    # It acts on the home (often idempotently, not always) and stays inside Home Assistant.
    annotations = llm.ToolAnnotations(open_world=False)

    def __init__(
        self,
        domains: Collection[str],
        services: Iterable[ServiceInfo],
        targets: Mapping[str, str] | None = None,
    ) -> None:
        """Offer `services` of the allowed `domains` on `targets` (entity id: name).

        `async_create` finds all three; `targets` only feeds the description.
        Refused sensitive actions are not offered, only explained when called.
        """
        self.domains = frozenset(domains)
        services = list(services)
        self.services: dict[str, ServiceInfo] = {
            info.full_name: info for info in services if not info.refused
        }
        self.refused: dict[str, SensitiveAction] = {
            info.full_name: info.sensitive
            for info in services
            if info.refused and info.sensitive is not None
        }
        self.description = _describe(self.services.values(), targets or {})
        self.parameters = _parameters_schema(tuple(self.services))

    @classmethod
    async def async_create(
        cls,
        hass: HomeAssistant,
        allowed_domains: Collection[str] | None,
        language: str | None = None,
        allowed_sensitive: Collection[str] = (),
        exposed: Sequence[State] | None = None,
    ) -> CallServiceTool:
        """The tool for one turn.

        `allowed_domains` is the agent's setting: None or empty means the
        domains of the entities exposed to the conversation assistant.
        `language` picks the action descriptions' language (default: Home
        Assistant's). `allowed_sensitive` are the sensitive actions the owner
        allowed (`domain.service`). `exposed` are the exposed entities' states,
        when the caller has them already. An agent should leave the tool out
        when `services` is empty: there is nothing it could call.
        """
        # Which entities are exposed is looked up once for the whole tool (or the turn).
        if exposed is None:
            exposed = exposed_states(hass)
        domains = allowed_service_domains(allowed_domains, {state.domain for state in exposed})
        exposed = [state for state in exposed if state.domain in domains]
        services = await async_get_services(hass, exposed, language, allowed_sensitive)
        offered = {info.domain for info in services if not info.refused}
        targets = sorted(
            (state for state in exposed if state.domain in offered), key=lambda s: s.entity_id
        )
        return cls(domains, services, _TargetNames(hass, targets))

    @override
    def __repr__(self) -> str:
        """Name the tool and the actions it offers."""
        return f"<{type(self).__name__} - {self.name}: {', '.join(self.services)}>"

    @override
    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> llm.ToolResult:
        """Check the request against the exposed entities and allowed actions, then call it."""
        args = dict(tool_input.tool_args)
        if isinstance(args.get("entity_id"), str):
            args["entity_id"] = [args["entity_id"]]
        try:
            args = _ARGS_SCHEMA(args)
        except probatio.Invalid as err:
            return error_result("InvalidArguments", f"Invalid arguments: {err}")

        full_name: str = args["service"].strip().lower()
        entity_ids: list[str] = [eid.strip() for eid in args["entity_id"]]
        data: dict[str, Any] = args["data"]

        if refusal := self._check_service(hass, full_name):
            return refusal
        domain, service_name = full_name.split(".", 1)
        info = self.services[full_name]
        if not entity_ids:
            return error_result("NoTarget", "Name at least one entity in entity_id.")
        targets_field = EntityField(ATTR_ENTITY_ID, ({"domain": domain},))
        if refusal := await self._async_check_entities(
            hass, full_name, targets_field, entity_ids, llm_context
        ):
            return refusal
        if targets := sorted((_TARGET_KEYS | info.place_fields).intersection(data)):
            return error_result(
                "TargetNotAllowed",
                f"Do not pass {', '.join(targets)} in data; list the entities in entity_id.",
                refused=True,
            )
        if refusal := await self._async_check_entity_fields(hass, info, data, llm_context):
            return refusal

        if info.sensitive is not None and (
            refusal := _check_sensitive(hass, info.sensitive, entity_ids, data)
        ):
            return refusal
        try:
            response = await hass.services.async_call(
                domain,
                service_name,
                {**data, ATTR_ENTITY_ID: entity_ids},
                blocking=True,
                context=llm_context.context,
                return_response=info.returns_response,
            )
        except Unauthorized:
            return error_result(
                "Unauthorized",
                f"The user is not allowed to call {full_name} on {', '.join(entity_ids)}.",
                refused=True,
            )
        except probatio.Invalid as err:
            return error_result("InvalidData", f"{full_name} rejected the data: {err}")
        except HomeAssistantError as err:
            return error_result(type(err).__name__, f"{full_name} failed: {_error_text(err)}")

        result: JsonObjectType = {
            "success": True,
            "service": full_name,
            "entities": [_state_summary(hass, entity_id) for entity_id in entity_ids],
        }
        if response:
            result["response"] = _json_value_tree(response)
        return llm.ToolResult(data=result)

    def _check_service(self, hass: HomeAssistant, full_name: str) -> llm.ToolResult | None:
        """Refuse an action that is not on the allowed list, saying why."""
        if full_name in self.services:
            return None
        if (sensitive := self.refused.get(full_name)) is not None:
            return error_result("SensitiveActionRefused", refusal_text(sensitive), refused=True)
        allowed = ", ".join(self.services) or "none"
        domain, _, service_name = full_name.partition(".")
        if not service_name:
            return error_result(
                "InvalidService", f"'{full_name}' is not an action; use domain.service."
            )
        if domain in NEVER_DOMAINS:
            return error_result(
                "ServiceNotAllowed",
                f"{full_name} is a system action, which is never allowed.",
                refused=True,
            )
        if not hass.services.has_service(domain, service_name):
            return error_result(
                "ServiceNotFound", f"There is no action {full_name}. Allowed actions: {allowed}."
            )
        if domain not in self.domains:
            return error_result(
                "ServiceNotAllowed",
                f"Actions of the {domain} domain are not allowed for this assistant. "
                f"Allowed actions: {allowed}.",
                refused=True,
            )
        return error_result(
            "ServiceNotAllowed",
            f"{full_name} cannot be called by the assistant: only actions that target "
            f"exposed entities and that those entities support are allowed. "
            f"Allowed actions: {allowed}.",
            refused=True,
        )

    async def _async_check_entities(
        self,
        hass: HomeAssistant,
        action: str,
        field: EntityField,
        entity_ids: list[str],
        llm_context: llm.LLMContext,
    ) -> llm.ToolResult | None:
        """Refuse unknown, unexposed, unfitting or forbidden entities named in `field`.

        The model may know an entity only by the name Assist told it: names of exposed
        entities become their ids in `entity_ids`.
        """
        assistant = llm_context.assistant or CONVERSATION_ASSISTANT
        for index, entity_id in enumerate(entity_ids):
            if (state := hass.states.get(entity_id)) is not None:
                entity_ids[index] = state.entity_id
                continue
            matches = [
                state.entity_id
                for state in hass.states.async_all(field.domains)
                if field.fits(state)
                and async_should_expose(hass, assistant, state.entity_id)
                and entity_id.casefold() in {name.casefold() for name in _entity_names(hass, state)}
            ]
            if len(matches) > 1:
                return error_result(
                    "AmbiguousEntity",
                    f"Several entities are called {entity_id}: {', '.join(matches)}. "
                    "Pick one by its entity_id.",
                )
            if not matches:
                return error_result(
                    "EntityNotFound", f"There is no {field.kind} entity {entity_id}."
                )
            entity_ids[index] = matches[0]
        for entity_id in entity_ids:
            if not async_should_expose(hass, assistant, entity_id):
                return error_result(
                    "EntityNotExposed",
                    f"{entity_id} is not exposed to the assistant; the user can expose it "
                    "under Settings > Voice assistants > Expose.",
                    refused=True,
                )
            if (state := hass.states.get(entity_id)) is None or not field.fits(state):
                return error_result(
                    "WrongDomain",
                    f"{entity_id} is not a {field.kind} entity; {action} takes only "
                    f"{field.kind} entities in {field.name}.",
                    refused=True,
                )
        # Home Assistant checks entity permissions in entity services; checking
        # here as well covers actions whose handlers do not (and entities in fields).
        for entity_id in entity_ids:
            if not await async_user_may(hass, llm_context.context, entity_id, POLICY_CONTROL):
                return error_result(
                    "Unauthorized",
                    f"The user is not allowed to control {entity_id}.",
                    refused=True,
                )
        return None

    async def _async_check_entity_fields(
        self,
        hass: HomeAssistant,
        info: ServiceInfo,
        data: dict[str, Any],
        llm_context: llm.LLMContext,
    ) -> llm.ToolResult | None:
        """Check the entities named in the call's entity fields as targets are checked (names
        become ids in `data`): a field must not reach what `entity_id` may not."""
        for field in info.entity_fields:
            if (value := data.get(field.name)) is None:
                continue
            entity_ids = _as_list(value)
            if not all(isinstance(entity_id, str) for entity_id in entity_ids):
                return error_result("InvalidData", f"{field.name} takes entity ids.")
            entity_ids = [entity_id.strip() for entity_id in entity_ids]
            if refusal := await self._async_check_entities(
                hass, info.full_name, field, entity_ids, llm_context
            ):
                return refusal
            data[field.name] = entity_ids if isinstance(value, list | tuple) else entity_ids[0]
        return None


def _with_members(hass: HomeAssistant, entity_ids: Iterable[str]) -> Iterator[State]:
    """The entities' states and, through groups (an `entity_id` attribute listing members,
    as cover, light, lock and old-style groups have), every member's, each once.

    Acting on a group acts on its members: a cover group holding the garage door
    opens the garage door.
    """
    pending = list(entity_ids)
    seen: set[str] = set()
    while pending:
        entity_id = pending.pop(0)
        if entity_id in seen or (state := hass.states.get(entity_id)) is None:
            continue
        seen.add(entity_id)
        yield state
        members = _as_list(state.attributes.get(ATTR_ENTITY_ID))
        pending.extend(member for member in members if isinstance(member, str))


def _check_sensitive(
    hass: HomeAssistant, entry: SensitiveAction, entity_ids: Iterable[str], data: Mapping[str, Any]
) -> llm.ToolResult | None:
    """Refuse a call of a conditionally sensitive action when this call is the sensitive kind
    (on a target, or on a member of a group it targets)."""
    if entry.arguments is not None and entry.arguments(data):
        return error_result("SensitiveActionRefused", refusal_text(entry), refused=True)
    if entry.device_classes:
        for state in _with_members(hass, entity_ids):
            if entry.applies_to(state):
                return error_result(
                    "SensitiveActionRefused", refusal_text(entry, state.entity_id), refused=True
                )
    return None


def _json_value_tree(value: Any) -> Any:
    """An action's response as plain JSON (dates and enums become strings)."""
    if isinstance(value, Mapping):
        return {str(key): _json_value_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value_tree(item) for item in value]
    return _json_value(value)


async def async_agent_service_tool(
    hass: HomeAssistant,
    options: Mapping[str, Any],
    language: str | None,
    exposed: Sequence[State] | None = None,
) -> CallServiceTool | None:
    """The tool as an agent's settings (subentry data) make it, or None when it is not offered.

    Only together with the Assist API: the tool reaches what is exposed to
    Assist, so it comes with the API whose exposure settings the user chose,
    never with another API alone. None as well when there is nothing to call.
    """
    apis = options.get(CONF_LLM_HASS_API) or []
    if llm.LLM_API_ASSIST not in ([apis] if isinstance(apis, str) else apis):
        return None
    tool = await CallServiceTool.async_create(
        hass,
        options.get(CONF_SERVICE_DOMAINS),
        language,
        options.get(CONF_ALLOWED_SENSITIVE_ACTIONS) or (),
        exposed,
    )
    return tool if tool.services else None
