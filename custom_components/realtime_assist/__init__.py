"""Realtime Assist: a realtime speech-to-speech model session behind Assist."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from homeassistant.auth.permissions.const import POLICY_READ
from homeassistant.components import assist_pipeline, conversation
from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_API_KEY, CONF_URL, Platform
from homeassistant.core import (
    Context,
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
)
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryError,
    ConfigEntryNotReady,
    HomeAssistantError,
    ServiceValidationError,
    Unauthorized,
)
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType
from homeassistant.util import ssl as ssl_util
import probatio

from .agent import RealtimeAgent
from .assist_bridge import async_set_preferred_pipeline
from .camera import CameraError, async_snapshot
from .const import (
    CONF_ALLOW_UNENCRYPTED,
    CONF_MAKE_PREFERRED,
    CONF_PROVIDER,
    DOMAIN,
    LOGGER,
    PROVIDER_PROFILES,
    SUBENTRY_CONVERSATION,
)
from .problems import clear_problems
from .realtime.config import Endpoint, SessionConfig
from .realtime.errors import (
    AuthenticationError,
    ConnectError,
    InvalidEndpointError,
    RealtimeError,
    UnencryptedEndpointError,
)
from .realtime.providers import create_provider
from .realtime.providers.base import Provider
from .tools import async_user_may
from .usage import usage_store

# Each realtime agent (config subentry) adds its entities on these platforms.
PLATFORMS: list[Platform] = [Platform.CONVERSATION, Platform.SENSOR, Platform.STT, Platform.TTS]


@dataclass(slots=True)
class RealtimeAssistData:
    """What a loaded entry keeps at runtime."""

    # Opens realtime sessions with the entry's endpoint and key.
    provider: Provider
    # Each agent's sessions and live turns, by subentry id.
    agents: dict[str, RealtimeAgent] = field(default_factory=dict)


type RealtimeAssistConfigEntry = ConfigEntry[RealtimeAssistData]


async def async_build_provider(data: Mapping[str, Any], http: aiohttp.ClientSession) -> Provider:
    """Build the provider for entry data and prove the endpoint takes the key.

    Realtime keys can be scoped or deployment-bound (Azure), so the surest
    check is opening a real session with the provider's default model; it is
    closed right away. A server that answers but refuses that model (an Azure
    resource whose deployment has another name, a project key limited to other
    models) is asked for the models the key may use (`list_models`, over
    `http`): if it lists them, the key works. Raises AuthenticationError for a
    rejected key, InvalidEndpointError or UnencryptedEndpointError for an
    endpoint URL we refuse, and ConnectError when the endpoint cannot be reached.
    """
    name: str = data[CONF_PROVIDER]
    endpoint = Endpoint(
        api_key=data[CONF_API_KEY],
        url=data.get(CONF_URL),
        allow_unencrypted=data.get(CONF_ALLOW_UNENCRYPTED, False),
        # Home Assistant's shared client context, built once at startup outside the
        # event loop (a context per connection would load the CA bundle in the loop).
        ssl_context=ssl_util.get_default_context(),
    )
    provider = create_provider(name, endpoint)
    try:
        connection = await provider.connect(
            SessionConfig(model=PROVIDER_PROFILES[name].default_model)
        )
    except AuthenticationError, InvalidEndpointError, UnencryptedEndpointError:
        raise
    except ConnectError as err:
        if isinstance(err.__cause__, (OSError, TimeoutError)):
            raise  # nobody answered: a listing would not either
        try:
            await provider.list_models(http)
        except AuthenticationError:
            raise
        except RealtimeError:
            raise err from None
        return provider
    await connection.close()
    return provider


def endpoint_error_key(err: InvalidEndpointError | UnencryptedEndpointError) -> str:
    """The translation key (form error and exception) of a refused endpoint URL."""
    return "unencrypted_url" if isinstance(err, UnencryptedEndpointError) else "invalid_url"


CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
SERVICE_ASK_ABOUT_CAMERA = "ask_about_camera"
ASK_ABOUT_CAMERA_SCHEMA = probatio.Schema(
    {
        probatio.Required("camera"): cv.entity_domain("camera"),
        probatio.Required("question"): cv.string,
        probatio.Optional("agent"): cv.entity_domain("conversation"),
    }
)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions (they work with any loaded agent) and the card."""

    async def ask_about_camera(call: ServiceCall) -> ServiceResponse:
        camera_id: str = call.data["camera"]
        # Before anything reaches the camera or the provider.
        await _async_check_camera_access(hass, call.context, camera_id)
        agent = find_agent(hass, call.data.get("agent"))
        try:
            jpeg = await async_snapshot(hass, camera_id, agent.camera_long_side)
        except CameraError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="camera_unavailable",
                translation_placeholders={"camera": camera_id, "error": str(err)},
            ) from err
        try:
            answer = await agent.async_ask_about_image(jpeg, call.data["question"])
        except (RealtimeError, TimeoutError) as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="model_unavailable",
                translation_placeholders={"error": str(err) or type(err).__name__},
            ) from err
        return {"camera": camera_id, "answer": answer}

    hass.services.async_register(
        DOMAIN,
        SERVICE_ASK_ABOUT_CAMERA,
        ask_about_camera,
        schema=ASK_ABOUT_CAMERA_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    from .browser import async_setup_browser  # it imports this package

    await async_setup_browser(hass)
    return True


async def _async_check_camera_access(hass: HomeAssistant, context: Context, camera_id: str) -> None:
    """Refuse a camera the caller may not see, or (for a non-admin) one not exposed to Assist.

    The frame goes to a cloud model: Home Assistant's read permission alone is
    not enough for other users than administrators; the owner must also have
    exposed the camera to Assist. No user (automations) means no limit.
    """
    if not await async_user_may(hass, context, camera_id, POLICY_READ):
        raise Unauthorized(context=context, entity_id=camera_id, permission=POLICY_READ)
    if context.user_id is None or async_should_expose(hass, conversation.DOMAIN, camera_id):
        return
    user = await hass.auth.async_get_user(context.user_id)
    if user is None or not user.is_admin:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="camera_not_exposed",
            translation_placeholders={"camera": camera_id},
        )


