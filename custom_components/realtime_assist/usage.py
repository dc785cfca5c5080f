"""What an agent costs: tokens by modality, estimated spend, the daily limit, turn records.

Usage comes only from the providers' own reports: every session the agent's pool
opens (conversations', the warm spare, one-off jobs) hands each report to the
agent's `UsageMeter`, which prices it by the model's price table as it comes.
A connected session that answers nothing reports nothing, so the warm spare and
idle sessions add connected time and no tokens. A model without a price shows
its tokens and no spend: an estimate is never made up.

A turn's record waits for the turn's usage: Gemini reports it after the turn
has ended (with `turnComplete`, once the playback it waits for is over).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta
import re
from typing import TYPE_CHECKING, Any, Final

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.const import Platform
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import (
    async_call_later,
    async_track_time_change,
    async_track_time_interval,
)
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .assist_bridge import current_pipeline_run
from .const import (
    CONF_CURRENCY,
    CONF_CUSTOM_PRICES,
    CONF_DAILY_LIMIT,
    CONF_MODEL,
    CONF_PRICE_PREFIX,
    CONF_PROVIDER,
    DEFAULT_CURRENCY,
    DOMAIN,
    EVENT_TURN,
    LOGGER,
    PROVIDER_PROFILES,
)
from .realtime.events import Usage
from .realtime.turn import FailureReason, Turn, TurnError

if TYPE_CHECKING:
    from .agent import RealtimeAgent

STORAGE_VERSION: Final = 1
# Writes of the totals are batched; unloading writes them at once.
SAVE_DELAY_S: Final = 30
# How often the connected time is brought up to date while nothing else happens.
TICK: Final = timedelta(minutes=5)
# A turn's record waits this long at most for usage the provider owes (Gemini reports
# after the reply's playback); later reports still count in the totals.
LATE_USAGE_WAIT_S: Final = 120.0
# The share of the daily limit at which the owner is warned.
WARN_AT: Final = 0.8
# Turns whose usage diagnostics keep.
RECENT_TURNS: Final = 20
ISSUE_LIMIT: Final = "spend_limit"
ISSUE_LIMIT_UNPRICED: Final = "spend_limit_unpriced"


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices per million tokens, by what a token is billed as (cached input apart)."""

    text_in: float
    text_cached: float
    audio_in: float
    audio_cached: float
    image_in: float
    image_cached: float
    text_out: float
    audio_out: float

    def cost(self, usage: Usage) -> float:
        """What `usage` costs at these prices."""
        return (
            (usage.input_text - usage.cached_text) * self.text_in
            + usage.cached_text * self.text_cached
            + (usage.input_audio - usage.cached_audio) * self.audio_in
            + usage.cached_audio * self.audio_cached
            + (usage.input_image - usage.cached_image) * self.image_in
            + usage.cached_image * self.image_cached
            + usage.output_text * self.text_out
            + usage.output_audio * self.audio_out
        ) / 1_000_000


PRICE_KINDS: Final = tuple(field.name for field in dataclasses.fields(PriceTable))

# The providers' list prices in USD, taken on 2026-12-01.
# OpenAI: the model pages, developers.openai.com/api/docs/models/<model> (gpt-realtime-1.5,
# gpt-realtime-2, gpt-realtime-2.1, gpt-realtime-2.1-mini). gpt-realtime has the rates
# gpt-realtime-1.5 kept; gpt-realtime-mini those of gpt-realtime-2.1-mini (whose page
# compares the two at the same input price).
_GPT_REALTIME = PriceTable(4.0, 0.4, 32.0, 0.4, 5.0, 0.5, 16.0, 64.0)
_GPT_REALTIME_2 = dataclasses.replace(_GPT_REALTIME, text_out=24.0)
_GPT_REALTIME_MINI = PriceTable(0.6, 0.06, 10.0, 0.3, 0.8, 0.08, 2.4, 20.0)
# Gemini: ai.google.dev/gemini-api/docs/pricing, paid tier; images and video bill at the
# audio/video input rate. The Live models have no context caching (their model pages):
# cached input, should any be reported, is priced as input.
_GEMINI_25_NATIVE_AUDIO = PriceTable(0.5, 0.5, 3.0, 3.0, 3.0, 3.0, 2.0, 12.0)
_GEMINI_31_FLASH_LIVE = PriceTable(0.75, 0.75, 3.0, 3.0, 3.0, 3.0, 4.5, 12.0)
DEFAULT_PRICES: Final[Mapping[str, PriceTable]] = {
    "gpt-realtime": _GPT_REALTIME,
    "gpt-realtime-1.5": _GPT_REALTIME,
    "gpt-realtime-2": _GPT_REALTIME_2,
    "gpt-realtime-2.1": _GPT_REALTIME_2,
    "gpt-realtime-mini": _GPT_REALTIME_MINI,
    "gpt-realtime-2.1-mini": _GPT_REALTIME_MINI,
    "gemini-2.5-flash-native-audio-preview-09-2025": _GEMINI_25_NATIVE_AUDIO,
    "gemini-2.5-flash-native-audio-preview-12-2025": _GEMINI_25_NATIVE_AUDIO,
    "gemini-3.1-flash-live-preview": _GEMINI_31_FLASH_LIVE,
}
# A dated snapshot ("gpt-realtime-2025-08-28") is priced as its model.
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def usage_store(hass: HomeAssistant, subentry_id: str) -> Store[dict[str, Any]]:
    """Where an agent's totals outlive restarts."""
    return Store(hass, STORAGE_VERSION, f"{DOMAIN}.usage.{subentry_id}")


