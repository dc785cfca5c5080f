"""Tests of the fake Gemini Live server, driven by a bare websockets client.

The client here is deliberately not the project's: it proves the fake speaks
the Live protocol on its own terms. Every message it receives must arrive in a
binary frame and is validated against the SDK's `LiveServerMessage`,
independently of the fake's own check before sending.
"""

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
import contextlib
import copy
import json
from typing import Any

import aiohttp
from google.genai import models as genai_models, types
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.fakes.audio_samples import duration_ms, silence, speech_like, tone, utterance
from tests.fakes.gemini_live import (
    ACTIVITY_WITH_VAD_REASON,
    BAD_KEY_REASON,
    DEADLINE_EXPIRED,
    INPUT_RATE,
    INTERNAL_ERROR,
    INVALID_ARGUMENT,
    OTHER_MODELS,
    OUTPUT_RATE,
    FakeGeminiConnection,
    FakeGeminiLiveServer,
    FakeServerBugError,
    ScriptedTurn,
    SpeechPart,
    ToolCallPart,
)
from tests.fakes.loopback import ModelPacing
from tests.pacing_helpers import (
    RACED_CHUNKS,
    Hold,
    check_first_audio_waits_for_the_models_latency,
    check_speed_is_relative_to_real_time,
)

MODEL = "models/gemini-2.5-flash-native-audio-preview-12-2025"
KEY = FakeGeminiLiveServer.API_KEY


class Client:
    """A plain Live API client: JSON over a websocket, nothing more."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any], *, binary: bool = False) -> None:
        text = json.dumps(message)
        await self.ws.send(text.encode() if binary else text)

    async def recv(self) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.ws.recv(), 5)
        assert isinstance(frame, bytes), "the server sends JSON in binary frames"
        types.LiveServerMessage.model_validate_json(frame, by_alias=True, by_name=False)
        message: dict[str, Any] = json.loads(frame)
        self.messages.append(message)
        return message

    async def recv_until(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Every message up to and including the first matching one."""
        received = []
        while True:
            message = await self.recv()
            received.append(message)
            if predicate(message):
                return received

    async def recv_closed(self) -> tuple[int, str]:
        """Read until the server closes; its close code and reason."""
        with pytest.raises(ConnectionClosed) as closed:
            await self._read_forever()
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code, closed.value.rcvd.reason

    async def _read_forever(self) -> None:
        while True:
            await self.recv()

    async def expect_nothing(self, seconds: float = 0.1) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.ws.recv(), seconds)

    async def send_audio(self, pcm: bytes, chunk_ms: int = 20) -> None:
        step = chunk_ms * INPUT_RATE // 1000 * 2
        for start in range(0, len(pcm), step):
            data = base64.b64encode(pcm[start : start + step]).decode()
            await self.send(
                {"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": data}}}
            )

    async def say(self, text: str) -> None:
        await self.send({"realtimeInput": {"text": text}})


def setup(**fields: Any) -> dict[str, Any]:
    """A `setup` message for a spoken session, with fields added or replaced."""
    return {
        "setup": {
            "model": MODEL,
            "generationConfig": {"responseModalities": ["AUDIO"]},
            "inputAudioTranscription": {},
            "outputAudioTranscription": {},
        }
        | fields
    }


@pytest.fixture
async def server(socket_enabled: None) -> AsyncIterator[FakeGeminiLiveServer]:
    async with FakeGeminiLiveServer() as fake:  # stop() raises if the fake failed
        yield fake


@contextlib.asynccontextmanager
async def session(
    server: FakeGeminiLiveServer, message: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Client, FakeGeminiConnection]]:
    """A connected client past `setupComplete` (and its first resumption
    handle, if it asked for them), and the server's side of it."""
    message = message or setup()
    number = len(server.connections) + 1
    async with connect(
        server.url + server.endpoint_path, additional_headers={"x-goog-api-key": KEY}
    ) as ws:
        client = Client(ws)
        await client.send(message)
        assert await client.recv() == {"setupComplete": {}}
        if "sessionResumption" in message["setup"]:
            assert (await client.recv())["sessionResumptionUpdate"]["resumable"] is True
        yield client, await server.wait_for_connection(number)


def kind(message: dict[str, Any]) -> str:
    """`modelTurn`, `turnComplete`… for server content, else the top-level field."""
    return next(iter(message.get("serverContent") or message))


def kinds(messages: list[dict[str, Any]]) -> list[str]:
    return [kind(message) for message in messages]


def is_kind(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda message: kind(message) == name


def audio_of(messages: list[dict[str, Any]]) -> bytes:
    return b"".join(
        base64.b64decode(part["inlineData"]["data"])
        for message in messages
        for part in message.get("serverContent", {}).get("modelTurn", {}).get("parts", [])
        if "inlineData" in part
    )


def text_of(messages: list[dict[str, Any]], field: str) -> str:
    return "".join(
        message["serverContent"][field]["text"]
        for message in messages
        if field in message.get("serverContent", {})
    )


# -- connecting ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code", "reason"),
    [
        ({"x-goog-api-key": "AIza-wrong"}, 1007, BAD_KEY_REASON),
        (
            {},
            1008,
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API c",
        ),
    ],
)
async def test_a_bad_key_closes_after_the_setup(
    server: FakeGeminiLiveServer, headers: dict[str, str], code: int, reason: str
) -> None:
    """Like the real API: the upgrade succeeds and the setup is answered with a close."""
    async with connect(server.url + server.endpoint_path, additional_headers=headers) as ws:
        client = Client(ws)
        await client.send(setup())
        assert await client.recv_closed() == (code, reason)
    assert len(reason.encode()) <= 123
    assert server.connections == []
    assert server.protocol_errors == []


async def test_the_key_may_be_a_query_parameter(server: FakeGeminiLiveServer) -> None:
    async with connect(f"{server.url}{server.endpoint_path}?key={KEY}") as ws:
        client = Client(ws)
        await client.send(setup())
        assert await client.recv() == {"setupComplete": {}}
    assert server.connections[0].api_version == "v1beta"


