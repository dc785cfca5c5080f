"""What it costs: the agent's usage sensors, spend, the daily limit and the turn record.

Every test runs real turns (typed, spoken through the Assist pipeline, and with a
camera picture) against each provider's fake, whose usage reports follow the
SDK types; the sensors must add up exactly what the fake reported.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
import functools
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import conversation
from homeassistant.const import EVENT_STATE_CHANGED, EVENT_STATE_REPORTED, UnitOfTime
from homeassistant.core import (
    Context,
    Event,
    EventStateChangedData,
    EventStateReportedData,
    HomeAssistant,
    callback,
)
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    CLIENT_ID,
    MockConfigEntry,
    MockUser,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.realtime_assist.camera import CAMERA_TOOL_NAME
from custom_components.realtime_assist.const import (
    CONF_CURRENCY,
    CONF_CUSTOM_PRICES,
    CONF_DAILY_LIMIT,
    CONF_KEEP_WARM,
    CONF_MODEL,
    CONF_PRICE_PREFIX,
    DOMAIN,
)
from custom_components.realtime_assist.realtime.events import Usage
from custom_components.realtime_assist.realtime.providers import PROVIDER_GEMINI, PROVIDER_OPENAI
from custom_components.realtime_assist.sensor import SENSORS
from custom_components.realtime_assist.usage import (
    PRICE_KINDS,
    PriceTable,
    UsageMeter,
    default_prices,
)
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.fakes.providers import (
    USAGE_KINDS,
    FakeProvider,
    FakeSession,
    GeminiFake,
    Reply,
    usage_kinds,
)
from tests.fixtures_entry import every_provider
from tests.fixtures_home import FRONT_DOOR_CAMERA, HomeCamera
from tests.pipeline_helpers import PipelineRun, our_pipeline, run_pipeline
from tests.usage_helpers import TOKEN_SENSORS, TurnEvents, usage_sensor, usage_sensor_id

AGENT_ID = "conversation.realtime_assist"
UTTERANCE = silence(0.2, 16000) + speech_like(1.0, 16000) + silence(1.0, 16000)

# Each test runs against each provider's fake, unless it pins one (tests/fixtures_entry.py).
provider = every_provider
# Spend needs a list price: usage.py has none yet for gemini-3.8-live, the default.
PRICED_GEMINI_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
SENSOR_KEYS = [description.key for description in SENSORS]


@pytest.fixture
def mock_config_entry(
    hass: HomeAssistant, provider: str, mock_config_entry: MockConfigEntry
) -> MockConfigEntry:
    """The default agent, on a Gemini model with a list price."""
    if provider == PROVIDER_GEMINI:
        _update_agent(hass, mock_config_entry, **{CONF_MODEL: PRICED_GEMINI_MODEL})
    return mock_config_entry


def _meter(entry: MockConfigEntry) -> UsageMeter:
    [agent] = entry.runtime_data.agents.values()
    return agent.usage


def _update_agent(hass: HomeAssistant, entry: MockConfigEntry, **options: Any) -> None:
    """Change the default agent's settings (a loaded entry reloads)."""
    subentry = next(iter(entry.subentries.values()))
    hass.config_entries.async_update_subentry(entry, subentry, data={**subentry.data, **options})


async def _converse(hass: HomeAssistant, text: str) -> conversation.ConversationResult:
    return await conversation.async_converse(hass, text, None, Context(), agent_id=AGENT_ID)


def _speech(result: conversation.ConversationResult) -> str:
    return str(result.response.speech["plain"]["speech"])


def _state(hass: HomeAssistant, key: str) -> str:
    return usage_sensor(hass, key).state


def _shown(hass: HomeAssistant, key: str) -> tuple[str, dict[str, Any]]:
    """What the user sees of a sensor: its state and attributes (not when it was written)."""
    state = usage_sensor(hass, key)
    return state.state, dict(state.attributes)


def _usage(event: dict[str, Any]) -> Usage:
    """The usage a turn event carries."""
    return Usage(**{k: v for k, v in event["usage"].items() if k != "total_tokens"})


def _reported(fake: FakeProvider) -> Counter[str]:
    """Everything the fake reported, over all connections."""
    return sum((conn.reported_usage() for conn in fake.connections), Counter())


def _answer_after_tools(text: str) -> Any:
    def respond(conn: FakeSession) -> Reply | None:
        return Reply(text) if conn.last_input_was_tool_result() else None

    return respond