def default_prices(model: str) -> PriceTable | None:
    """The provider's list price of `model` (USD), if we know it."""
    return DEFAULT_PRICES.get(model) or DEFAULT_PRICES.get(_SNAPSHOT.sub("", model))


def agent_prices(options: Mapping[str, Any], provider: str) -> tuple[PriceTable | None, str]:
    """The prices an agent's usage is estimated at, and their currency.

    The owner's own prices (all of them, in their currency) when set; otherwise the
    provider's list price of the model, in USD, or None for a model we have none for.
    """
    if options.get(CONF_CUSTOM_PRICES):
        try:
            prices = {kind: float(options[CONF_PRICE_PREFIX + kind]) for kind in PRICE_KINDS}
        except KeyError, TypeError, ValueError:
            return None, str(options.get(CONF_CURRENCY) or DEFAULT_CURRENCY)
        return PriceTable(**prices), str(options.get(CONF_CURRENCY) or DEFAULT_CURRENCY)
    model = str(options.get(CONF_MODEL) or PROVIDER_PROFILES[provider].default_model)
    return default_prices(model), DEFAULT_CURRENCY


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One turn, as automations and dashboards see it (`realtime_assist_turn`)."""

    agent_id: str | None
    conversation_id: str
    device_id: str | None
    satellite_id: str | None
    typed: bool
    # What the user said (or typed) and what the model said (or wrote).
    user_text: str | None
    reply_text: str
    tool_calls: tuple[dict[str, Any], ...]
    # completed, interrupted, or why it failed (a FailureReason).
    outcome: str
    usage: Usage
    cost: float | None
    currency: str
    # From the end of the user's speech (or the typed message) to the model's first audio.
    latency_ms: int | None
    started: datetime
    ended: datetime

    def event_data(self) -> dict[str, Any]:
        """The turn event's data: the record, JSON-safe."""
        data = dataclasses.asdict(self)
        data["tool_calls"] = list(self.tool_calls)
        data["usage"] = _usage_data(self.usage)
        data["started"], data["ended"] = self.started.isoformat(), self.ended.isoformat()
        return data

    def summary(self) -> dict[str, Any]:
        """The record without what was said (for diagnostics)."""
        return {
            "ended": self.ended.isoformat(),
            "typed": self.typed,
            "outcome": self.outcome,
            "tool_calls": len(self.tool_calls),
            "usage": _usage_data(self.usage),
            "cost": self.cost,
            "latency_ms": self.latency_ms,
        }


def _usage_data(usage: Usage) -> dict[str, int]:
    return {**dataclasses.asdict(usage), "total_tokens": usage.total_tokens}


@dataclass(slots=True, eq=False)
class _TurnInFlight:
    """A turn the meter will record once it has ended and its usage is in."""

    turn: Turn
    conversation_id: str
    device_id: str | None
    satellite_id: str | None
    typed_text: str | None
    started: datetime
    ended: datetime | None = None


