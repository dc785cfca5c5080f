"""The sensitive-action policy through real conversation turns, on real entities.

Home Assistant's demo entities (locks, a garage door, cameras, updates,
remotes, media players) and a manual alarm panel; the model (the fake OpenAI
server) calls the call-service tool. Two agents share the entry: the default
one, and "Trusted", whose owner ticked every sensitive action.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any
from unittest.mock import patch

from homeassistant.components import conversation
from homeassistant.components.demo.media_player import YOUTUBE_PLAYER_SUPPORT, DemoYoutubePlayer
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.components.media_player import MediaPlayerEntityFeature
from homeassistant.config_entries import SOURCE_RECONFIGURE, ConfigSubentry
from homeassistant.const import CONF_LLM_HASS_API, Platform
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import llm
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.realtime_assist.agent_config import recommended_agent_options
from custom_components.realtime_assist.const import (
    CONF_ALLOWED_SENSITIVE_ACTIONS,
    CONF_KEEP_WARM,
    EVENT_TOOL_CALL,
    SECTION_BEHAVIOUR,
    SUBENTRY_CONVERSATION,
)
from custom_components.realtime_assist.realtime.providers import PROVIDER_OPENAI
from custom_components.realtime_assist.sensitive_actions import (
    SENSITIVE_ACTIONS,
    Risk,
    sensitive_action,
)
from custom_components.realtime_assist.service_tool import TOOL_NAME, CallServiceTool
from custom_components.realtime_assist.tools import REDACTED
from tests.fakes.providers import Call, FakeProvider, FakeSession, OpenAISession, Reply
from tests.flow_texts import assert_form_texts, form_fields

DEFAULT_AGENT = "conversation.realtime_assist"
TRUSTED_AGENT = "conversation.trusted"
ALARM = "alarm_control_panel.security"
ALARM_CODE = "1234"
DEMO_PLATFORMS = [
    Platform.CAMERA,
    Platform.COVER,
    Platform.LOCK,
    Platform.MEDIA_PLAYER,
    Platform.REMOTE,
    Platform.UPDATE,
]


def _state(entity_id: str) -> Callable[[HomeAssistant], Any]:
    return lambda hass: hass.states.get(entity_id).state


def _attribute(entity_id: str, name: str) -> Callable[[HomeAssistant], Any]:
    return lambda hass: hass.states.get(entity_id).attributes.get(name)


@dataclass(frozen=True)
class Case:
    """One sensitive call the model makes, and how the user would notice it ran."""

    action: str
    entity_id: str
    data: dict[str, Any] = field(default_factory=dict)
    observe: Callable[[HomeAssistant], Any] | None = None
    """What changes when the call runs (None: the call fails inside Home Assistant,
    as the demo entity cannot do it: only that the policy let it through shows)."""

    @property
    def id(self) -> str:
        return f"{self.action}-{self.entity_id}"


CASES = [
    Case("lock.unlock", "lock.front_door", observe=_state("lock.front_door")),
    Case("lock.open", "lock.openable_lock", observe=_state("lock.openable_lock")),
    # Any action taking a code: locking would pass a code the model made up.
    Case("lock.lock", "lock.kitchen_door", observe=_state("lock.kitchen_door")),
    Case("cover.open_cover", "cover.garage_door", observe=_state("cover.garage_door")),
    Case("cover.toggle", "cover.garage_door", observe=_state("cover.garage_door")),
    Case(
        "alarm_control_panel.alarm_disarm",
        ALARM,
        {"code": ALARM_CODE},
        observe=_state(ALARM),
    ),
    Case("camera.turn_off", "camera.demo_camera", observe=_state("camera.demo_camera")),
    Case(
        "camera.disable_motion_detection",
        "camera.demo_camera",
        observe=_attribute("camera.demo_camera", "motion_detection"),
    ),
    Case("camera.snapshot", "camera.demo_camera", {"filename": "SNAPSHOT"}),
    Case("camera.record", "camera.demo_camera", {"filename": "/tmp/clip.mp4"}),
    Case("camera.play_stream", "camera.demo_camera", {"media_player": "media_player.living_room"}),
    Case(
        "update.install",
        "update.demo_add_on",
        observe=_attribute("update.demo_add_on", "installed_version"),
    ),
    Case(
        "remote.send_command",
        "remote.remote_one",
        {"command": ["open_garage"]},
        observe=_attribute("remote.remote_one", "last_command_sent"),
    ),
    Case("remote.learn_command", "remote.remote_one", {"command": ["power"]}),
    Case("remote.delete_command", "remote.remote_one", {"command": ["power"]}),
    Case(
        "media_player.play_media",
        "media_player.living_room",
        {
            "media": {
                "media_content_id": "https://evil.example/x.mp3",
                "media_content_type": "music",
            }
        },
        observe=_attribute("media_player.living_room", "media_content_id"),
    ),
]
# Cases whose action stays on offer for harmless calls (other targets, other media).
CONDITIONAL = {"cover.open_cover", "cover.toggle", "media_player.play_media"}


@pytest.fixture
async def sensitive_home(hass: HomeAssistant, ha_core: None, tmp_path: Path) -> Path:
    """The demo's entities and an armed manual alarm, each case's entity exposed.

    Returns a folder Home Assistant may write snapshots to.
    """
    with (
        patch(
            "homeassistant.components.demo.COMPONENTS_WITH_CONFIG_ENTRY_DEMO_PLATFORM",
            DEMO_PLATFORMS,
        ),
        patch("homeassistant.components.demo.lock.LOCK_UNLOCK_DELAY", 0),
        patch("homeassistant.components.demo.update.FAKE_INSTALL_SLEEP_TIME", 0),
    ):
        demo = MockConfigEntry(domain="demo")
        demo.add_to_hass(hass)
        assert await hass.config_entries.async_setup(demo.entry_id)
        await hass.async_block_till_done()
    assert await async_setup_component(
        hass,
        "alarm_control_panel",
        {
            "alarm_control_panel": {
                "platform": "manual",
                "name": "Security",
                "code": ALARM_CODE,
                "arming_time": 0,
                "delay_time": 0,
            }
        },
    )
    await hass.async_block_till_done()
    await hass.services.async_call(
        "alarm_control_panel",
        "alarm_arm_away",
        {"entity_id": ALARM, "code": ALARM_CODE},
        blocking=True,
    )
    await hass.services.async_call(
        "camera", "enable_motion_detection", {"entity_id": "camera.demo_camera"}, blocking=True
    )
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    exposed = {case.entity_id for case in CASES} | {"cover.kitchen_window"}
    for entity_id in hass.states.async_entity_ids():
        async_expose_entity(hass, "conversation", entity_id, entity_id in exposed)
    return tmp_path


@pytest.fixture
async def agents(
    hass: HomeAssistant, sensitive_home: Path, mock_config_entry: MockConfigEntry
) -> MockConfigEntry:
    """The entry with the default agent and "Trusted" (every sensitive action allowed)."""
    hass.config_entries.async_add_subentry(
        mock_config_entry,
        ConfigSubentry(
            data=MappingProxyType(
                recommended_agent_options(PROVIDER_OPENAI)
                | {
                    CONF_KEEP_WARM: False,
                    CONF_ALLOWED_SENSITIVE_ACTIONS: [case.action for case in CASES],
                }
            ),
            subentry_type=SUBENTRY_CONVERSATION,
            title="Trusted",
            unique_id=None,
        ),
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(TRUSTED_AGENT) is not None
    return mock_config_entry


def _answer_after_tools(conn: FakeSession) -> Reply | None:
    return Reply("Done, or not.") if conn.last_input_was_tool_result() else None


async def _model_calls(
    hass: HomeAssistant,
    fake: FakeProvider,
    agent_id: str,
    service: str,
    entity_id: str,
    data: dict[str, Any],
) -> tuple[dict[str, Any], FakeSession]:
    """One turn in which the model calls the action; the result it got, and its session."""
    call = (TOOL_NAME, {"service": service, "entity_id": [entity_id], "data": data})
    return await _model_calls_tool(hass, fake, agent_id, call)


async def _model_calls_tool(
    hass: HomeAssistant, fake: FakeProvider, agent_id: str, call: Call
) -> tuple[dict[str, Any], FakeSession]:
    """One turn in which the model makes this tool call; the result it got, and its session."""
    fake.say_then_call(None, call)
    fake.respond_with(_answer_after_tools)
    await conversation.async_converse(hass, "Please do it", None, Context(), agent_id=agent_id)
    conn = fake.connections[-1]
    [result] = conn.tool_results()
    return result, conn


def _offered_actions(conn: FakeSession) -> list[str]:
    """The actions the call-service tool offered the model (its `service` enum)."""
    assert isinstance(conn, OpenAISession)
    [tool] = [tool for tool in conn.conn.session["tools"] if tool["name"] == TOOL_NAME]
    return list(tool["parameters"]["properties"]["service"]["enum"])


def _description(conn: FakeSession) -> str:
    assert isinstance(conn, OpenAISession)
    [tool] = [tool for tool in conn.conn.session["tools"] if tool["name"] == TOOL_NAME]
    return str(tool["description"])


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_sensitive_action_is_refused_by_default_and_runs_once_allowed(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    sensitive_home: Path,
    agents: MockConfigEntry,
    case: Case,
) -> None:
    data = dict(case.data)
    if data.get("filename") == "SNAPSHOT":
        data["filename"] = str(sensitive_home / "door.jpg")
    before = case.observe(hass) if case.observe else None

    refused, conn = await _model_calls(
        hass, realtime_fake, DEFAULT_AGENT, case.action, case.entity_id, data
    )

    assert refused["error"] == "SensitiveActionRefused", refused
    assert refused["refused"] is True
    assert "not allowed" in refused["error_text"]
    if case.observe:
        assert case.observe(hass) == before
    if case.action not in CONDITIONAL:
        assert case.action not in _offered_actions(conn)
        assert case.action not in _description(conn)

    allowed, conn = await _model_calls(
        hass, realtime_fake, TRUSTED_AGENT, case.action, case.entity_id, data
    )

    assert allowed.get("error") != "SensitiveActionRefused", allowed
    assert case.action in _offered_actions(conn)
    if case.observe:
        assert allowed.get("success") is True, allowed
        assert case.observe(hass) != before
    if case.action == "camera.snapshot":
        assert await hass.async_add_executor_job(Path(data["filename"]).is_file)
    assert realtime_fake.protocol_errors == []


def test_every_sensitive_action_has_a_case() -> None:
    """The cases above cover the whole table (a garage door without positions cannot
    take `set_cover_position`; its policy entry is the same as `open_cover`'s)."""
    assert {entry.action for entry in SENSITIVE_ACTIONS} - {case.action for case in CASES} == {
        "cover.set_cover_position"
    }


@pytest.mark.parametrize(
    ("service", "entity_id", "data", "observe"),
    [
        ("cover.open_cover", "cover.kitchen_window", {}, _state("cover.kitchen_window")),
        (
            "media_player.play_media",
            "media_player.living_room",
            {
                "media": {
                    "media_content_id": "media-source://radio_browser/station",
                    "media_content_type": "music",
                }
            },
            _attribute("media_player.living_room", "media_content_id"),
        ),
    ],
)
async def test_harmless_calls_of_conditionally_sensitive_actions_run_by_default(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    agents: MockConfigEntry,
    service: str,
    entity_id: str,
    data: dict[str, Any],
    observe: Callable[[HomeAssistant], Any],
) -> None:
    """A window is no garage door; a media source's item is no arbitrary URL."""
    before = observe(hass)

    result, _conn = await _model_calls(hass, realtime_fake, DEFAULT_AGENT, service, entity_id, data)

    assert result.get("success") is True, result
    assert observe(hass) != before


# Home Assistant's own tool (Assist API) for playing what its search tool found, or a URL.
PLAY_MEDIA_TOOL = "media_player__play_media"
LIVING_ROOM = "media_player.living_room"


@pytest.fixture
def searchable_players(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's video players search media too, so the Assist API offers its play-media
    tool (asked for before `agents`, which sets the players up)."""
    monkeypatch.setattr(
        DemoYoutubePlayer,
        "_attr_supported_features",
        YOUTUBE_PLAYER_SUPPORT | MediaPlayerEntityFeature.SEARCH_MEDIA,
    )


@pytest.mark.parametrize(
    ("content_id", "agent_id", "plays"),
    [
        ("https://evil.example/x.mp3", DEFAULT_AGENT, False),
        ("/media/x.mp3", DEFAULT_AGENT, False),
        ("media-source://radio_browser/station", DEFAULT_AGENT, True),
        ("https://evil.example/x.mp3", TRUSTED_AGENT, True),
    ],
)
async def test_home_assistants_play_media_tool_plays_a_url_only_once_allowed(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    searchable_players: None,
    agents: MockConfigEntry,
    content_id: str,
    agent_id: str,
    plays: bool,
) -> None:
    """The same rule as the action tool's `media_player.play_media` (README, Safety)."""
    playing = _attribute(LIVING_ROOM, "media_content_id")
    args = {"media_content_id": content_id, "media_content_type": "music"}

    result, conn = await _model_calls_tool(
        hass, realtime_fake, agent_id, (PLAY_MEDIA_TOOL, args | {"player_name": "Living Room"})
    )

    assert PLAY_MEDIA_TOOL in conn.tool_names
    assert (playing(hass) == content_id) is plays, result
    if plays:
        assert result == {"success": True}
    else:
        assert result["error"] == "SensitiveActionRefused", result
        assert result["refused"] is True
        assert "not allowed" in result["error_text"]
    assert realtime_fake.protocol_errors == []


class _OtherAPI(llm.API):
    """A second LLM API, so Home Assistant names each tool after its API."""

    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        return llm.APIInstance(api=self, api_prompt="", llm_context=llm_context, tools=[])


async def test_home_assistants_play_media_tool_is_refused_among_several_apis(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    searchable_players: None,
    sensitive_home: Path,
    mock_config_entry: MockConfigEntry,
) -> None:
    """With two APIs selected the tool is `assist__media_player__play_media`."""
    llm.async_register_api(hass, _OtherAPI(hass=hass, id="other", name="Other"))
    subentry = next(iter(mock_config_entry.subentries.values()))
    apis = {CONF_LLM_HASS_API: [llm.LLM_API_ASSIST, "other"]}
    hass.config_entries.async_update_subentry(
        mock_config_entry, subentry, data={**subentry.data, **apis}
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    before = hass.states.get(LIVING_ROOM).attributes.get("media_content_id")
    args = {"media_content_id": "https://evil.example/x.mp3", "media_content_type": "music"}

    result, conn = await _model_calls_tool(
        hass, realtime_fake, DEFAULT_AGENT, (f"assist__{PLAY_MEDIA_TOOL}", args)
    )

    assert f"assist__{PLAY_MEDIA_TOOL}" in conn.tool_names
    assert hass.states.get(LIVING_ROOM).attributes.get("media_content_id") == before
    assert result["error"] == "SensitiveActionRefused", result
    assert realtime_fake.protocol_errors == []


def _text(**selector: Any) -> dict[str, Any]:
    return {"selector": {"text": selector or None}}


@pytest.mark.parametrize(
    ("fields", "risk"),
    [
        ({"code": _text()}, Risk.CODE),
        ({"user_code": _text(), "code_slot": _text()}, Risk.CODE),
        ({"secret": _text(type="password")}, Risk.CODE),
        ({"filename": _text()}, Risk.FILES),
        ({"local_path": _text()}, Risk.FILES),
        # Inside a (collapsible) section.
        ({"advanced": {"fields": {"file_path": _text()}}}, Risk.FILES),
        ({"url": _text()}, Risk.URL),
        ({"pre_announce_url": _text()}, Risk.URL),
        ({"brightness": {"selector": {"number": {}}}, "color_name": _text()}, None),
        ({"message": _text(), "country": _text()}, None),
    ],
)
def test_actions_taking_a_code_a_path_or_a_url_are_sensitive(
    fields: dict[str, Any], risk: Risk | None
) -> None:
    """Any action, known or not, is judged by its description's fields."""
    entry = sensitive_action("custom.do_it", {"target": {}, "fields": fields})
    assert (entry.risk if entry else None) is risk
    if entry is not None:
        assert entry.action == "custom.do_it"
        assert not entry.conditional


@pytest.mark.parametrize(
    ("content_id", "sensitive"),
    [
        ("https://evil.example/x.mp3", True),
        ("rtsp://192.168.1.5/stream", True),
        ("/media/recordings/door.mp4", True),
        ("file:/etc/passwd", True),
        ("media-source://media_source/local/song.mp3", False),
        ("spotify:track:6rqhFgbbKwnb9MLmUQDhG6", False),
    ],
)
def test_play_media_is_sensitive_for_urls_and_files(content_id: str, sensitive: bool) -> None:
    entry = sensitive_action("media_player.play_media", {})
    assert entry is not None
    assert entry.arguments is not None
    assert entry.arguments({"media": {"media_content_id": content_id}}) is sensitive
    assert entry.arguments({"media_content_id": content_id}) is sensitive


async def test_garage_door_alone_is_never_offered_an_opening(
    hass: HomeAssistant, sensitive_home: Path
) -> None:
    """With only a garage door exposed, opening it is not on offer at all (closing is)."""
    for entity_id in hass.states.async_entity_ids():
        async_expose_entity(hass, "conversation", entity_id, entity_id == "cover.garage_door")

    tool = await CallServiceTool.async_create(hass, None)

    assert "cover.close_cover" in tool.services
    assert {"cover.open_cover", "cover.toggle"} <= tool.refused.keys()
    assert "cover.open_cover" not in (tool.description or "")


async def _cover_group(hass: HomeAssistant, name: str, members: list[str]) -> str:
    """A cover group (device class: none) of `members`, exposed; returns its entity id."""
    group = MockConfigEntry(
        domain="group",
        title=name,
        options={"group_type": "cover", "name": name, "entities": members, "hide_members": False},
    )
    group.add_to_hass(hass)
    assert await hass.config_entries.async_setup(group.entry_id)
    await hass.async_block_till_done()
    [entity_id] = [
        state.entity_id
        for state in hass.states.async_all("cover")
        if state.attributes.get("entity_id") == members
    ]
    async_expose_entity(hass, "conversation", entity_id, True)
    return entity_id


@pytest.mark.parametrize("nested", [False, True], ids=["group", "group-of-groups"])
async def test_cover_group_does_not_open_the_garage_door_unless_allowed(
    hass: HomeAssistant, realtime_fake: FakeProvider, agents: MockConfigEntry, nested: bool
) -> None:
    """Opening a group opens its members: a group holding the garage door (itself of no
    device class) needs the owner's permission as the garage door does."""
    garage = "cover.garage_door"
    members = [garage, "cover.kitchen_window"]
    if nested:
        members = [await _cover_group(hass, "Garage covers", [garage]), "cover.kitchen_window"]
    group = await _cover_group(hass, "All covers", members)
    assert hass.states.get(garage).state == "closed"

    refused, _conn = await _model_calls(
        hass, realtime_fake, DEFAULT_AGENT, "cover.open_cover", group, {}
    )
    await hass.async_block_till_done()

    assert hass.states.get(garage).state == "closed", refused
    assert hass.states.get("cover.kitchen_window").state == "closed"
    assert refused.get("error") == "SensitiveActionRefused", refused
    assert garage in refused["error_text"]

    allowed, _conn = await _model_calls(
        hass, realtime_fake, TRUSTED_AGENT, "cover.open_cover", group, {}
    )
    await hass.async_block_till_done()

    assert allowed.get("success") is True, allowed
    assert hass.states.get(garage).state in {"opening", "open"}


async def test_groups_listing_each_other_are_still_checked(
    hass: HomeAssistant, realtime_fake: FakeProvider, agents: MockConfigEntry
) -> None:
    """Members are followed once each: two groups that list each other (and the garage
    door) end in a refusal, not a loop."""
    for name, members in (("one", ["cover.two"]), ("two", ["cover.one", "cover.garage_door"])):
        hass.states.async_set(f"cover.{name}", "closed", {"entity_id": members})
        async_expose_entity(hass, "conversation", f"cover.{name}", True)

    refused, _conn = await _model_calls(
        hass, realtime_fake, DEFAULT_AGENT, "cover.open_cover", "cover.one", {}
    )

    await hass.async_block_till_done()
    assert hass.states.get("cover.garage_door").state == "closed", refused
    assert refused.get("error") == "SensitiveActionRefused", refused


async def test_agent_settings_list_each_sensitive_action_with_its_risk(
    hass: HomeAssistant, realtime_fake: FakeProvider, agents: MockConfigEntry
) -> None:
    """The owner sees every sensitive action of the home, named and with what it risks;
    ticking one lets the default agent's model use it."""
    subentry = next(s for s in agents.subentries.values() if s.title != "Trusted")
    flow = await hass.config_entries.subentries.async_init(
        (agents.entry_id, SUBENTRY_CONVERSATION),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    fields = dict(form_fields(flow["data_schema"]))
    selector = fields[(SECTION_BEHAVIOUR, CONF_ALLOWED_SENSITIVE_ACTIONS)]
    labels = {option["value"]: option["label"] for option in selector.config["options"]}
    assert {case.action for case in CASES} <= labels.keys()
    assert labels["lock.unlock"] == "Unlock lock (lock.unlock): lets someone into your home"
    assert labels["camera.snapshot"].endswith("writes or reads files on the Home Assistant machine")
    assert labels["lock.lock"].endswith("passes a code the model chose")
    assert selector.config["multiple"] is True
    await assert_form_texts(hass, flow, SUBENTRY_CONVERSATION)

    # The form as shown (the agent's settings; every section, as the frontend sends
    # them), with one action ticked.
    form: dict[str, dict[str, Any]] = {path[0]: {} for path in fields if len(path) == 2}
    for path in fields:
        if len(path) == 2 and path[1] in subentry.data:
            form.setdefault(path[0], {})[path[1]] = subentry.data[path[1]]
    form[SECTION_BEHAVIOUR][CONF_ALLOWED_SENSITIVE_ACTIONS] = ["lock.unlock"]
    result = await hass.config_entries.subentries.async_configure(flow["flow_id"], form)
    await hass.async_block_till_done()

    assert result["reason"] == "reconfigure_successful"
    allowed, _conn = await _model_calls(
        hass, realtime_fake, DEFAULT_AGENT, "lock.unlock", "lock.front_door", {}
    )
    assert allowed.get("success") is True, allowed
    assert hass.states.get("lock.front_door").state == "unlocked"


async def test_a_code_the_model_passes_is_not_in_the_record(
    hass: HomeAssistant, realtime_fake: FakeProvider, agents: MockConfigEntry
) -> None:
    """The owner let an agent disarm the alarm: the user's code goes to the panel, and the
    record of the call (bus, logbook, recorder: for every user to read) says it was
    passed, not what it was."""
    records = async_capture_events(hass, EVENT_TOOL_CALL)

    result, _conn = await _model_calls(
        hass,
        realtime_fake,
        TRUSTED_AGENT,
        "alarm_control_panel.alarm_disarm",
        ALARM,
        {"code": ALARM_CODE},
    )

    assert result.get("success") is True, result
    assert hass.states.get(ALARM).state == "disarmed"
    [record] = records
    assert record.data["tool_args"]["data"] == {"code": REDACTED}
    assert ALARM_CODE not in json.dumps(record.data)