async def test_sensors_count_what_the_provider_reported_over_text_voice_and_image_turns(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    realtime_fake: FakeProvider,
    front_door_camera: HomeCamera,
    loaded_entry: MockConfigEntry,
) -> None:
    turns = TurnEvents(hass)
    # Typed.
    realtime_fake.say("Paris is the capital of France.")
    assert _speech(await _converse(hass, "What is the capital of France?")) == (
        "Paris is the capital of France."
    )
    # Spoken, through the Assist pipeline.
    realtime_fake.hear("What time is it?")
    realtime_fake.say("It is half past three.")
    run = await run_pipeline(hass_ws_client, our_pipeline(hass, loaded_entry).id, UTTERANCE)
    assert "error" not in run.types, run.of_type("error")
    # With a picture: the model looks through the camera, then answers.
    realtime_fake.say_then_call("Let me look.", (CAMERA_TOOL_NAME, {"camera": FRONT_DOOR_CAMERA}))
    realtime_fake.respond_with(_answer_after_tools("A parcel is on the doormat."))
    assert _speech(await _converse(hass, "Is there a parcel?")) == "A parcel is on the doormat."

    events = await turns.wait_for(3)

    reported = _reported(realtime_fake)
    assert reported["input_image"] > 0
    assert reported["input_audio"] > 0
    assert reported["output_audio"] > 0
    for kind in USAGE_KINDS:
        assert _state(hass, TOKEN_SENSORS[kind]) == str(reported[kind]), kind
    assert _state(hass, "turns") == "3"
    # Every token of these sessions was a turn's.
    assert sum((usage_kinds(_usage(e)) for e in events), Counter()) == reported
    # Spend follows the model's list price.
    meter = _meter(loaded_entry)
    prices = default_prices(meter.model)
    assert prices is not None
    assert float(_state(hass, "spend_total")) == pytest.approx(prices.cost(meter.usage))
    assert float(_state(hass, "spend_today")) == pytest.approx(prices.cost(meter.usage))
    assert sum(e["cost"] for e in events) == pytest.approx(prices.cost(meter.usage))
    assert realtime_fake.protocol_errors == []


async def test_turn_event_and_last_turn_sensor_tell_the_whole_turn(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    realtime_fake: FakeProvider,
    kitchen_light: str,
    loaded_entry: MockConfigEntry,
) -> None:
    turns = TurnEvents(hass)
    realtime_fake.hear("Turn on the kitchen light.")
    realtime_fake.say_then_call("Sure.", ("intent__HassTurnOn", {"name": "Kitchen Light"}))
    realtime_fake.respond_with(_answer_after_tools("The kitchen light is on."))

    run = await run_pipeline(hass_ws_client, our_pipeline(hass, loaded_entry).id, UTTERANCE)

    [event] = await turns.wait_for(1)
    conversation_id = run.one("intent-end")["intent_output"]["conversation_id"]
    usage = _usage(event)
    meter = _meter(loaded_entry)
    assert meter.prices is not None
    assert event == {
        "agent_id": AGENT_ID,
        "conversation_id": conversation_id,
        "device_id": None,
        "satellite_id": None,
        "typed": False,
        "user_text": "Turn on the kitchen light.",
        "reply_text": "Sure. The kitchen light is on.",
        "tool_calls": [{"name": "intent__HassTurnOn", "arguments": {"name": "Kitchen Light"}}],
        "outcome": "completed",
        "usage": {**event["usage"], "total_tokens": usage.total_tokens},
        "cost": pytest.approx(meter.prices.cost(usage)),
        "currency": "USD",
        "latency_ms": event["latency_ms"],
        "started": event["started"],
        "ended": event["ended"],
    }
    assert usage_kinds(usage) == _reported(realtime_fake)
    # The model's first audio came after the user stopped speaking.
    assert isinstance(event["latency_ms"], int)
    assert event["latency_ms"] >= 0
    assert dt_util.parse_datetime(event["started"]) <= dt_util.parse_datetime(event["ended"])

    state = usage_sensor(hass, "last_turn")
    ended = dt_util.parse_datetime(event["ended"])
    assert ended is not None
    assert dt_util.parse_datetime(state.state) == ended.replace(microsecond=0)
    assert state.attributes["conversation_id"] == conversation_id
    assert state.attributes["user_text"] == "Turn on the kitchen light."
    assert state.attributes["tool_calls"] == ["intent__HassTurnOn"]
    assert state.attributes["tokens"] == usage.total_tokens
    assert state.attributes["latency_ms"] == event["latency_ms"]
    assert realtime_fake.protocol_errors == []


