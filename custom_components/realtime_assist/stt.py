"""Speech-to-text that is really the start of the model's turn.

The satellite's audio streams into the conversation's live session as it
arrives; the provider's voice activity detection decides when the user is
done (no Home Assistant VAD tail), and the model starts answering right away.
The provider's transcript of the user is the STT result; the agent and the
text-to-speech stage then pick up the answer already under way.
"""

from __future__ import annotations

from collections.abc import AsyncIterable

from homeassistant.components import conversation, stt
from homeassistant.components.stt.models import SpeechAudioProcessing
from homeassistant.const import Platform
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import llm
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import ulid

from . import RealtimeAssistConfigEntry
from .agent import TurnPrompt
from .assist_bridge import current_conversation_id, current_pipeline_run
from .const import DOMAIN, LOGGER
from .entity import RealtimeSpeechEntity, async_add_agent_entities
from .languages import SUPPORTED_LANGUAGES
from .realtime.config import TurnDetectionMode
from .realtime.turn import UNHEARD_WORDS, FailureReason, TurnError

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: RealtimeAssistConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One speech-to-text entity per realtime agent."""
    async_add_agent_entities(entry, async_add_entities, RealtimeSpeechToTextEntity)


class SatelliteAudioInput:
    """The audio every satellite streams to speech-to-text: 16 kHz 16-bit mono PCM.

    A speech-to-text entity that says so (ours, and the benchmark's and tests'
    stand-ins for other engines) gets Home Assistant's pipeline audio as is.
    """

    @property
    def supported_formats(self) -> list[stt.AudioFormats]:
        return [stt.AudioFormats.WAV]

    @property
    def supported_codecs(self) -> list[stt.AudioCodecs]:
        return [stt.AudioCodecs.PCM]

    @property
    def supported_bit_rates(self) -> list[stt.AudioBitRates]:
        return [stt.AudioBitRates.BITRATE_16]

    @property
    def supported_sample_rates(self) -> list[stt.AudioSampleRates]:
        return [stt.AudioSampleRates.SAMPLERATE_16000]

    @property
    def supported_channels(self) -> list[stt.AudioChannels]:
        return [stt.AudioChannels.CHANNEL_MONO]


class RealtimeSpeechToTextEntity(RealtimeSpeechEntity, SatelliteAudioInput, stt.SpeechToTextEntity):
    """Streams the user's speech into the agent's live session."""

    _agent_platform = Platform.STT

    @property
    def supported_languages(self) -> list[str]:
        return SUPPORTED_LANGUAGES

    @property
    def audio_processing(self) -> SpeechAudioProcessing:
        """With the provider's turn detection on, Home Assistant's VAD stays out of the way."""
        return SpeechAudioProcessing(
            requires_external_vad=self._turn_detection_off,
            prefers_auto_gain_enabled=True,
            prefers_noise_reduction_enabled=True,
        )

    @property
    def _turn_detection_off(self) -> bool:
        return self.agent.base_config.turn_detection.mode is TurnDetectionMode.OFF

    async def async_process_audio_stream(
        self, metadata: stt.SpeechMetadata, stream: AsyncIterable[bytes]
    ) -> stt.SpeechResult:
        agent = self.agent
        run = current_pipeline_run(self.hass)
        conversation_id = current_conversation_id() or ulid.ulid_now()
        device_id = run.device_id if run else None
        prompt = await self._async_turn_config(metadata, run.context if run else None, device_id)
        config = agent.adapt_to_run(prompt.config if prompt else agent.base_config, run)
        try:
            turn = await agent.async_begin_turn(
                conversation_id,
                config,
                device_id=device_id,
                prompt=prompt,
                run_id=run.run_id if run else None,
            )
            text = await turn.listen(stream, commit_at_end=self._turn_detection_off)
        except TurnError as err:
            if err.reason is FailureReason.NO_SPEECH:
                LOGGER.info("No speech recognised: %s", err)
                return stt.SpeechResult(None, stt.SpeechResultState.ERROR)
            # The pipeline goes on so the user hears why: speech-to-text that fails ends
            # the run with an error a satellite shows at best as a light; the
            # conversation stage instead answers with what went wrong, which is said.
            agent.note_failure(conversation_id, err)
            return stt.SpeechResult(UNHEARD_WORDS, stt.SpeechResultState.SUCCESS)
        if (
            run is not None
            and run.known
            and run.conversation_engine != agent.entity_ids.get(Platform.CONVERSATION)
        ):
            # Another agent answers: this turn was only for the transcript (a Gemini model,
            # configured once per connection, answers it too; nobody plays that).
            turn.discard_audio()
            await turn.cancel("another agent answers")
        return stt.SpeechResult(text, stt.SpeechResultState.SUCCESS)

    async def _async_turn_config(
        self, metadata: stt.SpeechMetadata, context: Context | None, device_id: str | None
    ) -> TurnPrompt | None:
        """The prompt and tools the model answers with the moment the user stops.

        Built here once for the turn: the conversation stage gets it back.
        """
        llm_context = llm.LLMContext(
            platform=DOMAIN,
            context=context,
            language=metadata.language,
            assistant=conversation.DOMAIN,
            device_id=device_id,
        )
        try:
            return await self.agent.async_turn_prompt(llm_context)
        except conversation.ConverseError as err:
            LOGGER.warning("Cannot prepare the agent's tools: %s", err)
            return None
