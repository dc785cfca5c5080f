"""The sensitive-action policy: actions the model may not call unless the owner allowed them.

Whoever a satellite hears reaches the model, and so does text a camera shows or
media speaks (prompt injection). So the call-service tool refuses, by default,
actions that let someone into the home, switch off its alarm or cameras, write
files, install software, send raw remote commands or fetch arbitrary URLs:

- `SENSITIVE_ACTIONS` names the known ones, some only for certain targets
  (garage doors and gates) or arguments (`play_media` of a URL or a file);
- any other entity-targeted action whose fields take a code, a file path or a
  URL (by its description: field names, password selectors) counts as well.

The agent's settings list them per action (`CONF_ALLOWED_SENSITIVE_ACTIONS`);
an action the owner ticked is offered like any other. A refused action is never
offered in the tool's description; if the model calls it anyway, it gets an
error it can explain and nothing runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
import re
from typing import Any, Final
from urllib.parse import urlsplit

from homeassistant.core import State


class Risk(StrEnum):
    """Why an action is refused by default (the settings explain each in words)."""

    ENTRY = "entry"  # lets someone into the home
    ALARM = "alarm"  # switches the alarm off
    CAMERA = "camera"  # blinds a camera or shows its stream elsewhere
    FILES = "files"  # writes or reads files on the Home Assistant machine
    INSTALL = "install"  # installs software
    REMOTE = "remote"  # sends or changes raw remote-control commands
    URL = "url"  # makes Home Assistant fetch or play anything, from anywhere
    CODE = "code"  # passes a code the model made up


@dataclass(frozen=True, slots=True)
class SensitiveAction:
    """One action that is refused unless the owner allowed it."""

    action: str
    """`domain.service`, also the value stored in the agent's settings."""
    risk: Risk
    what: str
    """What the model is not allowed to do, for its error ("unlock locks")."""
    device_classes: frozenset[str] = frozenset()
    """Sensitive only on targets of these device classes (empty: on any target)."""
    arguments: Callable[[Mapping[str, Any]], bool] | None = None
    """Sensitive only for calls whose data this accepts (None: any call)."""

    def applies_to(self, state: State) -> bool:
        """Whether acting on this entity is the sensitive part."""
        device_class = state.attributes.get("device_class")
        return not self.device_classes or device_class in self.device_classes

    @property
    def conditional(self) -> bool:
        """Whether some calls of the action are harmless (decided per call)."""
        return bool(self.device_classes) or self.arguments is not None


def _plays_arbitrary_media(data: Mapping[str, Any]) -> bool:
    """Whether `play_media` is asked to play a URL or a file, not a media source's item.

    `media-source://` ids and a provider's own ids (`spotify:track:…`) stay
    allowed; anything with a host (`https://…`) or a path (`/media/…`,
    `file:/…`) does not.
    """
    media = data.get("media")
    content_id = media.get("media_content_id") if isinstance(media, Mapping) else None
    content_id = content_id or data.get("media_content_id")
    if not isinstance(content_id, str):
        return False  # nothing to play: the action's own schema refuses it
    parts = urlsplit(content_id.strip())
    if parts.scheme == "media-source":
        return False
    return bool(parts.netloc) or parts.path.startswith(("/", "\\", "~"))


_GARAGE_OR_GATE: Final = frozenset({"garage", "gate"})
_OPENS_GARAGE: Final = "open garage doors or gates"