async def test_unknown_models_paths_and_injected_handshake_failures(
    server: FakeGeminiLiveServer,
) -> None:
    async with connect(
        server.url + server.endpoint_path, additional_headers={"x-goog-api-key": KEY}
    ) as ws:
        client = Client(ws)
        await client.send(setup(model="models/gemini-nope"))
        code, reason = await client.recv_closed()
    assert code == 1008
    assert reason.startswith(
        "models/gemini-nope is not found for API version v1beta, or is not supported for "
        "bidiGenerateContent."
    )

    with pytest.raises(InvalidStatus) as rejected:
        async with connect(f"{server.url}/ws/BidiGenerateContent?key={KEY}"):
            pass
    assert rejected.value.response.status_code == 404

    server.reject_connections_with_status(503, times=1)
    with pytest.raises(InvalidStatus) as rejected:
        async with session(server):
            pass
    assert rejected.value.response.status_code == 503
    assert json.loads(rejected.value.response.body)["error"]["status"] == "SERVICE_UNAVAILABLE"
    async with session(server) as (_, conn):
        assert conn.model == MODEL
    assert server.protocol_errors == []


async def test_setup_is_answered_in_a_binary_frame_and_kept(server: FakeGeminiLiveServer) -> None:
    """snake_case and camelCase both parse (binary client frames too); the fake
    keeps the setup in canonical camelCase for tests to inspect."""
    tool = {"name": "HassTurnOn", "parametersJsonSchema": {"type": "object"}}
    message = {
        "setup": {
            "model": MODEL,
            "generation_config": {
                "response_modalities": ["AUDIO"],
                "speech_config": {
                    "voice_config": {"prebuilt_voice_config": {"voice_name": "Puck"}}
                },
            },
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "tools": [{"functionDeclarations": [tool]}],
            "realtimeInputConfig": {
                "automaticActivityDetection": {
                    "endOfSpeechSensitivity": "END_SENSITIVITY_LOW",
                    "silenceDurationMs": 300,
                },
                "activityHandling": "START_OF_ACTIVITY_INTERRUPTS",
            },
            "inputAudioTranscription": {},
            "sessionResumption": {},
            "contextWindowCompression": {"slidingWindow": {}},
        }
    }
    async with connect(
        server.url + server.endpoint_path, additional_headers={"x-goog-api-key": KEY}
    ) as ws:
        client = Client(ws)
        await client.send(message, binary=True)
        assert await client.recv() == {"setupComplete": {}}
        update = (await client.recv())["sessionResumptionUpdate"]
        conn = await server.wait_for_connection()
        assert update == {"newHandle": update["newHandle"], "resumable": True}
        assert server.handles[update["newHandle"]].history == []

    assert conn.received[0] == message
    assert conn.headers["x-goog-api-key"] == KEY
    voice = conn.setup["generationConfig"]["speechConfig"]["voiceConfig"]
    assert voice == {"prebuiltVoiceConfig": {"voiceName": "Puck"}}
    assert conn.setup["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert conn.setup["tools"] == [{"functionDeclarations": [tool]}]
    assert (
        conn.setup["realtimeInputConfig"]["automaticActivityDetection"]["silenceDurationMs"] == 300
    )
    assert conn.setup["inputAudioTranscription"] == {}
    assert "outputAudioTranscription" not in conn.setup
    assert conn.setup["contextWindowCompression"] == {"slidingWindow": {}}
    assert server.protocol_errors == []


# -- a spoken turn -------------------------------------------------------------


async def test_spoken_turn_with_automatic_activity_detection(
    server: FakeGeminiLiveServer,
) -> None:
    reply = tone(0.5, OUTPUT_RATE)
    server.add_input_transcript("turn on the kitchen light")
    server.add_response(ScriptedTurn(SpeechPart("Done, the light is on.", pcm=reply)))
    async with session(server, setup(sessionResumption={})) as (client, conn):
        await client.send_audio(utterance(1.0, INPUT_RATE, lead_silence_s=0.3, tail_silence_s=0.8))
        events = await client.recv_until(is_kind("sessionResumptionUpdate"))

        heard = kinds(events).count("inputTranscription")
        assert kinds(events)[:heard] == ["inputTranscription"] * heard
        assert text_of(events, "inputTranscription") == "turn on the kitchen light"
        middle = set(kinds(events)[heard:-3])
        assert middle == {"modelTurn", "outputTranscription"}
        assert kinds(events)[-3:] == [
            "generationComplete",
            "turnComplete",
            "sessionResumptionUpdate",
        ]
        assert events[heard]["serverContent"]["modelTurn"]["parts"][0]["inlineData"][
            "mimeType"
        ] == ("audio/pcm;rate=24000")

        # The audio decodes to exactly the scripted PCM, in 40 ms chunks.
        assert audio_of(events) == reply == conn.turns[0].pcm
        assert kinds(events).count("modelTurn") == 13
        assert text_of(events, "outputTranscription") == "Done, the light is on."
        assert conn.turns[0].transcript == "Done, the light is on."
        assert (conn.turns[0].trigger, conn.turns[0].status) == ("audio", "completed")

        usage = events[-2]["usageMetadata"]
        assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["responseTokenCount"]
        assert usage["responseTokensDetails"] == [
            {"modality": "AUDIO", "tokenCount": usage["responseTokenCount"]}
        ]
        handle = events[-1]["sessionResumptionUpdate"]["newHandle"]
        assert server.handles[handle].history == conn.history

        # Speech from its first loud frame until 500 ms of silence said it ended.
        assert duration_ms(conn.user_turns[0].pcm, INPUT_RATE) == pytest.approx(1500, abs=40)
        assert conn.audio_ms_received == pytest.approx(2100)
        assert conn.history == [
            {"role": "user", "parts": [{"text": "turn on the kitchen light"}]},
            {"role": "model", "parts": [{"text": "Done, the light is on."}]},
        ]
        assert conn.last_user_text() == "turn on the kitchen light"
        # Nothing reached the client that the fake did not validate and record.
        assert conn.sent == client.messages
    assert server.protocol_errors == []


async def test_activity_detection_settings_and_audio_stream_end(
    server: FakeGeminiLiveServer,
) -> None:
    detection = {"prefixPaddingMs": 100, "silenceDurationMs": 200}
    async with session(
        server, setup(realtimeInputConfig={"automaticActivityDetection": detection})
    ) as (
        client,
        conn,
    ):
        # A 60 ms click is shorter than the 100 ms speech must last to count.
        await client.send_audio(silence(0.1, INPUT_RATE) + speech_like(0.06, INPUT_RATE))
        await client.send_audio(silence(0.4, INPUT_RATE))
        await client.expect_nothing()
        # 300 ms of silence is more than the 200 ms that ends a turn.
        await client.send_audio(utterance(0.5, INPUT_RATE, lead_silence_s=0.1, tail_silence_s=0.3))
        await client.recv_until(is_kind("turnComplete"))
        # 500 ms of speech and the 200 ms of silence that ended it.
        assert duration_ms(conn.user_turns[0].pcm, INPUT_RATE) == pytest.approx(700, abs=40)

        # With the microphone paused, what was heard is a turn at once.
        await client.send_audio(speech_like(0.4, INPUT_RATE))
        await client.expect_nothing()
        await client.send({"realtimeInput": {"audioStreamEnd": True}})
        await client.recv_until(is_kind("turnComplete"))
        assert duration_ms(conn.user_turns[1].pcm, INPUT_RATE) == pytest.approx(400, abs=40)
        assert [turn.source for turn in conn.user_turns] == ["audio", "audio"]

    # END_SENSITIVITY_LOW ends speech less readily: 800 ms of silence, not 500.
    reluctant = {"automaticActivityDetection": {"endOfSpeechSensitivity": "END_SENSITIVITY_LOW"}}
    async with session(server, setup(realtimeInputConfig=reluctant)) as (client, conn):
        await client.send_audio(utterance(0.3, INPUT_RATE, lead_silence_s=0, tail_silence_s=0.6))
        await client.expect_nothing()
        await client.send_audio(silence(0.3, INPUT_RATE))
        await client.recv_until(is_kind("turnComplete"))
        assert duration_ms(conn.user_turns[0].pcm, INPUT_RATE) == pytest.approx(1100, abs=40)
    assert server.protocol_errors == []


async def test_manual_activity_signals(server: FakeGeminiLiveServer) -> None:
    manual = {"automaticActivityDetection": {"disabled": True}}
    async with session(server, setup(realtimeInputConfig=manual)) as (client, conn):
        await client.send_audio(speech_like(0.2, INPUT_RATE))  # outside any activity: ignored
        await client.send({"realtimeInput": {"activityStart": {}}})
        await client.send_audio(speech_like(0.4, INPUT_RATE) + silence(0.8, INPUT_RATE))
        await client.expect_nothing()
        await client.send({"realtimeInput": {"activityEnd": {}}})
        events = await client.recv_until(is_kind("turnComplete"))
        assert kinds(events)[0] == "inputTranscription"
        assert conn.user_turns[0].source == "activity"
        assert duration_ms(conn.user_turns[0].pcm, INPUT_RATE) == 1200
        assert conn.turns[0].trigger == "activity"
        await conn.wait_idle()

        # Signals out of order, or the automatic-detection one, are mistakes.
        for signal in ("activityEnd", "activityStart", "activityStart"):
            await client.send({"realtimeInput": {signal: {}}})
        await client.send({"realtimeInput": {"audioStreamEnd": True}})
        await conn.wait_for_message("realtimeInput", lambda m: "audioStreamEnd" in m)
    assert server.protocol_errors == [
        "activityEnd without activityStart",
        "activityStart during an activity",
        "audioStreamEnd with automatic activity detection disabled (send activityEnd)",
    ]
    server.protocol_errors.clear()

    async with session(server) as (client, _):
        await client.send({"realtimeInput": {"activityStart": {}}})
        assert await client.recv_closed() == (1007, ACTIVITY_WITH_VAD_REASON[:123])
    assert server.protocol_errors == [
        "realtimeInput.activityStart while automatic activity detection is on"
    ]


# -- tool calls ------------------------------------------------------------------


async def test_a_tool_call_blocks_until_every_result_is_in(server: FakeGeminiLiveServer) -> None:
    server.add_response(
        ScriptedTurn(
            SpeechPart("Let me check."),
            ToolCallPart("HassTurnOn", {"name": "kitchen"}),
            ToolCallPart("GetWeather", {}, id="call-weather"),
        )
    )

    def answer(conn: FakeGeminiConnection) -> ScriptedTurn:
        outputs = [response["response"]["output"] for response in conn.tool_responses]
        return ScriptedTurn(SpeechPart(f"Results: {', '.join(outputs)}."))

    server.responder = answer
    async with session(server, setup(sessionResumption={})) as (client, conn):
        await client.say("turn on the kitchen light")
        events = await client.recv_until(is_kind("toolCall"))
        assert "inputTranscription" not in kinds(events)  # typed, not heard
        assert text_of(events, "outputTranscription") == "Let me check."
        calls = events[-1]["toolCall"]["functionCalls"]
        assert [(call["name"], call["args"]) for call in calls] == [
            ("HassTurnOn", {"name": "kitchen"}),
            ("GetWeather", {}),
        ]
        assert calls[0]["id"].startswith("function-call-")
        assert calls[1]["id"] == "call-weather"
        # Not resumable while the model waits, and the turn stays open.
        assert await client.recv() == {"sessionResumptionUpdate": {}}
        await client.expect_nothing()

        def result(call: dict[str, Any], output: str) -> dict[str, Any]:
            return {"id": call["id"], "name": call["name"], "response": {"output": output}}

        await client.send({"tool_response": {"function_responses": [result(calls[1], "sunny")]}})
        await client.expect_nothing()
        await client.send({"toolResponse": {"functionResponses": [result(calls[0], "on")]}})
        events = await client.recv_until(is_kind("sessionResumptionUpdate"))
        assert text_of(events, "outputTranscription") == "Results: sunny, on."
        assert kinds(events)[-3:] == [
            "generationComplete",
            "turnComplete",
            "sessionResumptionUpdate",
        ]
        assert "turnComplete" not in kinds(events)[:-2]

        assert [turn.trigger for turn in conn.turns] == ["text", "tool_response"]
        assert conn.turns[0].tool_calls == calls
        assert [response["id"] for response in conn.tool_responses] == [
            calls[1]["id"],
            calls[0]["id"],
        ]
        assert [list(content["parts"][0]) for content in conn.history] == [
            ["text"],
            ["text"],
            ["functionCall"],
            ["functionResponse"],
            ["functionResponse"],
            ["text"],
        ]
    assert server.protocol_errors == []


async def test_the_turn_can_end_at_the_tool_call(server: FakeGeminiLiveServer) -> None:
    """Some models complete the turn with the call and answer in a new one."""
    server.complete_turn_on_tool_call = True
    server.add_response(ScriptedTurn(ToolCallPart("GetTime", {})))
    server.add_response(ScriptedTurn(SpeechPart("It is noon.")))
    async with session(server, setup(sessionResumption={})) as (client, conn):
        await client.say("what time is it")
        events = await client.recv_until(is_kind("turnComplete"))
        assert kinds(events) == [
            "toolCall",
            "sessionResumptionUpdate",
            "generationComplete",
            "turnComplete",
        ]
        call = events[0]["toolCall"]["functionCalls"][0]
        await client.expect_nothing()  # no handle while the call is pending
        await client.send(
            {
                "toolResponse": {
                    "functionResponses": [
                        {"id": call["id"], "name": "GetTime", "response": {"output": "12:00"}}
                    ]
                }
            }
        )
        events = await client.recv_until(is_kind("sessionResumptionUpdate"))
        assert text_of(events, "outputTranscription") == "It is noon."
        assert kinds(events)[-3:] == [
            "generationComplete",
            "turnComplete",
            "sessionResumptionUpdate",
        ]

        # Speech while the call is pending cancels it; there is no turn left to interrupt.
        server.add_response(ScriptedTurn(ToolCallPart("GetTime", {})))
        await client.say("and now?")
        await client.recv_until(is_kind("turnComplete"))
        await client.send_audio(speech_like(0.3, INPUT_RATE))
        assert kind(await client.recv()) == "toolCallCancellation"
        await client.send_audio(silence(0.6, INPUT_RATE))
        events = await client.recv_until(is_kind("sessionResumptionUpdate"))
        assert kinds(events)[0] == "inputTranscription"
        assert "interrupted" not in kinds(events)
        assert [turn.status for turn in conn.turns] == ["completed"] * 4
    assert server.protocol_errors == []


async def test_tool_result_mistakes_are_protocol_errors(server: FakeGeminiLiveServer) -> None:
    server.add_response(ScriptedTurn(ToolCallPart("GetTime", {}, id="call-1")))
    async with session(server) as (client, conn):
        await client.say("what time is it")
        await client.recv_until(is_kind("toolCall"))
        for response in (
            {"id": "call-404", "name": "GetTime", "response": {}},
            {"id": "call-1", "response": {"output": "12:00"}},
            {"id": "call-1", "name": "GetTime", "response": {"output": "12:00"}},
        ):
            await client.send({"toolResponse": {"functionResponses": [response]}})
        await conn.wait_for_message("toolResponse", count=3)
        await client.recv_until(is_kind("turnComplete"))
        await conn.wait_idle()
    assert server.protocol_errors == [
        "result for unknown tool call id 'call-404'",
        "result for 'call-1' named None, not 'GetTime'",
        "a second result for tool call 'call-1'",
    ]


# -- barge-in ------------------------------------------------------------------------


async def test_barge_in_interrupts_then_completes_the_turn(server: FakeGeminiLiveServer) -> None:
    server.chunk_delay_s = 0.01
    server.add_response(ScriptedTurn(SpeechPart("A long answer to interrupt", pcm=tone(2.0))))
    async with session(server) as (client, conn):
        await client.say("tell me a story")
        before = await client.recv_until(is_kind("modelTurn"))
        record = conn.turns[0]
        assert [conn.active_turn] == [record]  # a list: mypy would narrow the property
        assert conn.turns[0].status == "in_progress"
        await client.send_audio(speech_like(0.3, INPUT_RATE))
        events = before + await client.recv_until(is_kind("turnComplete"))
        assert kinds(events)[-2:] == ["interrupted", "turnComplete"]
        assert "generationComplete" not in kinds(events)
        assert conn.active_turn is None
        assert record.status == "interrupted"
        assert audio_of(events) == record.pcm
        assert 0 < record.audio_ms < 2000

        # The user's words end the user's turn, which is then answered.
        await client.send_audio(silence(0.6, INPUT_RATE))
        events = await client.recv_until(is_kind("turnComplete"))
        assert kinds(events)[0] == "inputTranscription"
        assert text_of(events, "outputTranscription") == "OK."
        assert [content["role"] for content in conn.history] == ["user", "model", "user", "model"]
        assert conn.history[1]["parts"][0]["text"] == record.transcript
        await conn.wait_idle()
    assert server.protocol_errors == []


async def test_barge_in_cancels_pending_tool_calls(server: FakeGeminiLiveServer) -> None:
    server.add_response(ScriptedTurn(ToolCallPart("HassTurnOn", {"name": "kitchen"})))
    async with session(server) as (client, conn):
        await client.say("turn on the kitchen light")
        call = (await client.recv_until(is_kind("toolCall")))[-1]["toolCall"]["functionCalls"][0]
        await client.send_audio(speech_like(0.3, INPUT_RATE))
        events = await client.recv_until(is_kind("turnComplete"))
        assert kinds(events) == ["toolCallCancellation", "interrupted", "turnComplete"]
        assert events[0]["toolCallCancellation"] == {"ids": [call["id"]]}
        assert conn.cancelled_call_ids == {call["id"]}
        assert conn.turns[0].status == "interrupted"

        # A result that crossed the cancellation is ignored, not an error.
        late = {"id": call["id"], "name": "HassTurnOn", "response": {"output": "on"}}
        await client.send({"toolResponse": {"functionResponses": [late]}})
        await client.send_audio(silence(0.6, INPUT_RATE))
        events = await client.recv_until(is_kind("turnComplete"))
        assert text_of(events, "outputTranscription") == "OK."
        assert conn.tool_responses == [late]
    assert server.protocol_errors == []


async def test_no_interruption_and_barge_in_during_playback(server: FakeGeminiLiveServer) -> None:
    server.chunk_delay_s = 0.01
    server.add_response(ScriptedTurn(SpeechPart("Hear me out", pcm=tone(0.4))))
    polite = {"activityHandling": "NO_INTERRUPTION"}
    async with session(server, setup(realtimeInputConfig=polite)) as (client, conn):
        await client.say("go on")
        before = await client.recv_until(is_kind("modelTurn"))
        await client.send_audio(utterance(0.3, INPUT_RATE, lead_silence_s=0, tail_silence_s=0.6))
        events = before + await client.recv_until(is_kind("turnComplete"))
        assert "interrupted" not in kinds(events)
        assert audio_of(events) == tone(0.4)
        # The user's turn is answered once the model has finished its own.
        events = await client.recv_until(is_kind("turnComplete"))
        assert text_of(events, "outputTranscription") == "OK."
        assert [turn.status for turn in conn.turns] == ["completed", "completed"]
    assert server.protocol_errors == []

    # The real server waits for playback before turnComplete: speech then still interrupts.
    server.turn_complete_delay_s = 5.0
    async with session(server) as (client, conn):
        await client.say("hello")
        await client.recv_until(is_kind("generationComplete"))
        await client.send_audio(speech_like(0.3, INPUT_RATE))
        events = await client.recv_until(is_kind("turnComplete"))
        assert kinds(events) == ["interrupted", "turnComplete"]
        assert conn.turns[0].status == "interrupted"
    assert server.protocol_errors == []


# -- other input ---------------------------------------------------------------------


async def test_client_content_and_text_responses(server: FakeGeminiLiveServer) -> None:
    server.add_response(ScriptedTurn(SpeechPart("Two words.")))
    text_only = setup(generationConfig={"responseModalities": ["TEXT"]})
    async with session(server, text_only) as (client, conn):
        seed = [
            {"role": "user", "parts": [{"text": "My name is Ada."}]},
            {"role": "model", "parts": [{"text": "Hello Ada."}]},
        ]
        await client.send({"clientContent": {"turns": seed, "turnComplete": False}})
        await client.expect_nothing()
        question = {"role": "user", "parts": [{"text": "What is my name?"}]}
        await client.send({"client_content": {"turns": [question], "turn_complete": True}})
        events = await client.recv_until(is_kind("turnComplete"))
        assert kinds(events) == ["modelTurn", "modelTurn", "generationComplete", "turnComplete"]
        parts = [event["serverContent"]["modelTurn"]["parts"][0] for event in events[:2]]
        assert parts == [{"text": "Two "}, {"text": "words."}]
        assert conn.history == [
            *seed,
            question,
            {"role": "model", "parts": [{"text": "Two words."}]},
        ]
        assert conn.turns[0].trigger == "client_content"
        assert conn.turns[0].pcm == b""
        assert events[-1]["usageMetadata"]["responseTokensDetails"][0]["modality"] == "TEXT"
    assert server.protocol_errors == []


async def test_client_content_as_initial_history_only(server: FakeGeminiLiveServer) -> None:
    """The restriction early gemini-3.1-flash-live-preview docs describe."""
    server.initial_history_only = True
    seed: dict[str, Any] = {
        "turns": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "turnComplete": False,
    }
    history = setup(historyConfig={"initialHistoryInClientContent": True})
    async with session(server, history) as (client, conn):
        await client.send({"clientContent": seed})
        await client.say("hello")
        await client.recv_until(is_kind("turnComplete"))
        await client.send({"clientContent": seed})
        assert await client.recv_closed() == (1007, INVALID_ARGUMENT)
        assert conn.history[0] == seed["turns"][0]
    assert len(server.protocol_errors) == 1


async def test_video_frames_are_recorded_with_their_arrival(server: FakeGeminiLiveServer) -> None:
    jpeg = b"\xff\xd8\xff\xe0fake-jpeg"
    async with session(server) as (client, conn):
        for frame in (jpeg, jpeg[::-1]):
            data = base64.b64encode(frame).decode()
            await client.send(
                {"realtimeInput": {"video": {"mimeType": "image/jpeg", "data": data}}}
            )
        await conn.wait_for_message("realtimeInput", lambda m: "video" in m, count=2)
        assert [(f.mime_type, f.data) for f in conn.video_frames] == [
            ("image/jpeg", jpeg),
            ("image/jpeg", jpeg[::-1]),
        ]
        assert conn.video_frames[0].received_at <= conn.video_frames[1].received_at
        assert conn.turns == []
    assert server.protocol_errors == []


# -- connection lifetime and resumption ------------------------------------------------


async def test_go_away_then_close(server: FakeGeminiLiveServer) -> None:
    async with session(server) as (client, conn):
        await server.send_go_away(conn, 0.05)
        assert await client.recv() == {"goAway": {"timeLeft": "0.050s"}}
        assert await client.recv_closed() == (1011, DEADLINE_EXPIRED)

    async with session(server) as (client, conn):
        await conn.go_away(50, close_code=1008, reason="Connection lifetime reached.")
        assert await client.recv() == {"goAway": {"timeLeft": "50s"}}

    server.connection_lifetime_s = 0.1
    async with session(server) as (client, _):
        assert await client.recv() == {"goAway": {"timeLeft": "0.100s"}}
        assert await client.recv_closed() == (1011, DEADLINE_EXPIRED)
    assert server.protocol_errors == []


async def test_resumption_carries_the_conversation(server: FakeGeminiLiveServer) -> None:
    server.add_response(ScriptedTurn(SpeechPart("First answer.")))
    server.add_response(ScriptedTurn(SpeechPart("Second answer.")))
    async with session(server, setup(sessionResumption={})) as (client, first):
        await client.say("first question")
        events = await client.recv_until(is_kind("sessionResumptionUpdate"))
        handle = events[-1]["sessionResumptionUpdate"]["newHandle"]

        # The session's socket is still open: the real server refuses to resume.
        async with connect(
            server.url + server.endpoint_path, additional_headers={"x-goog-api-key": KEY}
        ) as ws:
            other = Client(ws)
            await other.send(setup(sessionResumption={"handle": handle}))
            assert await other.recv_closed() == (1011, INTERNAL_ERROR)

    resume = setup(sessionResumption={"handle": handle})
    async with session(server, resume) as (client, second):
        assert second.resumed_from == handle
        assert second.session_id == first.session_id
        assert second.history == server.handles[handle].history == first.history
        await client.say("second question")
        events = await client.recv_until(is_kind("turnComplete"))
        assert text_of(events, "outputTranscription") == "Second answer."
        assert second.last_user_text() == "second question"
        assert len(second.history) == 4

    async with connect(
        server.url + server.endpoint_path, additional_headers={"x-goog-api-key": KEY}
    ) as ws:
        client = Client(ws)
        await client.send(setup(sessionResumption={"handle": "not-a-handle"}))
        assert await client.recv_closed() == (1007, INVALID_ARGUMENT)
    assert server.protocol_errors == []


# -- protocol violations -------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            {"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": "!!!"}}},
            "Invalid value at 'realtime_input.audio.data' (TYPE_BYTES), "
            'Base64 decoding failed for "!!!"',
        ),
        (
            {"realtime_input": {"audio_chunk": {}}},
            "Invalid JSON payload received. Unknown name \"audio_chunk\" at 'realtime_input': "
            "Cannot find field.",
        ),
        (
            {"clientContnet": {}},
            'Invalid JSON payload received. Unknown name "clientContnet": Cannot find field.',
        ),
        (
            {"clientContent": {"turns": [{"role": "assistant", "parts": [{"text": "Hi"}]}]}},
            "Please use a valid role: user, model.",
        ),
        (
            {"clientContent": {"turnComplete": True}, "realtimeInput": {"text": "hi"}},
            "Invalid JSON payload received. Oneof field 'message_type' is already set. "
            "Cannot set 'realtimeInput'",
        ),
        ({"setup": {"model": MODEL}}, INVALID_ARGUMENT),
        ({}, INVALID_ARGUMENT),
        ("{not json", "Invalid JSON payload received. Unexpected token."),
        (b"\xff\xfe", "Invalid JSON payload received. Unexpected token."),
        ("[1]", "Invalid JSON payload received. Root element must be a message."),
    ],
)
async def test_invalid_client_messages_close_with_1007(
    server: FakeGeminiLiveServer, message: dict[str, Any] | str | bytes, reason: str
) -> None:
    async with session(server) as (client, _):
        await (client.send(message) if isinstance(message, dict) else client.ws.send(message))
        assert await client.recv_closed() == (1007, reason)
    assert len(server.protocol_errors) == 1


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"realtimeInput": {"text": "hi"}}, INVALID_ARGUMENT),
        (
            setup(generationConfig={"modalities": ["AUDIO"]}),
            'Invalid JSON payload received. Unknown name "modalities" at '
            "'setup.generation_config': Cannot find field.",
        ),
        (
            setup(generationConfig={"responseModalities": ["AUDI"]}),
            "Invalid value at 'setup.generation_config.response_modalities[0]' "
            '(type.googleapis.com/google.ai.generativelanguage.v1beta.Modality), "AUDI"',
        ),
        (
            setup(systemInstruction="Be brief."),
            "Invalid value at 'setup.system_instruction' (TYPE_MESSAGE), \"Be brief.\"",
        ),
        (setup(generationConfig={"responseModalities": ["AUDIO", "TEXT"]}), INVALID_ARGUMENT),
        ({"setup": {"generationConfig": {"responseModalities": ["AUDIO"]}}}, INVALID_ARGUMENT),
    ],
)
async def test_an_invalid_first_message_closes_with_1007(
    server: FakeGeminiLiveServer, message: dict[str, Any], reason: str
) -> None:
    async with connect(
        server.url + server.endpoint_path, additional_headers={"x-goog-api-key": KEY}
    ) as ws:
        client = Client(ws)
        await client.send(message)
        assert await client.recv_closed() == (1007, reason[:123])
    assert server.connections == []
    assert len(server.protocol_errors) == 1