class UsageMeter:
    """One agent's usage and spend; read by its sensors, the daily limit and diagnostics."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        subentry: ConfigSubentry,
        agent: RealtimeAgent,
    ) -> None:
        self._hass = hass
        self._agent = agent
        self._title = subentry.title
        options = subentry.data
        provider: str = entry.data[CONF_PROVIDER]
        self.model = str(options.get(CONF_MODEL) or PROVIDER_PROFILES[provider].default_model)
        self.prices, self.currency = agent_prices(options, provider)
        limit = options.get(CONF_DAILY_LIMIT)
        self.daily_limit: float | None = float(limit) if limit else None
        self._store = usage_store(hass, subentry.subentry_id)
        self._issue_id = f"{ISSUE_LIMIT}_{subentry.subentry_id}"
        self._unpriced_issue_id = f"{ISSUE_LIMIT_UNPRICED}_{subentry.subentry_id}"
        self.usage = Usage()
        self.turns = 0
        self.spend_total = 0.0
        self.spend_today = 0.0
        self.day = dt_util.now().date()
        # Connected time of the sessions of earlier runs (this run's: the pool's).
        self._connected_before_s = 0.0
        self._limit_issue: str | None = None
        self.last_turn: TurnRecord | None = None
        self.recent: deque[TurnRecord] = deque(maxlen=RECENT_TURNS)
        # Turns that ended and wait for usage the provider owes, with their deadline.
        self._waiting: dict[_TurnInFlight, CALLBACK_TYPE] = {}
        self._listeners: list[Callable[[], None]] = []
        self._unsubscribe: list[CALLBACK_TYPE] = []

    # -- lifecycle ---------------------------------------------------------------

    async def async_load(self) -> None:
        """Take up the totals where the last run left them, and start the clocks."""
        data = await self._store.async_load() or {}
        self.usage = Usage(**data.get("usage", {}))
        self.turns = int(data.get("turns", 0))
        self._connected_before_s = float(data.get("connected_s", 0.0))
        if data.get("currency", self.currency) == self.currency:
            self.spend_total = float(data.get("spend_total", 0.0))
            self.spend_today = float(data.get("spend_today", 0.0))
            self.day = date.fromisoformat(data.get("day", self.day.isoformat()))
        else:
            LOGGER.info("%s: spend is now counted in %s, from zero", self._title, self.currency)
        self._roll_day()
        self._warn_of_limit()
        if self.daily_limit is not None and self.prices is None:
            self._raise(self._unpriced_issue_id, ISSUE_LIMIT_UNPRICED, ir.IssueSeverity.WARNING)
        else:
            ir.async_delete_issue(self._hass, DOMAIN, self._unpriced_issue_id)
        self._unsubscribe += [
            async_track_time_change(self._hass, self._midnight, hour=0, minute=0, second=0),
            async_track_time_interval(self._hass, self._tick, TICK),
        ]

    async def async_close(self) -> None:
        """Record the turns still waiting, write the totals, stop the clocks."""
        for flight in list(self._waiting):
            self._finish(flight)
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for issue_id in (self._issue_id, self._unpriced_issue_id):
            ir.async_delete_issue(self._hass, DOMAIN, issue_id)
        await self._store.async_save(self._data())

    @callback
    def async_add_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `listener` whenever a figure changed; returns the unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- figures -------------------------------------------------------------------

    @property
    def connected_s(self) -> float:
        """How long the agent's sessions had connections open, in all (seconds)."""
        return self._connected_before_s + self._agent.pool.connected_s()

    @property
    def spend_today_since(self) -> datetime:
        """When today's spend started counting: the last local midnight."""
        return dt_util.start_of_local_day(self.day)

    def diagnostics(self) -> dict[str, Any]:
        """Totals, prices, the limit and the last turns' usage; nothing that was said."""
        return {
            "model": self.model,
            "prices": dataclasses.asdict(self.prices) if self.prices else None,
            "currency": self.currency,
            "daily_limit": self.daily_limit,
            "usage": _usage_data(self.usage),
            "turns": self.turns,
            "connected_s": round(self.connected_s, 1),
            "spend_today": self.spend_today if self.prices else None,
            "spend_total": self.spend_total if self.prices else None,
            "last_turns": [record.summary() for record in self.recent],
        }

    # -- what the sessions report ----------------------------------------------

    @callback
    def record(self, usage: Usage) -> None:
        """A usage report of one of the agent's sessions (the pool's `on_usage`)."""
        self._roll_day()
        self.usage += usage
        if self.prices is not None:
            cost = self.prices.cost(usage)
            self.spend_total += cost
            self.spend_today += cost
            self._warn_of_limit()
        for flight in [flight for flight in self._waiting if not flight.turn.usage_pending]:
            self._finish(flight)
        self._changed()

    # -- the daily limit ---------------------------------------------------------

    def refusal(self) -> TurnError | None:
        """Why a new turn may not begin (today's spend reached the limit), if it may not."""
        self._roll_day()
        if self.daily_limit is None or self.prices is None:
            return None
        if self.spend_today < self.daily_limit:
            return None
        limit = self._money(self.daily_limit)
        return TurnError(
            FailureReason.SPEND_LIMIT,
            f"the daily spend limit of {limit} is reached",
            {"limit": limit},
        )

    def _warn_of_limit(self) -> None:
        """A Repairs issue at 80 % of the daily limit, raised to an error at 100 %."""
        if self.daily_limit is None or self.prices is None:
            return
        share = self.spend_today / self.daily_limit
        level = "spend_limit_reached" if share >= 1 else "spend_limit_warning"
        if share < WARN_AT or level == self._limit_issue:
            return
        self._limit_issue = level
        severity = ir.IssueSeverity.ERROR if share >= 1 else ir.IssueSeverity.WARNING
        self._raise(self._issue_id, level, severity)

    def _raise(self, issue_id: str, translation_key: str, severity: ir.IssueSeverity) -> None:
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            is_persistent=False,
            severity=severity,
            translation_key=translation_key,
            translation_placeholders={
                "agent": self._title,
                "model": self.model,
                "spent": self._money(self.spend_today),
                "limit": self._money(self.daily_limit or 0.0),
            },
        )

    def _money(self, amount: float) -> str:
        return f"{amount:.2f} {self.currency}"

    def _roll_day(self) -> None:
        """At a new local day, today's spend starts again from zero (and its warning goes)."""
        today = dt_util.now().date()
        if today == self.day:
            return
        self.day = today
        self.spend_today = 0.0
        if self._limit_issue is not None:
            self._limit_issue = None
            ir.async_delete_issue(self._hass, DOMAIN, self._issue_id)
        self._changed()

    @callback
    def _midnight(self, _now: datetime) -> None:
        self._roll_day()

    @callback
    def _tick(self, _now: datetime) -> None:
        """Connected time grows by itself: show it."""
        self._changed()

    # -- turn records --------------------------------------------------------------

    def track(
        self,
        turn: Turn,
        conversation_id: str,
        *,
        device_id: str | None,
        typed_text: str | None,
    ) -> None:
        """Record `turn` once it has ended and the provider has reported its usage."""
        run = current_pipeline_run(self._hass)
        flight = _TurnInFlight(
            turn,
            conversation_id,
            device_id,
            run.satellite_id if run is not None else None,
            typed_text,
            dt_util.utcnow(),
        )
        turn.on_end(lambda _turn: self._turn_ended(flight))

    def _turn_ended(self, flight: _TurnInFlight) -> None:
        flight.ended = dt_util.utcnow()
        if not flight.turn.usage_pending:
            self._finish(flight)
            return

        @callback
        def give_up(_now: datetime) -> None:
            LOGGER.debug("No usage report for a turn of %s: recording it without", self._title)
            self._finish(flight)

        self._waiting[flight] = async_call_later(self._hass, LATE_USAGE_WAIT_S, give_up)

    def _finish(self, flight: _TurnInFlight) -> None:
        if (cancel := self._waiting.pop(flight, None)) is not None:
            cancel()
        record = self._record_of(flight)
        self.turns += 1
        self.last_turn = record
        self.recent.append(record)
        self._hass.bus.async_fire(EVENT_TURN, record.event_data())
        self._changed()

    def _record_of(self, flight: _TurnInFlight) -> TurnRecord:
        turn = flight.turn
        if turn.done_ok:
            outcome = "completed"
        elif turn.failure is not None:
            outcome = str(turn.failure.reason)
        else:
            outcome = "interrupted"
        latency_ms = None
        if turn.speech_ended_at is not None and turn.first_audio_at is not None:
            latency_ms = max(0, round((turn.first_audio_at - turn.speech_ended_at) * 1000))
        usage = turn.usage
        return TurnRecord(
            agent_id=self._agent.entity_ids.get(Platform.CONVERSATION),
            conversation_id=flight.conversation_id,
            device_id=flight.device_id,
            satellite_id=flight.satellite_id,
            typed=flight.typed_text is not None,
            user_text=flight.typed_text
            if flight.typed_text is not None
            else turn.transcript.result(),
            reply_text=turn.words_so_far(),
            tool_calls=tuple(
                {"name": call.name, "arguments": call.arguments} for call in turn.tool_calls
            ),
            outcome=outcome,
            usage=usage,
            cost=self.prices.cost(usage) if self.prices is not None else None,
            currency=self.currency,
            latency_ms=latency_ms,
            started=flight.started,
            ended=flight.ended or dt_util.utcnow(),
        )

    # -- keeping the totals ------------------------------------------------------

    def _changed(self) -> None:
        self._store.async_delay_save(self._data, SAVE_DELAY_S)
        for listener in list(self._listeners):
            listener()

    def _data(self) -> dict[str, Any]:
        return {
            "usage": dataclasses.asdict(self.usage),
            "turns": self.turns,
            "connected_s": self.connected_s,
            "spend_total": self.spend_total,
            "spend_today": self.spend_today,
            "day": self.day.isoformat(),
            "currency": self.currency,
        }