def find_agent(hass: HomeAssistant, conversation_entity: str | None) -> RealtimeAgent:
    """The loaded agent with that conversation entity (or the first loaded one)."""
    entries: list[RealtimeAssistConfigEntry] = hass.config_entries.async_loaded_entries(DOMAIN)
    for entry in entries:
        for agent in entry.runtime_data.agents.values():
            if conversation_entity in (None, agent.entity_ids.get(Platform.CONVERSATION)):
                return agent
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="agent_not_found",
        translation_placeholders={"agent": conversation_entity or DOMAIN},
    )


async def async_setup_entry(hass: HomeAssistant, entry: RealtimeAssistConfigEntry) -> bool:
    """Set up Realtime Assist from a config entry.

    Returns a bool because Home Assistant 2026.10 requires one; 2026.11
    still accepts it from custom integrations.
    """
    try:
        provider = await async_build_provider(entry.data, async_get_clientsession(hass))
    except AuthenticationError as err:
        # Home Assistant starts the reauth flow and tells the user.
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="invalid_auth"
        ) from err
    except (InvalidEndpointError, UnencryptedEndpointError) as err:
        # Retrying cannot help; reconfiguring the entry does.
        raise ConfigEntryError(
            translation_domain=DOMAIN, translation_key=endpoint_error_key(err)
        ) from err
    except ConnectError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"error": str(err)},
        ) from err

    entry.runtime_data = RealtimeAssistData(
        provider=provider,
        agents={
            subentry_id: RealtimeAgent(hass, entry, provider, subentry)
            for subentry_id, subentry in entry.subentries.items()
            if subentry.subentry_type == SUBENTRY_CONVERSATION
        },
    )
    for agent in entry.runtime_data.agents.values():
        await agent.usage.async_load()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    await _async_ensure_pipelines(hass, entry)
    for agent in entry.runtime_data.agents.values():
        await agent.async_keep_warm()
    entry.async_on_unload(entry.add_update_listener(_async_reload_entry))
    return True