async def test_mistakes_that_do_not_close_are_recorded(server: FakeGeminiLiveServer) -> None:
    transparent = setup(sessionResumption={"transparent": True})
    async with session(server, transparent) as (client, conn):
        pcm = base64.b64encode(speech_like(0.1, 24_000)).decode()
        for realtime in (
            {"audio": {"mimeType": "audio/pcm;rate=24000", "data": pcm}},
            {"video": {"mimeType": "video/mp4", "data": ""}},
            {"mediaChunks": [{"mimeType": "image/jpeg", "data": ""}]},
            {"text": "hi", "audioStreamEnd": True},
        ):
            await client.send({"realtimeInput": realtime})
        await client.send({"contextUpdate": {"systemInstruction": {"parts": [{"text": "Hi"}]}}})
        await conn.wait_for_message("contextUpdate")
        await client.recv_until(is_kind("turnComplete"))
        assert conn.audio_ms_received == 0
        assert [frame.mime_type for frame in conn.video_frames] == ["video/mp4", "image/jpeg"]
    assert server.protocol_errors == [
        "sessionResumption.transparent is Vertex-only (the SDK refuses it)",
        "realtimeInput.audio with mimeType 'audio/pcm;rate=24000': the fake takes "
        "audio/pcm;rate=16000",
        "realtimeInput.video with mimeType 'video/mp4'",
        "realtimeInput.mediaChunks is deprecated; send audio or video",
        "realtimeInput with ['audioStreamEnd', 'text']: send exactly one field per message",
        "contextUpdate is not supported by the fake",
    ]


