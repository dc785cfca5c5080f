"""Glue between a realtime agent's subentry data and the provider-neutral core.

The subentry stores plain JSON values edited in the UI; the realtime core
takes typed dataclasses. Keeping the mapping here means the config flow, the
entities and the session manager agree on defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.const import CONF_LLM_HASS_API, CONF_PROMPT
from homeassistant.helpers import llm

from .const import (
    CONF_CAMERA_FPS,
    CONF_CAMERA_LONG_SIDE,
    CONF_CUSTOM_VOICE,
    CONF_IDLE_TIMEOUT,
    CONF_IMAGE_DETAIL,
    CONF_KEEP_WARM,
    CONF_MODEL,
    CONF_NOISE_REDUCTION,
    CONF_PAIR_CAMERAS,
    CONF_REASONING_EFFORT,
    CONF_SILENCE_DURATION_MS,
    CONF_TOOL_TIMEOUT,
    CONF_TRANSCRIPTION_MODEL,
    CONF_TURN_DETECTION,
    CONF_VAD_EAGERNESS,
    CONF_VOICE,
    DEFAULT_CAMERA_FPS,
    DEFAULT_CAMERA_LONG_SIDE,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_IMAGE_DETAIL,
    DEFAULT_KEEP_WARM,
    DEFAULT_NOISE_REDUCTION,
    DEFAULT_PAIR_CAMERAS,
    DEFAULT_REASONING_EFFORT,
    DEFAULT_SILENCE_DURATION_MS,
    DEFAULT_TOOL_TIMEOUT,
    DEFAULT_TURN_DETECTION,
    DEFAULT_VAD_EAGERNESS,
    NOISE_REDUCTION_OFF,
    PROVIDER_PROFILES,
)
from .realtime.config import (
    Eagerness,
    ImageDetail,
    NoiseReduction,
    ReasoningEffort,
    SessionConfig,
    TurnDetection,
    TurnDetectionMode,
)


def recommended_agent_options(provider: str) -> dict[str, Any]:
    """Subentry data for a new agent of `provider`, as the form first shows it."""
    profile = PROVIDER_PROFILES[provider]
    return {
        CONF_MODEL: profile.default_model,
        CONF_VOICE: profile.default_voice,
        CONF_PROMPT: llm.DEFAULT_INSTRUCTIONS_PROMPT,
        CONF_LLM_HASS_API: [llm.LLM_API_ASSIST],
        CONF_TURN_DETECTION: DEFAULT_TURN_DETECTION.value,
        CONF_VAD_EAGERNESS: DEFAULT_VAD_EAGERNESS.value,
        CONF_SILENCE_DURATION_MS: DEFAULT_SILENCE_DURATION_MS,
        CONF_IDLE_TIMEOUT: DEFAULT_IDLE_TIMEOUT,
        # No CONF_SERVICE_DOMAINS: the call-service tool follows the exposed entities.
        CONF_TOOL_TIMEOUT: DEFAULT_TOOL_TIMEOUT,
        CONF_KEEP_WARM: DEFAULT_KEEP_WARM,
        CONF_PAIR_CAMERAS: DEFAULT_PAIR_CAMERAS,
        CONF_CAMERA_FPS: DEFAULT_CAMERA_FPS,
        CONF_CAMERA_LONG_SIDE: DEFAULT_CAMERA_LONG_SIDE,
    }


def provider_option_defaults(provider: str) -> dict[str, Any]:
    """What the provider's own options (`ProviderProfile.provider_options`) start as.

    New agents do not store them: a subentry without one gets its default.
    """
    profile = PROVIDER_PROFILES[provider]
    defaults: dict[str, Any] = {
        CONF_NOISE_REDUCTION: DEFAULT_NOISE_REDUCTION.value,
        CONF_REASONING_EFFORT: DEFAULT_REASONING_EFFORT.value,
        CONF_TRANSCRIPTION_MODEL: profile.input_transcription_model,
        CONF_CUSTOM_VOICE: "",
        CONF_IMAGE_DETAIL: DEFAULT_IMAGE_DETAIL.value,
    }
    return {key: defaults[key] for key in profile.provider_options}


def session_config_from_options(options: Mapping[str, Any], provider: str) -> SessionConfig:
    """Build the session configuration of an agent's subentry data.

    `provider` is the parent entry's provider: it supplies the defaults for
    keys the subentry lacks and says which provider options apply. The prompt
    is passed through unrendered; combining it with Home Assistant's LLM API
    prompt and tools is the session owner's job.
    """
    profile = PROVIDER_PROFILES[provider]
    tuned = provider_option_defaults(provider) | {
        key: value for key, value in options.items() if key in profile.provider_options
    }
    noise = tuned.get(CONF_NOISE_REDUCTION, NOISE_REDUCTION_OFF)
    return SessionConfig(
        model=options.get(CONF_MODEL, profile.default_model),
        instructions=options.get(CONF_PROMPT, ""),
        voice=options.get(CONF_VOICE, profile.default_voice),
        turn_detection=TurnDetection(
            mode=TurnDetectionMode(options.get(CONF_TURN_DETECTION, DEFAULT_TURN_DETECTION)),
            eagerness=Eagerness(options.get(CONF_VAD_EAGERNESS, DEFAULT_VAD_EAGERNESS)),
            silence_ms=int(options.get(CONF_SILENCE_DURATION_MS, DEFAULT_SILENCE_DURATION_MS)),
        ),
        input_transcription_model=tuned.get(
            CONF_TRANSCRIPTION_MODEL, profile.input_transcription_model
        ),
        noise_reduction=None if noise == NOISE_REDUCTION_OFF else NoiseReduction(noise),
        reasoning_effort=_enum(ReasoningEffort, tuned.get(CONF_REASONING_EFFORT)),
        custom_voice_id=tuned.get(CONF_CUSTOM_VOICE) or None,
        image_detail=_enum(ImageDetail, tuned.get(CONF_IMAGE_DETAIL)),
    )


def _enum[E: (ReasoningEffort, ImageDetail)](kind: type[E], value: str | None) -> E | None:
    return kind(value) if value else None
