"""Tools bridge: Home Assistant's LLM tools become the model's functions.

Tool calls run through Home Assistant's own path (`APIInstance.async_call_tool`,
started by the chat log as soon as the model asks), so exposure, permissions
and the chat log's tool records are Home Assistant's. This module adds what a
spoken conversation needs on top: a time limit per call, any failure turned
into an error result the model can talk about instead of a hung turn, and a
record of every call (`EVENT_TOOL_CALL` on the bus, with the user's context;
the logbook shows it, automations can react to it).

The model is given each tool under a function name the providers take
(`provider_tool_name`); its calls are mapped back to the tools' own names
(`own_tool_names`) before Home Assistant sees them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
import hashlib
import json
import re
from typing import Any, Final

from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, Unauthorized
from homeassistant.helpers import llm
from homeassistant.util.json import JsonObjectType
import probatio

from .assist_bridge import current_pipeline_run
from .const import EVENT_TOOL_CALL, LOGGER
from .realtime.config import ToolSpec
from .sensitive_actions import is_secret_field, refusal_text, refused_tool_call

# JSON-schema keywords the realtime APIs reject at the top of a function's parameters.
_UNSUPPORTED_TOP_LEVEL = frozenset({"oneOf", "anyOf", "allOf", "enum", "not"})
# Function names both providers take: OpenAI `^[a-zA-Z0-9_-]+$`, at most 64 characters;
# Gemini starts with a letter or an underscore (and takes up to 128, dots and colons).
_PROVIDER_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_-]{0,63}")
_NOT_IN_NAMES: Final = re.compile(r"[^a-zA-Z0-9_-]")
_MAX_NAME: Final = 64
# What the record holds instead of a code, PIN or password the model passed.
REDACTED: Final = "**REDACTED**"
# Arguments and results longer than this (as JSON) are recorded cut short: the
# recorder drops an event's data past 32 KiB, and a live context can be larger.
MAX_RECORDED_CHARS: Final = 2000


class ToolOutcome(StrEnum):
    """How a tool call ended, as the record says."""

    DONE = "done"
    REFUSED = "refused"  # a rule said no: exposure, permissions, the sensitive-action policy
    FAILED = "failed"
    CANCELLED = "cancelled"  # the turn ended first; the call may have had effects


class ToolSpecCache:
    """The model-facing function declarations of the agent's tools, schemas converted once.

    Converting a tool's schema (`probatio.to_openapi`) is the costly part of a
    turn's tools, and a turn's tools are mostly the last turn's again. A converted
    schema is reused while all the conversion reads is the same: the serializer
    and the schema's parts, each by identity (a Schema's own equality ignores
    descriptions). Home Assistant wraps the same parts in a new Schema each turn
    (intent tools copy their handler's cached slot schema), so they are found
    again; a schema built of new parts (its list of exposed entities, say) is
    converted anew, so a change of exposure, areas or the selected APIs shows
    in the next turn. Only the last build's schemas are kept.
    """

    def __init__(self) -> None:
        self._parameters: dict[Hashable, dict[str, Any]] = {}

    def tool_specs(self, api: llm.APIInstance | None) -> tuple[ToolSpec, ...]:
        """Read-only tools block: the model's answer depends on what they return.

        The others (actions) may run while the model keeps talking.
        """
        if api is None:
            return ()
        known, self._parameters = self._parameters, {}
        specs: list[ToolSpec] = []
        for tool in api.tools:
            key = (_Same(api.custom_serializer), _schema_key(tool.parameters))
            parameters = known.get(key, self._parameters.get(key))
            if parameters is None:
                parameters = _parameters(tool, api.custom_serializer)
            self._parameters[key] = parameters
            specs.append(
                ToolSpec(
                    provider_tool_name(tool.name),
                    tool.description or "",
                    parameters,
                    blocking=tool.annotations.read_only,
                )
            )
        return tuple(specs)


def provider_tool_name(name: str) -> str:
    """The function name the model is given for a tool: its own, if the providers take it.

    A provider rejects the whole tool list for one name it does not take, and Home
    Assistant names a script's tool after the script (`script__` and an object id
    of any length; other APIs' tools may hold dots or spaces). Such a name is cut
    to fit, its other characters replaced, and ends in a hash of the whole name:
    the same in every turn, and different for different tools.
    """
    if _PROVIDER_NAME.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    readable = _NOT_IN_NAMES.sub("_", name)[: _MAX_NAME - len(digest) - 2]
    start = "" if _PROVIDER_NAME.match(readable) else "_"
    return f"{start}{readable}_{digest}"


def own_tool_names(api: llm.APIInstance | None) -> Mapping[str, str]:
    """The tools' own names by the names the model calls them by (`provider_tool_name`)."""
    tools = api.tools if api is not None else ()
    return {provider_tool_name(tool.name): tool.name for tool in tools}


class _Same:
    """A schema part compared by identity; the key holds it, so its id is not reused."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value


def _schema_key(parameters: Any) -> Hashable:
    """What the conversion reads of a tool's parameters."""
    if isinstance(parameters, probatio.Schema) and isinstance(parameters.schema, dict):
        return (
            parameters.required,
            parameters.extra,
            tuple((_Same(key), _Same(value)) for key, value in parameters.schema.items()),
        )
    return _Same(parameters)


def _parameters(tool: llm.Tool, serializer: Callable[[Any], Any] | None) -> dict[str, Any]:
    schema: dict[str, Any] = probatio.to_openapi(
        tool.parameters, custom_serializer=serializer, openapi_version="3.1.0"
    )
    return {key: value for key, value in schema.items() if key not in _UNSUPPORTED_TOP_LEVEL}


@dataclass
class GuardedAPIInstance(llm.APIInstance):
    """The agent's LLM API: a time limit per tool call, no escaping exceptions, a record.

    Every tool of the agent (Home Assistant's, the call-service tool, the
    camera tool) is called here, so each call is recorded exactly once, and
    Home Assistant's own tools are held to the sensitive-action policy here.
    """

    tool_timeout_s: float = 10.0
    # Who the record names: the agent's conversation entity and the conversation.
    agent_id: str | None = None
    conversation_id: str | None = None
    # The sensitive actions the owner allowed (`CONF_ALLOWED_SENSITIVE_ACTIONS`).
    allowed_sensitive: tuple[str, ...] = ()

    async def async_call_tool(self, tool_input: llm.ToolInput) -> llm.ToolResult:
        try:
            async with asyncio.timeout(self.tool_timeout_s):
                result = self._refusal(tool_input) or await llm.APIInstance.async_call_tool(
                    self, tool_input
                )
        except TimeoutError:
            LOGGER.warning(
                "Tool %s did not finish within %s s", tool_input.tool_name, self.tool_timeout_s
            )
            result = error_result(
                "TimeoutError",
                f"{tool_input.tool_name} did not finish within {self.tool_timeout_s:g} seconds",
            )
        except (HomeAssistantError, probatio.Invalid) as err:
            # The chat log turns these into error results itself; the record notes them.
            outcome = ToolOutcome.REFUSED if isinstance(err, Unauthorized) else ToolOutcome.FAILED
            self._record(tool_input, outcome, _error_data(err))
            raise
        except asyncio.CancelledError:
            self._record(tool_input, ToolOutcome.CANCELLED, {})
            raise
        except Exception as err:
            LOGGER.exception("Tool %s failed", tool_input.tool_name)
            result = error_result(type(err).__name__, str(err))
        self._record(tool_input, _outcome(result), result.data)
        return result

    def _refusal(self, tool_input: llm.ToolInput) -> llm.ToolResult | None:
        """Refuse a call of Home Assistant's own tool that the policy refuses.

        The action tool applies the policy itself; Home Assistant's play-media tool
        would play a URL the model was handed (by a camera's picture, say).
        """
        tool = next((tool for tool in self.tools if tool.name == tool_input.tool_name), None)
        while isinstance(tool, llm.NamespacedTool):  # among several APIs: `assist__…`
            tool = tool.tool
        if tool is None:
            return None
        entry = refused_tool_call(tool.name, tool_input.tool_args, self.allowed_sensitive)
        if entry is None:
            return None
        return error_result("SensitiveActionRefused", refusal_text(entry), refused=True)

    def _record(
        self, tool_input: llm.ToolInput, outcome: ToolOutcome, result: JsonObjectType
    ) -> None:
        """Put the call on the bus (and so in the logbook) in the user's context."""
        context = self.llm_context.context
        run = current_pipeline_run(self.api.hass)
        data: dict[str, Any] = {
            "agent_id": self.agent_id,
            "conversation_id": self.conversation_id,
            "user_id": context.user_id if context is not None else None,
            "device_id": self.llm_context.device_id,
            "satellite_id": run.satellite_id if run is not None else None,
            "tool_name": tool_input.tool_name,
            "tool_args": _recordable(_without_secrets(tool_input.tool_args)),
            "outcome": outcome.value,
        }
        if outcome in (ToolOutcome.REFUSED, ToolOutcome.FAILED):
            data["error"] = result.get("error")
            data["error_text"] = _recordable(result.get("error_text"))
        elif outcome is ToolOutcome.DONE:
            data["result"] = _recordable(result)
        self.api.hass.bus.async_fire(EVENT_TOOL_CALL, data, context=context)


def _outcome(result: llm.ToolResult) -> ToolOutcome:
    if not result.error:
        return ToolOutcome.DONE
    return ToolOutcome.REFUSED if result.data.get("refused") is True else ToolOutcome.FAILED


def _error_data(err: Exception) -> JsonObjectType:
    return {"error": type(err).__name__, "error_text": str(err) or type(err).__name__}


def _without_secrets(value: Any) -> Any:
    """`value` with every code, PIN or password in it redacted: the record is on the
    bus, in the logbook and the recorder, for every user of the home to read."""
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_secret_field(str(key)) else _without_secrets(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_without_secrets(item) for item in value]
    return value


def _recordable(value: Any) -> Any:
    """`value` as plain JSON, or its JSON text cut at MAX_RECORDED_CHARS."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    if len(text) <= MAX_RECORDED_CHARS:
        return json.loads(text)
    return text[: MAX_RECORDED_CHARS - 1] + "…"


def error_result(error: str, text: str, *, refused: bool = False) -> llm.ToolResult:
    """A tool's error for the model: a code and a text it can explain.

    `refused`: a rule (exposure, permissions, the sensitive-action policy)
    said no, rather than something failing; the model is told so too.
    """
    data: JsonObjectType = {"error": error, "error_text": text}
    if refused:
        data["refused"] = True
    return llm.ToolResult(data=data, error=True)


async def async_user_may(
    hass: HomeAssistant, context: Context | None, entity_id: str, policy: str
) -> bool:
    """Whether the user behind `context` may read or control (`policy`) the entity.

    No user (an automation, Home Assistant itself) and administrators may; a
    user Home Assistant does not know may not.
    """
    if context is None or context.user_id is None:
        return True
    user = await hass.auth.async_get_user(context.user_id)
    if user is None:
        return False
    return user.is_admin or user.permissions.check_entity(entity_id, policy)


def guard_chat_log_tools(
    chat_log: conversation.ChatLog,
    extra_tools: Iterable[llm.Tool],
    timeout_s: float,
    agent_id: str | None = None,
    allowed_sensitive: Iterable[str] = (),
) -> None:
    """Give the chat log's LLM API our tools, the time limit, the record's names and
    the sensitive actions the owner allowed.

    Once per API instance; `agent_id` is the agent's conversation entity.
    """
    api = chat_log.llm_api
    if api is None:
        return
    if isinstance(api, GuardedAPIInstance):
        # Home Assistant 2026.11 keeps the API instance between turns; ours may have
        # been built for the turn before its chat log (at speech-to-text).
        api.tool_timeout_s = timeout_s
        api.conversation_id = chat_log.conversation_id
        api.allowed_sensitive = tuple(allowed_sensitive)
        return
    chat_log.llm_api = GuardedAPIInstance(
        api=api.api,
        api_prompt=api.api_prompt,
        llm_context=api.llm_context,
        tools=[*api.tools, *extra_tools],
        custom_serializer=api.custom_serializer,
        tool_timeout_s=timeout_s,
        agent_id=agent_id,
        conversation_id=chat_log.conversation_id,
        allowed_sensitive=tuple(allowed_sensitive),
    )
