"""One realtime agent (a config subentry) at runtime: its sessions, its turns, its prompt.

The agent's conversation, speech-to-text and text-to-speech entities meet
here. Sessions are keyed by conversation; a turn (`realtime.turn.Turn`) is registered
under its conversation so the stage that comes next in the pipeline finds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
import contextlib
import dataclasses
from typing import Any

from homeassistant.components import conversation
from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.const import CONF_LLM_HASS_API, CONF_PROMPT, Platform
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import chat_session, llm

from .agent_config import session_config_from_options
from .assist_bridge import PipelineRunInfo, plays_from_tts_end
from .camera import CameraTool, async_run_paired_camera, camera_in_area_of_device, exposed_cameras
from .const import (
    CONF_ALLOWED_SENSITIVE_ACTIONS,
    CONF_CAMERA_FPS,
    CONF_CAMERA_LONG_SIDE,
    CONF_IDLE_TIMEOUT,
    CONF_KEEP_WARM,
    CONF_PAIR_CAMERAS,
    CONF_PROVIDER,
    CONF_TOOL_TIMEOUT,
    DEFAULT_CAMERA_FPS,
    DEFAULT_CAMERA_LONG_SIDE,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_KEEP_WARM,
    DEFAULT_PAIR_CAMERAS,
    DEFAULT_TOOL_TIMEOUT,
    DOMAIN,
    PROVIDER_PROFILES,
    UNTRUSTED_CONTENT_PROMPT,
    ProviderProfile,
)
from .follow_up import ExpectAnswerTool, without_expect_answer
from .problems import ProblemReporter
from .realtime import turn as lifecycle
from .realtime.config import OutputModality, SessionConfig, TurnDetection, TurnDetectionMode
from .realtime.errors import ErrorKind, RealtimeError
from .realtime.pool import Lease, SessionPool
from .realtime.providers.base import Provider
from .realtime.session import RealtimeSession
from .realtime.turn import FailureReason, Turn, TurnDeadlines, TurnError
from .service_tool import async_agent_service_tool, exposed_states
from .tools import ToolSpecCache, guard_chat_log_tools
from .usage import UsageMeter
from .vocabulary import async_home_vocabulary

CAMERA_QUESTION_INSTRUCTIONS = (
    "You are shown an image from a home's camera. Answer the question about it briefly, "
    "in the language of the question, saying only what the image shows."
)
# The model waits for tool results this much longer than a tool may run.
TOOL_RESULTS_MARGIN_S = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class TurnPrompt:
    """Home Assistant's prompt and tools as built for one turn, and the session config of them."""

    llm_context: llm.LLMContext
    # The extra system prompt it was built with.
    extra_system_prompt: str | None
    # The chat log's tools (ours among them); None without an LLM API.
    api: llm.APIInstance | None
    config: SessionConfig

    def fits(self, llm_context: llm.LLMContext, extra_system_prompt: str | None) -> bool:
        """Whether Home Assistant would build the same from these (same user, device, language).

        Not compared: Home Assistant 2026.11's `agent_id`, which only keys its own reuse.
        """
        same_inputs = _prompt_inputs(llm_context) == _prompt_inputs(self.llm_context)
        return same_inputs and extra_system_prompt == self.extra_system_prompt


def _prompt_inputs(llm_context: llm.LLMContext) -> tuple[object, ...]:
    return (
        llm_context.platform,
        llm_context.context,
        llm_context.language,
        llm_context.assistant,
        llm_context.device_id,
    )


@dataclasses.dataclass(slots=True, kw_only=True)
class BuiltAPI(llm.API):
    """Hands a chat log an API instance already built, as if Home Assistant had just built it."""

    instance: llm.APIInstance

    @classmethod
    def of(cls, instance: llm.APIInstance | None) -> BuiltAPI | None:
        if instance is None:
            return None
        api = instance.api
        return cls(hass=api.hass, id=api.id, name=api.name, instance=instance)

    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        return self.instance