async def test_the_fake_refuses_to_send_what_the_spec_rejects(
    server: FakeGeminiLiveServer,
) -> None:
    async with session(server) as (_, conn):
        for message in (
            {"server_content": {"turn_complete": True}},  # the server writes camelCase
            {"serverContent": {"turnFinished": True}},
            {"usageMetadata": {"responseTokensDetails": [{"modality": "SMELL"}]}},
            {},
        ):
            with pytest.raises(FakeServerBugError):
                await conn.send(message)
        assert conn.sent == [{"setupComplete": {}}]


def test_a_scripted_turn_has_one_batch_of_calls() -> None:
    with pytest.raises(ValueError, match="one batch of calls per turn"):
        ScriptedTurn(ToolCallPart("GetTime", {}), SpeechPart("Noon."), ToolCallPart("GetDate", {}))


# -- per model: gemini-3.8-live and gemini-3.1-flash-live-preview ---------------------

LIVE_38 = "models/gemini-3.8-live"
LIVE_31 = "models/gemini-3.1-flash-live-preview"
LIGHT_TOOL = {"functionDeclarations": [{"name": "HassTurnOn", "description": "Turn on"}]}


def result(call: dict[str, Any], scheduling: str | None = None) -> dict[str, Any]:
    """A `toolResponse` answering `call` (with a scheduling, if given)."""
    response = {"id": call["id"], "name": call["name"], "response": {"output": "done"}}
    if scheduling is not None:
        response["scheduling"] = scheduling
    return {"toolResponse": {"functionResponses": [response]}}