async def test_a_turn_writes_only_the_sensors_whose_figure_changed(
    hass: HomeAssistant, realtime_fake: FakeProvider, loaded_entry: MockConfigEntry
) -> None:
    """Eleven sensors, two reports a turn: an unchanged figure is not written again."""
    turns = TurnEvents(hass)
    realtime_fake.say("Paris is the capital of France.")
    await _converse(hass, "What is the capital of France?")
    await turns.wait_for(1)
    sensors = {usage_sensor_id(hass, key): key for key in SENSOR_KEYS}
    before = {key: _shown(hass, key) for key in SENSOR_KEYS}
    written: Counter[str] = Counter()

    @callback
    def count(event: Event[EventStateChangedData] | Event[EventStateReportedData]) -> None:
        written[sensors[event.data["entity_id"]]] += 1

    @callback
    def ours(data: EventStateChangedData | EventStateReportedData) -> bool:
        return data["entity_id"] in sensors

    for event_type in (EVENT_STATE_CHANGED, EVENT_STATE_REPORTED):
        hass.bus.async_listen(event_type, count, event_filter=ours)
    realtime_fake.say("Berlin is the capital of Germany.")
    await _converse(hass, "And of Germany?")
    await turns.wait_for(2)
    await hass.async_block_till_done()

    changed = {key for key in SENSOR_KEYS if _shown(hass, key) != before[key]}
    assert {"turns", "last_turn", "input_text_tokens"} <= changed
    assert "input_image_tokens" not in changed
    # Each changed sensor was written at most once per report; no other was written.
    assert set(written) == changed
    assert all(count <= 2 for count in written.values()), written


def test_spend_follows_the_price_table() -> None:
    """Uncached input, cached input and output of each modality at its own price."""
    prices = PriceTable(*(float(n) for n in range(1, len(PRICE_KINDS) + 1)))
    usage = Usage(
        input_text=3_000_000,
        input_audio=2_000_000,
        input_image=1_000_000,
        cached_text=1_000_000,
        cached_audio=1_000_000,
        cached_image=500_000,
        output_text=1_000_000,
        output_audio=2_000_000,
    )

    # text 2M x 1 + 1M x 2, audio 1M x 3 + 1M x 4, image 0.5M x 5 + 0.5M x 6, out 1M x 7 + 2M x 8
    assert prices.cost(usage) == pytest.approx(2 + 2 + 3 + 4 + 2.5 + 3 + 7 + 16)
    assert default_prices("gpt-realtime-2025-08-28") == default_prices("gpt-realtime")
    assert default_prices("gpt-realtime") is not None
    assert default_prices("my-azure-deployment") is None


