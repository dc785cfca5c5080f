"""Tools bridge: Home Assistant's LLM tools become the model's functions.

Tool calls run through Home Assistant's own path (`APIInstance.async_call_tool`,
started by the chat log as soon as the model asks), so exposure, permissions
and the chat log's tool records are Home Assistant's. This module adds what a
spoken conversation needs on top: a time limit per call, and any failure
turned into an error result the model can talk about instead of a hung turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
from homeassistant.util.json import JsonObjectType
import probatio

from .const import LOGGER
from .realtime.config import ToolSpec

# JSON-schema keywords the realtime APIs reject at the top of a function's parameters.
_UNSUPPORTED_TOP_LEVEL = frozenset({"oneOf", "anyOf", "allOf", "enum", "not"})


def tool_specs(api: llm.APIInstance | None) -> tuple[ToolSpec, ...]:
    """The model-facing function declarations of the agent's tools."""
    if api is None:
        return ()
    return tuple(
        ToolSpec(tool.name, tool.description or "", _parameters(tool, api.custom_serializer))
        for tool in api.tools
    )


def _parameters(tool: llm.Tool, serializer: Callable[[Any], Any] | None) -> dict[str, Any]:
    schema: dict[str, Any] = probatio.to_openapi(
        tool.parameters, custom_serializer=serializer, openapi_version="3.1.0"
    )
    return {key: value for key, value in schema.items() if key not in _UNSUPPORTED_TOP_LEVEL}


@dataclass
class GuardedAPIInstance(llm.APIInstance):
    """The agent's LLM API with a time limit per tool call and no escaping exceptions."""

    tool_timeout_s: float = 10.0

    async def async_call_tool(self, tool_input: llm.ToolInput) -> llm.ToolResult:
        try:
            async with asyncio.timeout(self.tool_timeout_s):
                return await llm.APIInstance.async_call_tool(self, tool_input)
        except TimeoutError:
            LOGGER.warning(
                "Tool %s did not finish within %s s", tool_input.tool_name, self.tool_timeout_s
            )
            return error_result(
                "TimeoutError",
                f"{tool_input.tool_name} did not finish within {self.tool_timeout_s:g} seconds",
            )
        except HomeAssistantError, probatio.Invalid:
            raise  # the chat log records these as error results itself
        except Exception as err:
            LOGGER.exception("Tool %s failed", tool_input.tool_name)
            return error_result(type(err).__name__, str(err))


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
    chat_log: conversation.ChatLog, extra_tools: Iterable[llm.Tool], timeout_s: float
) -> None:
    """Give the chat log's LLM API our tools and the time limit (once per API instance)."""
    api = chat_log.llm_api
    if api is None:
        return
    if isinstance(api, GuardedAPIInstance):
        # Home Assistant 2026.11 keeps the API instance between turns.
        api.tool_timeout_s = timeout_s
        return
    chat_log.llm_api = GuardedAPIInstance(
        api=api.api,
        api_prompt=api.api_prompt,
        llm_context=api.llm_context,
        tools=[*api.tools, *extra_tools],
        custom_serializer=api.custom_serializer,
        tool_timeout_s=timeout_s,
    )