async def test_3_8_keeps_talking_after_a_call_and_answers_the_result_when_idle(
    server: FakeGeminiLiveServer,
) -> None:
    """Calls run in the background by default: the model finishes its turn, and a
    `WHEN_IDLE` result brings a new one."""
    server.add_response(
        ScriptedTurn(
            SpeechPart("Sure."), ToolCallPart("HassTurnOn", {}), SpeechPart("Anything else?")
        )
    )
    server.add_response(ScriptedTurn(SpeechPart("The light is on.")))
    async with session(server, setup(model=LIVE_38, tools=[LIGHT_TOOL])) as (client, conn):
        await client.say("turn on the light")
        events = await client.recv_until(is_kind("turnComplete"))
        assert text_of(events, "outputTranscription") == "Sure.Anything else?"
        assert kinds(events).index("toolCall") < kinds(events).index("generationComplete")
        # Results may still make the model talk: the interaction is not idle.
        assert events[-1]["serverContent"]["interactionStatus"] == "IN_PROGRESS"
        [call] = next(e for e in events if "toolCall" in e)["toolCall"]["functionCalls"]

        await client.send(result(call, "WHEN_IDLE"))
        events = await client.recv_until(is_kind("turnComplete"))
        assert text_of(events, "outputTranscription") == "The light is on."
        assert events[-1]["serverContent"]["interactionStatus"] == "IDLE"
    assert [turn.trigger for turn in conn.turns] == ["text", "tool_response"]
    assert conn.tool_responses[0]["scheduling"] == "WHEN_IDLE"
    assert server.protocol_errors == []