class RealtimeAgent:
    """Sessions, live turns and configuration of one realtime agent."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        provider: Provider,
        subentry: ConfigSubentry,
    ) -> None:
        self.hass = hass
        self.options: Mapping[str, Any] = subentry.data
        self._provider_name: str = entry.data[CONF_PROVIDER]
        # What the agent's sessions cost (usage.py): every usage report goes there.
        self.usage = UsageMeter(hass, entry, subentry, self)
        # How long a conversation stays open after its last words (seconds).
        self.idle_timeout_s = float(self.options.get(CONF_IDLE_TIMEOUT, DEFAULT_IDLE_TIMEOUT))
        self.pool = SessionPool(
            provider,
            idle_timeout_s=self.idle_timeout_s,
            on_close=self._forget_session,
            on_usage=self.usage.record,
        )
        # The turn each conversation is in (or last was), for the stage that comes next.
        self._turns: dict[str, Turn] = {}
        # The last turn of each satellite, to cut it off when a new one starts.
        self._device_turns: dict[str, Turn] = {}
        # Why a conversation's last turn failed, for the stages that tell the user.
        self._failures: dict[str, TurnError] = {}
        # ...and those the conversation stage has told already.
        self._told: set[str] = set()
        # The prompt speech-to-text built for a conversation's turn, for its conversation stage.
        self._prompts: dict[str, tuple[Turn, TurnPrompt]] = {}
        # Tool specs of the last build, reused while the tools are the same.
        self._tool_specs = ToolSpecCache()
        # Replies still being written into their chat log after the conversation stage returned.
        self._replying: dict[Turn, asyncio.Task[None]] = {}
        self._problems = ProblemReporter(hass, entry)
        # Entity ids of the agent's entities, set as they are added.
        self.entity_ids: dict[str, str] = {}

    async def async_keep_warm(self) -> None:
        """Connect the spare session with the prompt and tools a turn will have.

        Turns configure their session with Home Assistant's prompt and tools; a
        spare opened with less would need them sent first (OpenAI) or a new
        connection (Gemini takes a configuration only when connecting).
        """
        if not self.options.get(CONF_KEEP_WARM, DEFAULT_KEEP_WARM):
            return
        llm_context = llm.LLMContext(
            platform=DOMAIN,
            context=None,
            language=self.hass.config.language,
            assistant=conversation.DOMAIN,
            device_id=None,
        )
        try:
            config = await self.async_session_config(llm_context)
        except conversation.ConverseError:
            config = self.base_config
        self.pool.keep_warm(without_expect_answer(config))

    @property
    def profile(self) -> ProviderProfile:
        """What the agent's provider can do (video input, live reconfiguration)."""
        return PROVIDER_PROFILES[self._provider_name]

    @property
    def base_config(self) -> SessionConfig:
        """The agent's settings alone, without Home Assistant's prompt and tools."""
        return session_config_from_options(self.options, self._provider_name)

    def adapt_to_run(self, config: SessionConfig, run: PipelineRunInfo | None) -> SessionConfig:
        """Fit a turn's configuration to who else takes part in it.

        Another agent answers (our speech-to-text only): the model transcribes
        and does not respond. Nobody plays our voice (another text-to-speech,
        or no pipeline at all): the model answers in text, no audio is made.
        """
        if not plays_from_tts_end(self.hass, run):
            config = without_expect_answer(config)
        if run is not None and not run.known:
            # Many runs at once and this one's record is gone: assume the common
            # case, our own pipeline (answer, and in our voice).
            return config
        ours_answers = run is None or run.conversation_engine == self.entity_ids.get(
            Platform.CONVERSATION
        )
        ours_speaks = self.speaks_in(run)
        if not self.profile.live_reconfigure:
            # Each change would cost a new connection (Gemini): turns keep one
            # configuration, and the model answers even when another agent does.
            return config
        return dataclasses.replace(
            config,
            turn_detection=dataclasses.replace(config.turn_detection, create_response=ours_answers),
            output_modality=OutputModality.AUDIO if ours_speaks else OutputModality.TEXT,
        )

    def speaks_in(self, run: PipelineRunInfo | None) -> bool:
        """Whether our text-to-speech plays the run's reply (assumed when the run is unknown)."""
        return run is not None and (
            not run.known or (run.speaks and run.tts_engine == self.entity_ids.get(Platform.TTS))
        )

    async def async_session_config(
        self,
        llm_context: llm.LLMContext,
        extra_system_prompt: str | None = None,
        chat_log: conversation.ChatLog | None = None,
        extra_tools: Sequence[llm.Tool] = (),
    ) -> SessionConfig:
        """The session configuration of `async_turn_prompt`."""
        prompt = await self.async_turn_prompt(
            llm_context, extra_system_prompt, chat_log, extra_tools
        )
        return prompt.config

    async def async_turn_prompt(
        self,
        llm_context: llm.LLMContext,
        extra_system_prompt: str | None = None,
        chat_log: conversation.ChatLog | None = None,
        extra_tools: Sequence[llm.Tool] = (),
    ) -> TurnPrompt:
        """Instructions and tools exactly as Home Assistant builds them for this agent.

        With no chat log (speech-to-text runs before the conversation stage,
        yet the model answers the moment the user stops speaking) a scratch
        chat log builds the same prompt; the conversation stage of that turn
        then gets it back, when it asks with the same context, rather than
        building it again. `extra_tools` are tools of one conversation (a
        browser's own camera).
        """
        log = chat_log or conversation.ChatLog(self.hass, f"{DOMAIN}_prompt")
        # What Home Assistant would take: a new extra prompt, else the conversation's.
        extra_system_prompt = extra_system_prompt or log.extra_system_prompt
        built = self._built_prompt(log.conversation_id) if chat_log is not None else None
        if built is not None and built.fits(llm_context, extra_system_prompt):
            await log.async_provide_llm_data(
                llm_context,
                BuiltAPI.of(built.api),
                self.options.get(CONF_PROMPT),
                extra_system_prompt,
            )
            self._guard_tools(log, ())
            return built
        await log.async_provide_llm_data(
            llm_context,
            self.options.get(CONF_LLM_HASS_API),
            self.options.get(CONF_PROMPT),
            extra_system_prompt,
        )
        # Which entities are exposed is looked up once for the turn's tools and words.
        exposed = exposed_states(self.hass)
        if log.llm_api is not None:
            self._guard_tools(
                log, [*await self._async_own_tools(llm_context, exposed), *extra_tools]
            )
        system = log.content[0]
        config = dataclasses.replace(
            self.base_config,
            instructions=(system.content if isinstance(system, conversation.SystemContent) else "")
            + f"\n{UNTRUSTED_CONTENT_PROMPT}",
            tools=self._tool_specs.tool_specs(log.llm_api),
            language=llm_context.language,
            transcription_vocabulary=async_home_vocabulary(self.hass, exposed),
        )
        return TurnPrompt(llm_context, extra_system_prompt, log.llm_api, config)

    def _guard_tools(self, chat_log: conversation.ChatLog, own_tools: Sequence[llm.Tool]) -> None:
        guard_chat_log_tools(
            chat_log,
            own_tools,
            float(self.options.get(CONF_TOOL_TIMEOUT, DEFAULT_TOOL_TIMEOUT)),
            self.entity_ids.get(Platform.CONVERSATION),
            self.options.get(CONF_ALLOWED_SENSITIVE_ACTIONS) or (),
        )

    def _built_prompt(self, conversation_id: str) -> TurnPrompt | None:
        """The prompt speech-to-text built for the conversation's turn, if that turn goes on.

        Only for the turn it began, and only once: the conversation stage
        continues that turn (it began spoken, the model answers it); any later
        turn builds its own, so what changed in between (exposure) shows.
        """
        if (kept := self._prompts.pop(conversation_id, None)) is None:
            return None
        turn, prompt = kept
        return prompt if turn is self._turns.get(conversation_id) and not turn.answered else None

    async def _async_own_tools(
        self, llm_context: llm.LLMContext, exposed: Sequence[State]
    ) -> list[llm.Tool]:
        """Tools of this agent beside the selected LLM APIs (they act on our own session)."""
        tools: list[llm.Tool] = []
        if service_tool := await async_agent_service_tool(
            self.hass, self.options, llm_context.language, exposed
        ):
            tools.append(service_tool)
        if cameras := exposed_cameras(self.hass):
            tools.append(CameraTool(self.hass, self.pool, cameras, self.camera_long_side))
        tools.append(ExpectAnswerTool(self.turn))
        return tools

    @property
    def camera_long_side(self) -> int:
        return int(self.options.get(CONF_CAMERA_LONG_SIDE, DEFAULT_CAMERA_LONG_SIDE))

    @property
    def camera_frame_interval_s(self) -> float:
        """Between two video frames (Gemini), as the agent's frame rate says."""
        return 1.0 / float(self.options.get(CONF_CAMERA_FPS, DEFAULT_CAMERA_FPS))

    def watch_through_camera(self, turn: Turn, device_id: str | None) -> None:
        """If the agent pairs satellites with cameras, the model sees through this one's."""
        if not self.options.get(CONF_PAIR_CAMERAS, DEFAULT_PAIR_CAMERAS):
            return
        if (entity_id := camera_in_area_of_device(self.hass, device_id)) is None:
            return
        feed = self.hass.async_create_background_task(
            async_run_paired_camera(
                self.hass,
                turn,
                entity_id,
                video=self.profile.video_input,
                frame_interval_s=self.camera_frame_interval_s,
                long_side=self.camera_long_side,
            ),
            "realtime_assist_paired_camera",
        )
        turn.attach(feed)

    async def async_ask_about_image(self, jpeg: bytes, question: str) -> str:
        """One question about one image, in a session of its own; the model's answer."""
        if (refused := self.usage.refusal()) is not None:
            raise refused
        config = dataclasses.replace(
            self.base_config,
            instructions=f"{CAMERA_QUESTION_INSTRUCTIONS} {UNTRUSTED_CONTENT_PROMPT}",
            turn_detection=TurnDetection(mode=TurnDetectionMode.OFF),
            input_transcription_model=None,
        )
        if self.profile.live_reconfigure:
            config = dataclasses.replace(config, output_modality=OutputModality.TEXT)
        async with self.pool.one_off(config) as session:
            turn = Turn(session, deadlines=self.deadlines, typed=True)
            turn.discard_audio()
            await session.send_image(jpeg, "image/jpeg")
            await turn.send_text(question)
            return await turn.reply_text()

    # -- turns -------------------------------------------------------------------

    @property
    def deadlines(self) -> TurnDeadlines:
        """Tool results may take as long as the agent lets a tool run, and then some."""
        tool_timeout = float(self.options.get(CONF_TOOL_TIMEOUT, DEFAULT_TOOL_TIMEOUT))
        return dataclasses.replace(
            lifecycle.DEFAULT_DEADLINES, tool_results_s=tool_timeout + TOOL_RESULTS_MARGIN_S
        )

    async def async_begin_turn(
        self,
        conversation_id: str,
        config: SessionConfig,
        *,
        device_id: str | None = None,
        typed_text: str | None = None,
        speaking: bool = False,
        deadlines: TurnDeadlines | None = None,
        prompt: TurnPrompt | None = None,
        run_id: str | None = None,
    ) -> Turn:
        """Start the conversation's next turn on its session (spoken unless `typed_text`).

        `prompt`: what `config` was made of, kept for the turn's conversation stage.
        `run_id`: the pipeline run that begins a spoken turn; only its conversation
        stage answers it (see `spoken_turn`).

        A full-duplex listener (browser.py) passes `speaking` when the provider already
        hears the user, and `deadlines` of its own (it waits for speech as long as the
        conversation may stay idle).

        The turn before it in the conversation ends first (its reply, if the
        satellite still plays it, is cut to what was heard); the new turn holds
        the conversation's session until it ends, so the session is not closed
        for idleness while the reply is still being read. Past the daily spend
        limit no turn begins (TurnError).
        """
        self._failures.pop(conversation_id, None)
        self._told.discard(conversation_id)
        playing = self._device_turns.get(device_id) if device_id is not None else None
        if playing is not None and (playing.still_playing() or not playing.ended.is_set()):
            # Half-duplex barge-in: the satellite started a new turn over the reply.
            await playing.interrupt()
        if (previous := self._turns.pop(conversation_id, None)) is not None:
            await previous.cancel()
            await self._replies_done(previous)
        # Refused only now: the previous turn is gone, so its reply cannot stand in
        # for the refusal (text-to-speech plays a conversation's turn before its failure).
        if (refused := self.usage.refusal()) is not None:
            self.note_failure(conversation_id, refused)
            raise refused
        new_conversation = self.pool.get(conversation_id) is None
        try:
            async with asyncio.timeout(self.deadlines.session_s):
                lease = await self.pool.acquire(conversation_id, config)
        except (RealtimeError, TimeoutError) as err:
            kind = err.kind if isinstance(err, RealtimeError) else ErrorKind.CONNECTION
            failure = TurnError(FailureReason.of(kind), str(err) or "no session in time")
            self._problems.turn_failed(failure)
            self.note_failure(conversation_id, failure)
            raise failure from err
        if new_conversation and (current := chat_session.current_session.get()):
            # Home Assistant forgets the conversation after 5 idle minutes; so do we.
            current.async_on_cleanup(self._forget_conversation(conversation_id))
        turn = Turn(
            lease.session,
            deadlines=deadlines or self.deadlines,
            typed=typed_text is not None,
            speaking=speaking,
        )
        turn.began_in = run_id
        self._turns[conversation_id] = turn
        if prompt is not None:
            self._prompts[conversation_id] = (turn, prompt)
        else:
            self._prompts.pop(conversation_id, None)
        if device_id is not None:
            self._device_turns[device_id] = turn
        turn.on_end(lambda ended: self._turn_ended(ended, lease))
        self.usage.track(turn, conversation_id, device_id=device_id, typed_text=typed_text)
        if typed_text is not None:
            await turn.send_text(typed_text)
        else:
            self.watch_through_camera(turn, device_id)
        return turn

    def _turn_ended(self, turn: Turn, lease: Lease) -> None:
        lease.release()
        if turn.failure is not None:
            self._problems.turn_failed(turn.failure)
        elif turn.done_ok:
            self._problems.turn_succeeded()

    def note_failure(self, conversation_id: str, failure: TurnError) -> None:
        """The conversation's turn failed before the conversation stage could tell the user."""
        self._failures[conversation_id] = failure

    def untold_failure(self, conversation_id: str) -> TurnError | None:
        """A failure of this run the conversation stage has yet to tell (then it is told)."""
        if conversation_id in self._told:
            return None
        self._told.add(conversation_id)
        return self._failures.get(conversation_id)

    def failure(self, conversation_id: str | None) -> TurnError | None:
        """Why the conversation's latest turn failed before it could answer, if it did."""
        return self._failures.get(conversation_id) if conversation_id else None

    def turn(self, conversation_id: str | None) -> Turn | None:
        """The conversation's current (or last) turn."""
        return self._turns.get(conversation_id) if conversation_id else None

    def spoken_turn(self, conversation_id: str, run: PipelineRunInfo | None) -> Turn | None:
        """The turn speech-to-text began for this run, the model already answering it.

        None for any other message of the conversation: one typed after a run that
        Home Assistant answered itself (a sentence trigger, a local intent) must not
        be taken for that run's turn. A run whose record is gone is taken to be it.
        """
        turn = self._turns.get(conversation_id)
        if turn is None or turn.answered or turn.session.closed:
            return None
        if turn.began_in is None or (run is not None and not run.known):
            return turn
        return turn if run is not None and run.run_id == turn.began_in else None

    def keep_replying(self, turn: Turn, work: asyncio.Task[None]) -> None:
        """A reply that goes on after the conversation stage returned (see conversation.py)."""
        self._replying[turn] = work
        work.add_done_callback(lambda _: self._replying.pop(turn, None))

    async def _replies_done(self, turn: Turn) -> None:
        """Wait for a reply still being written into its chat log to finish."""
        if (work := self._replying.get(turn)) is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(work)

    def _forget_session(self, session: RealtimeSession) -> None:
        """A conversation's session closed: turns that were still going end with it.

        A turn that had ended stays while its reply waits to be read (the session
        may close for idleness before a satellite fetched a short reply).
        """
        for turns in (self._turns, self._device_turns):
            for key, turn in list(turns.items()):
                if turn.session is not session:
                    continue
                if not turn.ended.is_set():
                    self.hass.async_create_background_task(
                        turn.cancel("the session closed"), "realtime_assist_turn_end"
                    )
                elif turn.unread_audio:
                    continue
                del turns[key]

    def _forget_conversation(self, conversation_id: str) -> Callable[[], None]:
        """A cleanup hook for when Home Assistant forgets the conversation."""

        def forget() -> None:
            self._turns.pop(conversation_id, None)
            self._prompts.pop(conversation_id, None)
            self._failures.pop(conversation_id, None)
            self._told.discard(conversation_id)
            self.pool.discard_later(conversation_id)()

        return forget

    def playing_turn(self, device_id: str | None) -> Turn | None:
        """The satellite's turn whose reply is still playing, if any."""
        turn = self._device_turns.get(device_id) if device_id else None
        return turn if turn is not None and turn.still_playing() else None

    async def async_close(self) -> None:
        for turn in {*self._turns.values(), *self._device_turns.values()}:
            await turn.cancel("the agent unloads")
        for work in list(self._replying.values()):
            work.cancel()
        self._turns.clear()
        self._prompts.clear()
        self._device_turns.clear()
        await self.pool.close_all()
        await self.usage.async_close()
