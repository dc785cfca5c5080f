"""The fake OpenAI Realtime server of the tests, timestamped for benchmarks.

A subclass of `tests.fakes.openai_realtime.FakeOpenAIRealtimeServer` (the fake
itself is not changed). It notes (time.perf_counter, CLOCK_MONOTONIC) when each
input audio append arrives, and when it sends `speech_stopped`, the input
transcript, the first audio delta of a response and `response.done`.

Appends are matched to the satellite frame they carry by content: each turn
registers the exact bytes its frames become after the integration resamples
them, so concurrent satellites and reused sessions need no other bookkeeping.

Replies are paced by the fake's own `pacing` (`tests.fakes.loopback.ModelPacing`):
the driver sets it like a real model (first audio a few hundred milliseconds
after the end of the user's turn, then faster than real time) where latencies
are measured, since an instant reply hides every wait for the end of a reply,
and to instant where only cost or memory are.

One difference from the fake the tests use, for measuring rather than protocol
checking: schema validation of every event (pydantic, a millisecond-scale cost
per event in this process) is on only while `validate` is set; the driver sets
it for its warm-up turns and checks `protocol_errors` afterwards.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
import json
import time
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection

from tests.fakes.openai_realtime import (
    FakeConnection,
    FakeOpenAIRealtimeServer,
    ScriptedResponse,
    SpeechItem,
    _checked_json,
    _error,
)

if TYPE_CHECKING:
    from bench.satellite import TurnRecord

# A resampled frame is known by its last samples: its first ones, and on a fresh
# resampler their count, depend on the previous frame, which a reused session carries over.
KEY_BYTES = 384


@dataclass(frozen=True, slots=True)
class ExpectedFrame:
    """A satellite frame as the fake will see it: whose, which, and its resampled size."""

    turn: TurnRecord
    index: int
    size: int


class BenchConnection(FakeConnection):
    """One session on the benchmark fake: timestamps and frame matching."""

    server: BenchFakeServer

    def __init__(
        self, server: BenchFakeServer, ws: ServerConnection, model: str, azure: bool
    ) -> None:
        super().__init__(server, ws, model, azure)
        self.created_at = time.perf_counter()
        self.turn: TurnRecord | None = None
        # The turn whose response is streaming (None: a response of no benchmark turn).
        self.response_turn: TurnRecord | None = None

    async def send(self, event: dict[str, Any]) -> None:
        event = {"event_id": self.server.new_id("event"), **event}
        text = _checked_json(event) if self.server.validate else json.dumps(event)
        sent_at = time.perf_counter()
        await self.ws.send(text)
        if self.server.validate:
            self.sent.append(json.loads(text))
        turn = self.turn
        match event["type"]:
            case "input_audio_buffer.speech_stopped" if turn and turn.speech_stopped_at is None:
                turn.speech_stopped_at = sent_at
            case "conversation.item.input_audio_transcription.completed" if turn:
                turn.transcript_done_at = sent_at
            case "response.created":
                # A turn's response comes after its end of speech, and only one does.
                answered = turn is not None and turn.speech_stopped_at is not None
                fresh = answered and turn is not None and turn.response_created_at is None
                self.response_turn = turn if fresh else None
                if self.response_turn is not None:
                    self.response_turn.response_created_at = sent_at
            case "response.output_audio.delta" if (
                self.response_turn is not None and self.response_turn.first_delta_at is None
            ):
                self.response_turn.first_delta_at = sent_at
            case "response.done" if self.response_turn is not None:
                self.response_turn.response_done_at = sent_at

    async def _on_frame(self, message: str | bytes) -> None:
        arrived_at = time.perf_counter()
        if isinstance(message, bytes) or self.server.validate:
            if isinstance(message, str) and '"input_audio_buffer.append"' in message:
                event = json.loads(message)
                self._match_append(event.get("audio", ""), arrived_at)
            await super()._on_frame(message)
            return
        event = json.loads(message)
        if event["type"] == "input_audio_buffer.append":
            self._match_append(event["audio"], arrived_at)
        else:
            self.received.append(event)  # small control events only; audio is not kept
        handler = self._handlers.get(event["type"])
        if handler is None:
            self.server.protocol_errors.append(f"unknown event type {event['type']!r}")
            await self.send(_error("invalid_value", f"Unknown event {event['type']!r}"))
            return
        await handler(event)

    def _match_append(self, audio: str, arrived_at: float) -> None:
        """Mark the frames of one append as arrived: its last frame by its key, then the
        frames the integration joined before it (frames that came together), walking back."""
        self.server.appends += 1
        pcm = base64.b64decode(audio)
        end = len(pcm)
        found = self.server.expected.pop(pcm[-KEY_BYTES:], None)
        if found is None:
            self.server.unmatched_appends += 1
            return
        turn = found.turn
        while found is not None:
            found.turn.arrived_at[found.index] = arrived_at
            end -= found.size
            found = self.server.expected.pop(pcm[end - KEY_BYTES : end], None)
        if self.turn is not turn:
            self.turn = turn
            turn.connection_created_at = self.created_at


class BenchFakeServer(FakeOpenAIRealtimeServer):
    """The fake server with `BenchConnection`s; scripted by the turns themselves."""

    def __init__(self) -> None:
        super().__init__()
        self.validate = True
        # Resampled frame bytes (the last KEY_BYTES) -> the frame.
        self.expected: dict[bytes, ExpectedFrame] = {}
        # Audio messages the integration sent (each may join several frames).
        self.appends = 0
        self.unmatched_appends = 0
        self.unmatched_responses = 0
        self.responder = self._respond
        self.live_connections = 0

    def _respond(self, conn: FakeConnection) -> ScriptedResponse | None:
        turn = conn.turn if isinstance(conn, BenchConnection) else None
        if turn is None or turn.speech_stopped_at is None or turn.response_created_at:
            self.unmatched_responses += 1
            return None  # not a benchmark turn's answer: the fake's default "OK."
        return ScriptedResponse(SpeechItem(turn.reply_text, turn.reply_pcm))

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        assert self._setup_failure(ws) is None, "the benchmark uses a valid key and model"
        conn = BenchConnection(self, ws, self._model(ws.request), azure=False)
        self.live_connections += 1
        try:
            await conn.serve()
        finally:
            self.live_connections -= 1
            # Connections are not kept (`connections`): a long run would pile them up.