async def test_background_results_are_silent_or_interrupt_as_scheduled(
    server: FakeGeminiLiveServer,
) -> None:
    """`SILENT` only adds the result; `INTERRUPT` cuts the model's turn and answers."""
    declared = {
        "functionDeclarations": [
            {"name": "Lamp", "description": "A lamp", "behavior": "NON_BLOCKING"}
        ]
    }
    server.chunk_delay_s = 0.02
    server.add_response(ScriptedTurn(ToolCallPart("Lamp", {}), ToolCallPart("Lamp", {})))
    server.add_response(ScriptedTurn(SpeechPart("A long story that goes on and on. " * 4)))
    server.add_response(ScriptedTurn(SpeechPart("The lamp is on.")))
    # 2.5 runs declared NON_BLOCKING calls in the background too.
    async with session(server, setup(tools=[declared])) as (client, conn):
        await client.say("lamp")
        events = await client.recv_until(is_kind("turnComplete"))
        first, second = next(e for e in events if "toolCall" in e)["toolCall"]["functionCalls"]
        await client.send(result(first, "SILENT"))
        await client.expect_nothing()
        await client.say("tell me a story")
        await client.recv_until(lambda m: "modelTurn" in m.get("serverContent", {}))
        await client.send(result(second, "INTERRUPT"))
        events = await client.recv_until(is_kind("turnComplete"))
        assert "interrupted" in kinds(events)
        events = await client.recv_until(is_kind("turnComplete"))
        assert text_of(events, "outputTranscription") == "The lamp is on."
    assert [turn.status for turn in conn.turns] == ["completed", "interrupted", "completed"]
    assert server.protocol_errors == []