async def _async_ensure_pipelines(hass: HomeAssistant, entry: RealtimeAssistConfigEntry) -> None:
    """Give each agent an Assist pipeline of its own three entities, if none uses them yet.

    The pipeline reads text aloud in the agent's voice, so announcements sound
    like replies. The user's preferred pipeline is left alone unless they asked,
    when adding the agent, to make it their preferred assistant.
    """
    pipelines = assist_pipeline.async_get_pipelines(hass)
    for subentry_id, agent in entry.runtime_data.agents.items():
        subentry = entry.subentries[subentry_id]
        ids = agent.entity_ids
        if not {Platform.CONVERSATION, Platform.STT, Platform.TTS} <= ids.keys():
            continue  # an entity failed to load; nothing sensible to build
        in_use = set(ids.values())
        pipeline = next(
            (p for p in pipelines if in_use & {p.conversation_engine, p.stt_engine, p.tts_engine}),
            None,
        ) or await _async_create_pipeline(hass, subentry.title, ids, agent.base_config.voice)
        if CONF_MAKE_PREFERRED not in subentry.data:
            continue
        if pipeline is not None:
            async_set_preferred_pipeline(hass, pipeline.id)
        # Asked once: the wish is not a setting of the agent.
        hass.config_entries.async_update_subentry(
            entry,
            subentry,
            data={k: v for k, v in subentry.data.items() if k != CONF_MAKE_PREFERRED},
        )


async def _async_create_pipeline(
    hass: HomeAssistant, name: str, ids: Mapping[str, str], voice: str | None
) -> assist_pipeline.Pipeline | None:
    """A pipeline of the agent's conversation, speech-to-text and text-to-speech entities."""
    pipeline = await assist_pipeline.async_create_default_pipeline(
        hass, stt_engine_id=ids[Platform.STT], tts_engine_id=ids[Platform.TTS], pipeline_name=name
    )
    if pipeline is None:
        LOGGER.warning("Could not create an Assist pipeline for %s", ids[Platform.CONVERSATION])
        return None
    await assist_pipeline.async_update_pipeline(
        hass, pipeline, conversation_engine=ids[Platform.CONVERSATION], tts_voice=voice
    )
    return pipeline


async def async_pipelines_follow_voice(
    hass: HomeAssistant, tts_entity_id: str | None, old_voice: str | None, new_voice: str | None
) -> None:
    """After an agent's voice changed, its pipelines that used the old voice use the new one.

    A pipeline given another voice on purpose keeps it.
    """
    if tts_entity_id is None or new_voice is None or old_voice == new_voice:
        return
    for pipeline in assist_pipeline.async_get_pipelines(hass):
        if pipeline.tts_engine == tts_entity_id and pipeline.tts_voice in (old_voice, None):
            await assist_pipeline.async_update_pipeline(hass, pipeline, tts_voice=new_voice)


async def async_unload_entry(hass: HomeAssistant, entry: RealtimeAssistConfigEntry) -> bool:
    """Unload a config entry; its live sessions close."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        for agent in entry.runtime_data.agents.values():
            await agent.async_close()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: RealtimeAssistConfigEntry) -> None:
    """The entry is deleted: so are its agents' usage totals and its Repairs issues."""
    clear_problems(hass, entry)
    for subentry_id in entry.subentries:
        await usage_store(hass, subentry_id).async_remove()


async def _async_reload_entry(hass: HomeAssistant, entry: RealtimeAssistConfigEntry) -> None:
    """Reload after the key or an agent changed, so sessions use the new settings."""
    await hass.config_entries.async_reload(entry.entry_id)