SENSITIVE_ACTIONS: Final[tuple[SensitiveAction, ...]] = (
    SensitiveAction("lock.unlock", Risk.ENTRY, "unlock locks"),
    SensitiveAction("lock.open", Risk.ENTRY, "open (unlatch) locks"),
    SensitiveAction("cover.open_cover", Risk.ENTRY, _OPENS_GARAGE, _GARAGE_OR_GATE),
    SensitiveAction("cover.toggle", Risk.ENTRY, _OPENS_GARAGE, _GARAGE_OR_GATE),
    SensitiveAction("cover.set_cover_position", Risk.ENTRY, _OPENS_GARAGE, _GARAGE_OR_GATE),
    SensitiveAction("alarm_control_panel.alarm_disarm", Risk.ALARM, "disarm alarms"),
    SensitiveAction("camera.turn_off", Risk.CAMERA, "turn off cameras"),
    SensitiveAction(
        "camera.disable_motion_detection", Risk.CAMERA, "turn off cameras' motion detection"
    ),
    SensitiveAction("camera.play_stream", Risk.CAMERA, "play camera streams on media players"),
    SensitiveAction("camera.snapshot", Risk.FILES, "save camera pictures to files"),
    SensitiveAction("camera.record", Risk.FILES, "record camera video to files"),
    SensitiveAction("update.install", Risk.INSTALL, "install updates"),
    SensitiveAction("remote.send_command", Risk.REMOTE, "send remote-control commands"),
    SensitiveAction("remote.learn_command", Risk.REMOTE, "teach remotes new commands"),
    SensitiveAction("remote.delete_command", Risk.REMOTE, "delete remotes' commands"),
    SensitiveAction(
        "media_player.play_media",
        Risk.URL,
        "play media from URLs or files",
        arguments=_plays_arbitrary_media,
    ),
)
_BY_ACTION: Final = {entry.action: entry for entry in SENSITIVE_ACTIONS}

# Field names that take a secret, a path or a URL (`code`, `user_code`, `filename`,
# `local_path`, `url`...). Erring towards "sensitive" only costs the owner a tick.
_SECRET_FIELD: Final = re.compile(r"(^|_)(code|pin|passcode|password|usercode)($|_)")
_FIELD_RISKS: Final = (
    (_SECRET_FIELD, Risk.CODE),
    (re.compile(r"(^|_)(file|filename|filepath|path|directory)($|_)"), Risk.FILES),
    (re.compile(r"(^|_)(url|uri)($|_)"), Risk.URL),
)
_FIELD_WHAT: Final = {
    Risk.CODE: "which takes a code",
    Risk.FILES: "which takes a file path",
    Risk.URL: "which takes a URL",
}


def description_fields(fields: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """An action description's fields (name, description), sections flattened."""
    for name, field in fields.items():
        if not isinstance(field, Mapping):
            continue
        if "fields" in field and "selector" not in field:
            yield from description_fields(field["fields"])
        else:
            yield name, field


def is_secret_field(name: str) -> bool:
    """A field that takes a code, a PIN or a password, by its name."""
    return _SECRET_FIELD.search(name.lower()) is not None


def _field_risk(name: str, field: Mapping[str, Any]) -> Risk | None:
    text = (field.get("selector") or {}).get("text")
    if isinstance(text, Mapping) and text.get("type") == "password":
        return Risk.CODE
    return next((risk for pattern, risk in _FIELD_RISKS if pattern.search(name.lower())), None)


def sensitive_action(action: str, description: Mapping[str, Any]) -> SensitiveAction | None:
    """The policy's entry for an action, from the table or from its fields."""
    if (known := _BY_ACTION.get(action)) is not None:
        return known
    for name, field in description_fields(description.get("fields") or {}):
        if (risk := _field_risk(name, field)) is not None:
            return SensitiveAction(action, risk, f"use {action}, {_FIELD_WHAT[risk]}")
    return None


def refusal_text(entry: SensitiveAction, entity_id: str | None = None) -> str:
    """What the model is told when it calls a refused action."""
    target = f" ({entity_id} is one)" if entity_id and entry.device_classes else ""
    return (
        f"The home's owner has not allowed this assistant to {entry.what}{target}. "
        "Nothing was done. Tell the user you are not allowed to do that; the owner can "
        "allow it in the assistant's settings."
    )


# Home Assistant's own tools that make the same call as a sensitive action, by their
# name in the Assist API: `media_player__play_media` (offered when an exposed player
# can search and play media) plays whatever it is given, URLs and files included.
_TOOL_ACTIONS: Final = {"media_player__play_media": "media_player.play_media"}


def refused_tool_call(
    tool_name: str, arguments: Mapping[str, Any], allowed: Iterable[str]
) -> SensitiveAction | None:
    """The policy's entry when this call of Home Assistant's own tool is one it refuses.

    Such a tool is held to the action tool's rule for the same action: refused unless
    the owner allowed the action (`allowed`), or unless the call is a harmless one.
    """
    action = _TOOL_ACTIONS.get(tool_name)
    if action is None or action in allowed:
        return None
    entry = _BY_ACTION[action]
    return entry if entry.arguments is None or entry.arguments(arguments) else None