async def test_a_blocking_declaration_makes_3_8_wait(server: FakeGeminiLiveServer) -> None:
    declared = {
        "functionDeclarations": [{"name": "GetTime", "description": "", "behavior": "BLOCKING"}]
    }
    server.add_response(ScriptedTurn(ToolCallPart("GetTime", {})))
    server.add_response(ScriptedTurn(SpeechPart("Noon.")))
    async with session(server, setup(model=LIVE_38, tools=[declared])) as (client, _conn):
        await client.say("time?")
        [call] = (await client.recv())["toolCall"]["functionCalls"]
        await client.expect_nothing()  # the model waits
        await client.send(result(call))
        events = await client.recv_until(is_kind("turnComplete"))
        assert text_of(events, "outputTranscription") == "Noon."
    assert server.protocol_errors == []


async def test_3_1_runs_calls_synchronously_whatever_is_declared(
    server: FakeGeminiLiveServer,
) -> None:
    declared = {
        "functionDeclarations": [{"name": "Lamp", "description": "", "behavior": "NON_BLOCKING"}]
    }
    server.add_response(ScriptedTurn(ToolCallPart("Lamp", {})))
    async with session(server, setup(model=LIVE_31, tools=[declared])) as (client, _conn):
        await client.say("lamp")
        assert "toolCall" in await client.recv()
        await client.expect_nothing()
    assert server.protocol_errors == []


@pytest.mark.parametrize(
    ("model", "fields", "refused"),
    [
        (LIVE_38, {"generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW"}}}, True),
        (LIVE_38, {"generationConfig": {"enableAffectiveDialog": False}}, True),
        (LIVE_38, {"proactivity": {"proactiveAudio": False}}, True),
        (LIVE_38, {"proactivity": {"proactiveAudio": True}}, False),
        (LIVE_31, {"proactivity": {"proactiveAudio": True}}, True),
        (LIVE_31, {"generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW"}}}, False),
        (MODEL, {"generationConfig": {"enableAffectiveDialog": True}}, False),
    ],
)
async def test_models_refuse_what_they_lack(
    server: FakeGeminiLiveServer, model: str, fields: dict[str, Any], refused: bool
) -> None:
    message = setup(model=model, **fields)
    async with connect(
        server.url + server.endpoint_path, additional_headers={"x-goog-api-key": KEY}
    ) as ws:
        client = Client(ws)
        await client.send(message)
        if refused:
            code, reason = await client.recv_closed()
            assert code == 1007
            assert "not supported" in reason or "cannot be disabled" in reason
        else:
            assert await client.recv() == {"setupComplete": {}}
    assert len(server.protocol_errors) == refused


async def test_3_8_reports_voice_activity(server: FakeGeminiLiveServer) -> None:
    async with session(server, setup(model=LIVE_38)) as (client, _conn):
        await client.send_audio(utterance(0.6, INPUT_RATE, lead_silence_s=0.2))
        events = await client.recv_until(is_kind("turnComplete"))
    activity = [e["voiceActivity"] for e in events if "voiceActivity" in e]
    assert [a["voiceActivityType"] for a in activity] == ["ACTIVITY_START", "ACTIVITY_END"]
    start_s = float(activity[0]["audioOffset"].removesuffix("s"))
    assert start_s == pytest.approx(0.2, abs=0.05)
    assert kinds(events).index("voiceActivity") < kinds(events).index("inputTranscription")
    assert server.protocol_errors == []


async def test_a_malformed_function_call_ends_the_turn_with_its_reason(
    server: FakeGeminiLiveServer,
) -> None:
    server.malformed_next_function_call()
    server.add_response(ScriptedTurn(SpeechPart("Let me."), ToolCallPart("GetTime", {})))
    async with session(server, setup(model=LIVE_38)) as (client, _conn):
        await client.say("time?")
        events = await client.recv_until(is_kind("turnComplete"))
    assert "toolCall" not in kinds(events)
    assert "generationComplete" not in kinds(events)
    assert events[-1]["serverContent"]["turnCompleteReason"] == "MALFORMED_FUNCTION_CALL"


async def test_transcription_gets_names_right_only_from_the_vocabulary(
    server: FakeGeminiLiveServer,
) -> None:
    server.mishearings["Hue Go"] = "who go"
    server.add_input_transcript("Turn on the Hue Go.")
    server.add_input_transcript("Turn on the Hue Go.")
    spoken = utterance(0.6, INPUT_RATE)
    for transcription, heard in (({}, "who go"), ({"customVocabulary": ["Hue Go"]}, "Hue Go")):
        message = setup(inputAudioTranscription=transcription)
        async with session(server, message) as (client, _conn):
            await client.send_audio(spoken)
            events = await client.recv_until(is_kind("turnComplete"))
        assert text_of(events, "inputTranscription") == f"Turn on the {heard}."
    assert server.protocol_errors == []


