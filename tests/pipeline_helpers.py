"""Drive real Assist pipeline runs the way a satellite does: over `assist_pipeline/run`.

Binary frames `[handler id][PCM16 16 kHz]` go in, pipeline events come out,
and the reply is fetched from the TTS URL as a satellite's player would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
import struct
from typing import Any

from homeassistant.components import assist_pipeline, stt
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

CHUNK_BYTES = 320  # 10 ms of 16 kHz 16-bit mono, as satellites send it


def satellite_speech(language: str) -> stt.SpeechMetadata:
    """What a satellite's audio is to speech-to-text: 16 kHz 16-bit mono PCM."""
    return stt.SpeechMetadata(
        language=language,
        format=stt.AudioFormats.WAV,
        codec=stt.AudioCodecs.PCM,
        bit_rate=stt.AudioBitRates.BITRATE_16,
        sample_rate=stt.AudioSampleRates.SAMPLERATE_16000,
        channel=stt.AudioChannels.CHANNEL_MONO,
    )


@dataclass
class PipelineRun:
    """What one run produced."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [event["data"] for event in self.events if event["type"] == event_type]

    def one(self, event_type: str) -> dict[str, Any]:
        [data] = self.of_type(event_type)
        return data

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]


def agent_entity_ids(entry: MockConfigEntry) -> dict[Platform, str]:
    """The default agent's conversation, STT and TTS entity ids."""
    [agent] = entry.runtime_data.agents.values()
    return dict(agent.entity_ids)


def our_pipeline(hass: HomeAssistant, entry: MockConfigEntry) -> assist_pipeline.Pipeline:
    """The pipeline the integration created for its default agent."""
    ids = agent_entity_ids(entry)
    [pipeline] = [
        p
        for p in assist_pipeline.async_get_pipelines(hass)
        if p.conversation_engine == ids[Platform.CONVERSATION]
    ]
    return pipeline


async def run_pipeline(
    hass_ws_client: WebSocketGenerator,
    pipeline_id: str,
    audio: bytes | None = None,
    *,
    text: str | None = None,
    device_id: str | None = None,
    conversation_id: str | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    realtime: bool = False,
) -> PipelineRun:
    """Run a pipeline from speech (or text) to TTS and collect its events until run-end."""
    client = await hass_ws_client()
    start_stage = "intent" if text is not None else "stt"
    message: dict[str, Any] = {
        "type": "assist_pipeline/run",
        "start_stage": start_stage,
        "end_stage": "tts",
        "pipeline": pipeline_id,
        "input": {"text": text} if text is not None else {"sample_rate": 16000},
    }
    if device_id is not None:
        message["device_id"] = device_id
    if conversation_id is not None:
        message["conversation_id"] = conversation_id
    await client.send_json_auto_id(message)
    result = await client.receive_json()
    assert result["success"], result
    run = PipelineRun()
    sender: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(15):
            while True:
                msg = await client.receive_json()
                event = msg["event"]
                run.events.append(event)
                if on_event is not None:
                    on_event(event)
                if event["type"] == "run-start" and audio is not None:
                    handler = event["data"]["runner_data"]["stt_binary_handler_id"]
                    sender = asyncio.create_task(_send_audio(client, handler, audio, realtime))
                if event["type"] == "stt-end" and sender is not None:
                    sender.cancel()  # a satellite stops streaming when speech-to-text ends
                if event["type"] == "run-end":
                    break
    finally:
        if sender is not None:
            sender.cancel()
        await client.close()
    return run


async def _send_audio(client: Any, handler: int, audio: bytes, realtime: bool) -> None:
    prefix = bytes([handler])
    for start in range(0, len(audio), CHUNK_BYTES):
        await client.send_bytes(prefix + audio[start : start + CHUNK_BYTES])
        await asyncio.sleep(0.01 if realtime else 0)
    await client.send_bytes(prefix)  # end of audio


async def fetch_tts(hass_client: ClientSessionGenerator, url: str) -> bytes:
    """Read the whole reply from the TTS URL, as a satellite's player does."""
    client = await hass_client()
    response = await client.get(url)
    assert response.status == 200, await response.text()
    return await response.read()


def wav_pcm(wav: bytes) -> tuple[int, bytes]:
    """(sample rate, PCM) of a WAV file, whatever its header chunks."""
    assert wav[:4] == b"RIFF", wav[:16]
    assert wav[8:12] == b"WAVE", wav[:16]
    position = 12
    sample_rate = 0
    while position + 8 <= len(wav):
        chunk_id, size = struct.unpack_from("<4sI", wav, position)
        body = position + 8
        if chunk_id == b"fmt ":
            sample_rate = struct.unpack_from("<I", wav, body + 4)[0]
        elif chunk_id == b"data":
            return sample_rate, wav[body:]  # streaming WAVs have no real size
        position = body + size + (size & 1)
    raise AssertionError("no data chunk in the WAV")