async def test_spend_follows_prices_of_ones_own(
    hass: HomeAssistant,
    realtime_fake: FakeProvider,
    mock_config_entry: MockConfigEntry,
    ha_core: None,
) -> None:
    own = {CONF_PRICE_PREFIX + kind: 10.0 * (n + 1) for n, kind in enumerate(PRICE_KINDS)}
    _update_agent(
        hass,
        mock_config_entry,
        **own,
        **{CONF_CUSTOM_PRICES: True, CONF_CURRENCY: "EUR"},
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    turns = TurnEvents(hass)
    realtime_fake.say("Hello there.")

    await _converse(hass, "Hello")
    [event] = await turns.wait_for(1)

    meter = _meter(mock_config_entry)
    expected = PriceTable(*(10.0 * (n + 1) for n in range(len(PRICE_KINDS)))).cost(meter.usage)
    assert float(_state(hass, "spend_total")) == pytest.approx(expected)
    assert event["cost"] == pytest.approx(expected)
    assert event["currency"] == "EUR"
    assert usage_sensor(hass, "spend_total").attributes["unit_of_measurement"] == "EUR"


# One provider: which model has a price does not depend on it (an Azure deployment's name).
@pytest.mark.parametrize("provider", [PROVIDER_OPENAI])
async def test_unknown_model_shows_tokens_but_no_spend(
    hass: HomeAssistant,
    fake_server: FakeOpenAIRealtimeServer,
    mock_config_entry: MockConfigEntry,
    ha_core: None,
) -> None:
    fake_server.models.add("my-azure-deployment")
    _update_agent(
        hass, mock_config_entry, **{CONF_MODEL: "my-azure-deployment", CONF_DAILY_LIMIT: 1.0}
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    turns = TurnEvents(hass)

    await _converse(hass, "Hello")
    [event] = await turns.wait_for(1)

    assert int(_state(hass, "input_text_tokens")) > 0
    assert _state(hass, "spend_total") == "unknown"
    assert _state(hass, "spend_today") == "unknown"
    assert event["cost"] is None
    # A limit cannot apply without a price: the owner is told, turns go on.
    [(_, issue_id)] = ir.async_get(hass).issues
    assert issue_id.startswith("spend_limit_unpriced")
    await _converse(hass, "Hello again")
    await turns.wait_for(2)


async def test_warm_spare_and_idle_sessions_cost_time_not_tokens(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    realtime_fake: FakeProvider,
    mock_config_entry: MockConfigEntry,
    ha_core: None,
) -> None:
    _update_agent(hass, mock_config_entry, **{CONF_KEEP_WARM: True})
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    [agent] = mock_config_entry.runtime_data.agents.values()
    await agent.pool.settle()

    freezer.tick(timedelta(minutes=6))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()

    session_time = usage_sensor(hass, "session_time")
    assert session_time.attributes["unit_of_measurement"] == UnitOfTime.MINUTES
    assert float(session_time.state) >= 6
    for key in TOKEN_SENSORS.values():
        assert _state(hass, key) == "0", key
    assert float(_state(hass, "spend_total")) == 0
    assert _state(hass, "turns") == "0"


async def test_daily_limit_warns_refuses_and_resets_at_local_midnight(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_admin_user: MockUser,
    freezer: FrozenDateTimeFactory,
    realtime_fake: FakeProvider,
    mock_config_entry: MockConfigEntry,
    ha_core: None,
) -> None:
    midnight = dt_util.start_of_local_day() + timedelta(days=1)
    freezer.move_to(midnight - timedelta(minutes=4))
    if isinstance(realtime_fake, GeminiFake):
        # Time stands still but for the jump to midnight: no playback wait to sit out.
        realtime_fake.server.turn_complete_delay_s = 0.0
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    turns = TurnEvents(hass)
    realtime_fake.respond_with(lambda _conn: Reply("Fine, thank you."))
    await _converse(hass, "How are you?")
    await turns.wait_for(1)
    first = _meter(mock_config_entry).spend_today

    # A limit the first turn used 90 % of: the owner is warned.
    _update_agent(hass, mock_config_entry, **{CONF_DAILY_LIMIT: first / 0.9})
    await hass.async_block_till_done()
    issues = ir.async_get(hass)
    [issue_id] = [i for (domain, i) in issues.issues if domain == DOMAIN]
    warning = issues.async_get_issue(DOMAIN, issue_id)
    assert warning is not None
    assert warning.translation_key == "spend_limit_warning"
    assert warning.severity is ir.IssueSeverity.WARNING

    # The next turn passes the limit: it still finishes.
    assert _speech(await _converse(hass, "And now?")) == "Fine, thank you."
    await turns.wait_for(2)
    reached = issues.async_get_issue(DOMAIN, issue_id)
    assert reached is not None
    assert reached.translation_key == "spend_limit_reached"
    connections = len(realtime_fake.connections)
    replies = sum(len(conn.reply_transcripts()) for conn in realtime_fake.connections)

    # New turns are refused, typed and spoken, with the translated reason.
    limit = f"{first / 0.9:.2f} USD"
    refused = await _converse(hass, "One more?")
    assert refused.response.response_type.value == "error"
    assert limit in _speech(refused)
    assert "spending limit" in _speech(refused)
    # The fixture's access token expired in the night this test travelled to.
    refresh_token = await hass.auth.async_create_refresh_token(hass_admin_user, CLIENT_ID)
    ws_client = functools.partial(
        hass_ws_client, access_token=hass.auth.async_create_access_token(refresh_token)
    )
    run: PipelineRun = await run_pipeline(
        ws_client, our_pipeline(hass, mock_config_entry).id, UTTERANCE
    )
    assert limit in str(run.one("intent-end")["intent_output"]["response"]["speech"])
    assert sum(len(conn.reply_transcripts()) for conn in realtime_fake.connections) == replies
    assert len(realtime_fake.connections) == connections
    assert _state(hass, "turns") == "2"

    # At local midnight today's spend starts again; so do turns.
    spent_total = _state(hass, "spend_total")
    freezer.move_to(midnight + timedelta(seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert float(_state(hass, "spend_today")) == 0
    assert _state(hass, "spend_total") == spent_total
    last_reset = usage_sensor(hass, "spend_today").attributes["last_reset"]
    assert dt_util.parse_datetime(last_reset) == midnight
    assert issues.async_get_issue(DOMAIN, issue_id) is None
    assert _speech(await _converse(hass, "Good morning")) == "Fine, thank you."