# -- models.list ------------------------------------------------------------------------


async def test_models_list_pages_through_every_model(server: FakeGeminiLiveServer) -> None:
    names: list[str] = []
    token: str | None = None
    async with aiohttp.ClientSession() as http:
        while True:
            params = {"pageSize": "3"} | ({"pageToken": token} if token else {})
            async with http.get(
                f"http://127.0.0.1:{server.port}/v1beta/models",
                headers={"x-goog-api-key": KEY},
                params=params,
            ) as response:
                assert response.status == 200
                page = await response.json()
            for model in page["models"]:
                converted = genai_models._Model_from_mldev(copy.deepcopy(model))
                types.Model._from_response(response=converted, kwargs={})
                names.append(model["name"])
            if not (token := page.get("nextPageToken")):
                break
    live = {f"models/{name}" for name in server.models}
    assert live < set(names)
    assert len(names) == len(live) + len(OTHER_MODELS)


@pytest.mark.parametrize(
    ("key", "failure", "status", "error_status"),
    [
        ("AIza-wrong", None, 400, "INVALID_ARGUMENT"),
        (None, None, 403, "PERMISSION_DENIED"),
        (KEY, 503, 503, "SERVICE_UNAVAILABLE"),
    ],
)
async def test_models_list_errors(
    server: FakeGeminiLiveServer,
    key: str | None,
    failure: int | None,
    status: int,
    error_status: str,
) -> None:
    server.listing_failure = failure
    headers = {"x-goog-api-key": key} if key else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{server.port}/v1beta/models", headers=headers) as response,
    ):
        assert response.status == status
        assert (await response.json())["error"]["status"] == error_status


# -- faults and helpers ----------------------------------------------------------------


async def test_injection_and_server_side_closes(server: FakeGeminiLiveServer) -> None:
    async with session(server) as (client, conn):
        await server.inject(conn, '{"serverContent": {"futureField": true}}', binary=False)
        assert await client.ws.recv() == '{"serverContent": {"futureField": true}}'
        await server.inject(conn, "not json")
        assert await client.ws.recv() == b"not json"
        await server.close_with(conn, 1011, INTERNAL_ERROR)
        assert await client.recv_closed() == (1011, INTERNAL_ERROR)

    async with session(server) as (client, conn):
        conn.close_abruptly()
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.rcvd is None  # no close frame: the client reports 1006
    assert server.protocol_errors == []


async def test_a_bug_in_the_fake_fails_loudly(socket_enabled: None) -> None:
    def broken(conn: FakeGeminiConnection) -> ScriptedTurn:
        raise LookupError("a scripting mistake")

    fake = FakeGeminiLiveServer()
    fake.responder = broken
    await fake.start()
    async with session(fake) as (client, _):
        await client.say("hi")
        assert await client.recv_closed() == (1011, "fake server bug")
    with pytest.raises(RuntimeError, match="the fake Gemini Live server failed") as failed:
        await fake.stop()
    assert isinstance(failed.value.__cause__, LookupError)


# -- pacing ------------------------------------------------------------------------

# One second of the model's voice: 25 chunks of the fake's default 40 ms.
ONE_SECOND = speech_like(1.0, OUTPUT_RATE, seed=7)


def audio_messages(messages: list[dict[str, Any]]) -> int:
    return sum(1 for message in messages if audio_of([message]))


async def audio_chunks(client: Client) -> AsyncIterator[None]:
    """Once per audio chunk of the client's current turn, until the turn is complete."""
    while kind(message := await client.recv()) != "turnComplete":
        if audio_of([message]):
            yield None


@contextlib.asynccontextmanager
async def racing(**pacing: ModelPacing) -> AsyncIterator[dict[str, AsyncIterator[None]]]:
    """One server per pacing, each asked at once for the same one-second reply."""
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, Client] = {}
        for name, paced in pacing.items():
            server = await stack.enter_async_context(FakeGeminiLiveServer())
            server.pacing = paced
            server.add_response(ScriptedTurn(SpeechPart("One second of speech.", ONE_SECOND)))
            clients[name], _ = await stack.enter_async_context(session(server))
        for client in clients.values():
            await client.say("Talk for a second.")
        yield {name: audio_chunks(client) for name, client in clients.items()}


async def test_hold_lets_exactly_one_audio_chunk_out_until_released(
    server: FakeGeminiLiveServer,
) -> None:
    hold = Hold()
    server.pacing = ModelPacing(hold=hold)
    server.add_response(ScriptedTurn(SpeechPart("Held after its first chunk.", ONE_SECOND)))
    async with session(server) as (client, conn):
        await client.say("Talk for a second.")
        await hold.wait_reached()
        # The fake waits at the hold: what it sent so far is all the client gets until
        # the release.
        before = [await client.recv() for _ in conn.sent[len(client.messages) :]]
        assert audio_messages(before) == 1
        assert (
            audio_of(before) == conn.turns[0].pcm == ONE_SECOND[: len(ONE_SECOND) // RACED_CHUNKS]
        )
        assert text_of(before, "outputTranscription")

        hold.set()
        after = await client.recv_until(is_kind("turnComplete"))
        assert audio_messages(after) == RACED_CHUNKS - 1
        assert audio_of(before + after) == ONE_SECOND
        assert conn.turns[0].status == "completed"
    assert server.protocol_errors == []


async def test_speed_is_relative_to_real_time(socket_enabled: None) -> None:
    await check_speed_is_relative_to_real_time(racing)


async def test_first_audio_waits_for_the_models_latency(socket_enabled: None) -> None:
    await check_first_audio_waits_for_the_models_latency(racing)


async def test_wait_helpers(server: FakeGeminiLiveServer) -> None:
    async with session(server) as (client, conn):
        await client.send({"realtime_input": {"text": "hello"}})
        message = await conn.wait_for_message("realtimeInput", lambda m: m.get("text") == "hello")
        assert message == {"realtimeInput": {"text": "hello"}}
        assert conn.received[-1] == {"realtime_input": {"text": "hello"}}
        await conn.wait_idle()
        assert conn.turns[0].status == "completed"
        await client.recv_until(is_kind("turnComplete"))
        with pytest.raises(AssertionError, match="timed out"):
            await conn.wait_for_message("toolResponse", timeout=0.01)
    assert server.protocol_errors == []
