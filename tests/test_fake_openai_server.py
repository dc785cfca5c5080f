"""Tests of the fake OpenAI Realtime server, driven by a bare websockets client.

The client here is deliberately not the project's: it proves the fake speaks
the GA protocol on its own terms. Every event it receives is validated
against the SDK's `RealtimeServerEvent` union, independently of the fake's
own check before sending.
"""

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
import contextlib
import json
from typing import Any

from openai.types.realtime import RealtimeServerEvent
import pydantic
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.fakes.audio_samples import (
    VAD_RMS_THRESHOLD,
    duration_ms,
    rms,
    silence,
    speech_like,
    tone,
    utterance,
)
from tests.fakes.loopback import ModelPacing
from tests.fakes.openai_realtime import (
    FakeConnection,
    FakeOpenAIRealtimeServer,
    FunctionCallItem,
    ScriptedResponse,
    SpeechItem,
    TextItem,
)
from tests.pacing_helpers import (
    RACED_CHUNKS,
    Hold,
    check_first_audio_waits_for_the_models_latency,
    check_speed_is_relative_to_real_time,
)

SERVER_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RealtimeServerEvent)
MODEL = "gpt-realtime"


class Client:
    """A plain GA client: JSON over a websocket, nothing more."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(event))

    async def recv(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), 5))
        SERVER_EVENT.validate_python(event)
        self.events.append(event)
        return event

    async def recv_until(
        self, event_type: str, predicate: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """Every event up to and including the first matching one."""
        received = []
        while True:
            event = await self.recv()
            received.append(event)
            if event["type"] == event_type and (predicate is None or predicate(event)):
                return received

    async def append_audio(self, pcm: bytes, chunk_ms: int = 20) -> None:
        step = chunk_ms * 48
        for start in range(0, len(pcm), step):
            chunk = base64.b64encode(pcm[start : start + step]).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": chunk})


@pytest.fixture
async def server(socket_enabled: None) -> AsyncIterator[FakeOpenAIRealtimeServer]:
    async with FakeOpenAIRealtimeServer() as fake:  # stop() raises if the fake failed
        yield fake


@contextlib.asynccontextmanager
async def session(
    server: FakeOpenAIRealtimeServer, *, key: str = FakeOpenAIRealtimeServer.API_KEY
) -> AsyncIterator[tuple[Client, FakeConnection]]:
    """A connected client past `session.created`, and the server's side of it."""
    async with connect(
        f"{server.url}/realtime?model={MODEL}",
        additional_headers={"Authorization": f"Bearer {key}"},
        max_size=None,
    ) as ws:
        client = Client(ws)
        assert (await client.recv())["type"] == "session.created"
        yield client, await server.wait_for_connection(len(server.connections))


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def without_deltas(events: list[dict[str, Any]]) -> list[str]:
    """Event types with each run of repeated types collapsed to one."""
    collapsed: list[str] = []
    for kind in types(events):
        if not collapsed or collapsed[-1] != kind:
            collapsed.append(kind)
    return collapsed


def audio_of(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )


# -- connecting ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "model", "code", "close"),
    [
        ("sk-wrong-key", MODEL, "invalid_api_key", (3000, "invalid_request_error.invalid_api_key")),
        (None, MODEL, None, (3000, "invalid_request_error")),
        (
            FakeOpenAIRealtimeServer.API_KEY,
            "gpt-nope",
            "model_not_found",
            (4004, "invalid_request_error.model_not_found"),
        ),
    ],
)
async def test_bad_setup_is_an_error_event_then_a_close(
    server: FakeOpenAIRealtimeServer,
    key: str | None,
    model: str,
    code: str | None,
    close: tuple[int, str],
) -> None:
    """Like api.openai.com: the upgrade succeeds, then one error and a close."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with connect(f"{server.url}/realtime?model={model}", additional_headers=headers) as ws:
        client = Client(ws)
        error = (await client.recv())["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error", code)
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == close
    assert server.connections == []


async def test_azure_path_rejects_a_bad_key_at_the_handshake(
    server: FakeOpenAIRealtimeServer,
) -> None:
    with pytest.raises(InvalidStatus) as rejected:
        async with connect(
            f"{server.azure_url}/realtime?model={MODEL}", additional_headers={"api-key": "nope"}
        ):
            pass
    assert rejected.value.response.status_code == 401
    assert json.loads(rejected.value.response.body)["error"]["code"] == "401"

    async with connect(
        f"{server.azure_url}/realtime?model={MODEL}",
        additional_headers={"api-key": FakeOpenAIRealtimeServer.API_KEY},
    ) as ws:
        assert (await Client(ws).recv())["type"] == "session.created"
    assert server.connections[0].azure


async def test_handshake_failures_can_be_injected(server: FakeOpenAIRealtimeServer) -> None:
    server.reject_connections_with_status(503, times=1)
    with pytest.raises(InvalidStatus) as rejected:
        async with session(server):
            pass
    assert rejected.value.response.status_code == 503
    async with session(server) as (_, conn):
        assert conn.model == MODEL


# -- session -------------------------------------------------------------------


async def test_session_update_merges_and_echoes_the_full_session(
    server: FakeOpenAIRealtimeServer,
) -> None:
    async with session(server) as (client, conn):
        created = client.events[0]["session"]
        assert created["model"] == MODEL
        assert created["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        tool = {"type": "function", "name": "HassTurnOn", "parameters": {"type": "object"}}
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "instructions": "Be brief.",
                    "tools": [tool],
                    "audio": {
                        "input": {"turn_detection": {"type": "semantic_vad"}},
                        "output": {"voice": "marin"},
                    },
                },
            }
        )
        updated = (await client.recv())["session"]
        assert updated == conn.session
        assert updated["instructions"] == "Be brief."
        assert updated["tools"] == [tool]
        assert updated["audio"]["output"] == {
            "format": {"type": "audio/pcm", "rate": 24000},
            "voice": "marin",
            "speed": 1.0,
        }
        # A new VAD type replaces the old object and gets its own defaults.
        assert updated["audio"]["input"]["turn_detection"] == {
            "type": "semantic_vad",
            "eagerness": "auto",
            "create_response": True,
            "interrupt_response": True,
        }

        # The voice is locked once the model has spoken.
        await client.send({"type": "response.create"})
        await client.recv_until("response.done")
        await client.send(
            {
                "type": "session.update",
                "event_id": "evt_voice",
                "session": {"type": "realtime", "audio": {"output": {"voice": "cedar"}}},
            }
        )
        error = (await client.recv_until("error"))[-1]["error"]
        assert (error["code"], error["event_id"]) == ("cannot_update_voice", "evt_voice")
    assert server.protocol_errors == []


# -- a spoken turn -------------------------------------------------------------


async def test_spoken_turn_with_server_vad(server: FakeOpenAIRealtimeServer) -> None:
    reply = tone(0.5)
    server.add_input_transcript("turn on the kitchen light")
    server.add_response(ScriptedResponse(SpeechItem("Done, the light is on.", pcm=reply)))
    async with session(server) as (client, conn):
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}},
                },
            }
        )
        await client.recv_until("session.updated")
        await client.append_audio(utterance(1.0, lead_silence_s=0.5, tail_silence_s=0.8))
        events = await client.recv_until("response.done")
        events.append(await client.recv())

        assert without_deltas(events) == [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
            "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.completed",
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
            *["response.output_audio_transcript.delta", "response.output_audio.delta"] * 5,
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
            "rate_limits.updated",
        ]
        started, stopped, committed, user_item = events[0], events[1], events[2], events[3]
        # Speech began at 500 ms; 300 ms of prefix padding is included.
        assert started["audio_start_ms"] == 200
        # 500 ms lead + 1 s speech + 500 ms of silence to decide the turn ended.
        assert stopped["audio_end_ms"] == pytest.approx(2000, abs=40)
        assert started["item_id"] == stopped["item_id"] == committed["item_id"]
        assert user_item["item"]["content"] == [{"type": "input_audio", "transcript": None}]
        assert duration_ms(conn.input_audio[committed["item_id"]]) == pytest.approx(1800, abs=40)

        transcript = "".join(
            e["delta"]
            for e in events
            if e["type"] == "conversation.item.input_audio_transcription.delta"
        )
        assert transcript == "turn on the kitchen light"
        assert conn.last_user_text() == "turn on the kitchen light"

        # The audio decodes to exactly the scripted PCM, and the record agrees.
        assert audio_of(events) == reply == conn.responses[0].pcm
        spoken = "".join(
            e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"
        )
        assert spoken == "Done, the light is on."
        done = next(e for e in events if e["type"] == "response.done")["response"]
        assert done["status"] == "completed"
        assert done["usage"]["output_token_details"]["audio_tokens"] > 0
        assert done["output"][0]["content"] == [
            {"type": "output_audio", "transcript": "Done, the light is on."}
        ]
        assert conn.responses[0].trigger == "vad"
        assert [item["role"] for item in conn.items] == ["user", "assistant"]
        # Nothing reached the client that the fake did not validate and record.
        assert conn.sent == client.events
    assert server.protocol_errors == []


async def test_delayed_transcription_interleaves_with_the_response(
    server: FakeOpenAIRealtimeServer,
) -> None:
    server.transcription_delay_s = 0.02
    server.chunk_delay_s = 0.01
    server.add_response(ScriptedResponse(SpeechItem("A long answer " * 2)))
    async with session(server) as (client, conn):
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {
                            "transcription": {"model": "whisper-1"},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 200},
                        }
                    },
                },
            }
        )
        await client.recv_until("session.updated")
        await client.append_audio(utterance(0.5, tail_silence_s=0.3))
        events = await client.recv_until("response.done")
        kinds = types(events)
        completed = kinds.index("conversation.item.input_audio_transcription.completed")
        assert kinds.index("response.created") < completed < kinds.index("response.done")
        # whisper-1 sends the whole transcript as one delta and bills by duration.
        assert kinds.count("conversation.item.input_audio_transcription.delta") == 1
        assert events[completed]["usage"]["type"] == "duration"
        assert conn.last_user_text() == "Hello."
    assert server.protocol_errors == []


async def test_manual_turns_commit_and_clear(server: FakeOpenAIRealtimeServer) -> None:
    async with session(server) as (client, conn):
        await client.send(
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
            }
        )
        await client.recv_until("session.updated")
        await client.append_audio(speech_like(0.05))
        await client.send({"type": "input_audio_buffer.commit", "event_id": "evt_c"})
        error = (await client.recv())["error"]
        assert (error["code"], error["event_id"]) == ("input_audio_buffer_commit_empty", "evt_c")
        assert "buffer only has 50.00ms" in error["message"]

        await client.append_audio(speech_like(0.2))
        await client.send({"type": "input_audio_buffer.commit"})
        events = [await client.recv() for _ in range(3)]
        assert types(events) == [
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
        ]
        assert duration_ms(conn.input_audio[events[0]["item_id"]]) == pytest.approx(250)

        await client.append_audio(speech_like(0.3))
        await client.send({"type": "input_audio_buffer.clear"})
        assert (await client.recv())["type"] == "input_audio_buffer.cleared"
        assert conn.responses == []
        assert conn.audio_ms_received == pytest.approx(550)
    assert server.protocol_errors == []


# -- responses -------------------------------------------------------------------


async def test_function_call_then_answer_from_its_output(server: FakeOpenAIRealtimeServer) -> None:
    server.add_response(ScriptedResponse(FunctionCallItem("HassTurnOn", {"name": "kitchen"})))

    def answer(conn: FakeConnection) -> ScriptedResponse:
        output = next(
            item["output"] for item in conn.items if item["type"] == "function_call_output"
        )
        return ScriptedResponse(SpeechItem(f"Result: {output}"))

    server.responder = answer
    async with session(server) as (client, _):
        await client.send({"type": "response.create", "event_id": "evt_1"})
        events = await client.recv_until("response.done")
        assert without_deltas(events) == [
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
        assert len(deltas) > 1
        done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert "".join(d["delta"] for d in deltas) == done["arguments"] == '{"name": "kitchen"}'
        assert done["call_id"].startswith("call_")
        assert done["name"] == "HassTurnOn"
        assert events[1]["item"]["call_id"] == done["call_id"]

        await client.recv_until("rate_limits.updated")
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": done["call_id"],
                    "output": "ok",
                },
            }
        )
        added = await client.recv()
        assert added["type"] == "conversation.item.added"
        assert added["previous_item_id"] == done["item_id"]
        assert (await client.recv())["type"] == "conversation.item.done"
        await client.send({"type": "response.create"})
        events = await client.recv_until("response.done")
        spoken = "".join(
            e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"
        )
        assert spoken == "Result: ok"
    assert server.protocol_errors == []


async def test_text_responses_and_out_of_band(server: FakeOpenAIRealtimeServer) -> None:
    server.add_response(ScriptedResponse(TextItem("Two words.")))
    async with session(server) as (client, conn):
        await client.send(
            {
                "type": "response.create",
                "response": {"output_modalities": ["text"], "conversation": "none"},
            }
        )
        events = await client.recv_until("response.done")
        assert without_deltas(events) == [
            "response.created",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.done",
        ]
        assert events[-1]["response"]["conversation_id"] is None
        assert conn.items == []
    assert server.protocol_errors == []


async def test_one_active_response_at_a_time(server: FakeOpenAIRealtimeServer) -> None:
    server.chunk_delay_s = 0.01
    server.add_response(ScriptedResponse(SpeechItem("A long answer " * 2)))
    async with session(server) as (client, conn):
        await client.send({"type": "response.create"})
        await client.recv_until("response.created")
        await client.send({"type": "response.create", "event_id": "evt_2"})
        events = await client.recv_until("rate_limits.updated")
        errors = [e["error"] for e in events if e["type"] == "error"]
        assert [(e["code"], e["event_id"]) for e in errors] == [
            ("conversation_already_has_active_response", "evt_2")
        ]
        assert types(events).count("response.done") == 1
        await conn.wait_idle()
        assert len(conn.responses) == 1
    assert server.protocol_errors == []


async def test_response_cancel(server: FakeOpenAIRealtimeServer) -> None:
    server.chunk_delay_s = 0.01
    server.add_response(ScriptedResponse(SpeechItem("A long answer " * 5)))
    async with session(server) as (client, conn):
        await client.send({"type": "response.cancel", "event_id": "evt_idle"})
        error = (await client.recv())["error"]
        assert (error["code"], error["event_id"]) == ("response_cancel_not_active", "evt_idle")

        await client.send({"type": "response.create"})
        before = await client.recv_until("response.output_audio.delta")
        await client.send({"type": "response.cancel"})
        events = before + await client.recv_until("response.done")
        done = events[-1]["response"]
        assert done["status"] == "cancelled"
        assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        assert done["output"][0]["status"] == "incomplete"
        record = conn.responses[0]
        assert (record.status, record.reason) == ("cancelled", "client_cancelled")
        assert audio_of(events) == record.pcm
        assert 0 < record.items[0].audio_ms < 3500
    assert server.protocol_errors == []


async def test_barge_in_cancels_and_truncation_is_validated(
    server: FakeOpenAIRealtimeServer,
) -> None:
    server.chunk_delay_s = 0.01
    server.add_response(ScriptedResponse(SpeechItem("Interrupt me", pcm=tone(2.0))))
    async with session(server) as (client, conn):
        await client.send({"type": "response.create"})
        before = await client.recv_until("response.output_audio.delta")
        await client.append_audio(speech_like(0.2))
        events = before + await client.recv_until("response.done")
        kinds = types(events)
        assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.done")
        assert without_deltas(events)[-6:] == [
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        assert events[-1]["response"]["status_details"] == {
            "type": "cancelled",
            "reason": "turn_detected",
        }
        sent = conn.responses[0].items[0]
        assert audio_of(events) == sent.pcm
        heard_ms = int(sent.audio_ms)
        assert 0 < heard_ms < 2000

        async def truncate(audio_end_ms: int, item_id: str = sent.item_id) -> dict[str, Any]:
            await client.send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": item_id,
                    "content_index": 0,
                    "audio_end_ms": audio_end_ms,
                }
            )
            return await _next_reply(client)

        error = (await truncate(heard_ms + 500))["error"]
        assert error["message"] == (
            f"Audio content of {heard_ms}ms is already shorter than {heard_ms + 500}ms"
        )
        assert (await truncate(-1))["error"]["code"] == "integer_below_min_value"
        assert (await truncate(10, "item_unknown"))["error"]["code"] == (
            "item_truncate_invalid_item_id"
        )
        truncated = await truncate(heard_ms // 2)
        assert truncated["type"] == "conversation.item.truncated"
        assert conn.truncations == [(sent.item_id, heard_ms // 2)]
        # Cut again: only shorter, its audio now ends where it was cut.
        error = (await truncate(heard_ms // 2 + 1))["error"]
        assert error["message"] == (
            f"Audio content of {heard_ms // 2}ms is already shorter than {heard_ms // 2 + 1}ms"
        )
        assert (await truncate(heard_ms // 4))["type"] == "conversation.item.truncated"
    assert server.protocol_errors == []


async def _next_reply(client: Client) -> dict[str, Any]:
    """The next event that answers a client request (skipping VAD and rate limits)."""
    while True:
        event = await client.recv()
        if not event["type"].startswith(("input_audio_buffer.", "rate_limits.")):
            return event


async def test_scripted_failures(server: FakeOpenAIRealtimeServer) -> None:
    server.fail_next_responses_with("server_error", "The server had an error.", "server_error")
    server.send_rate_limit_error()
    async with session(server) as (client, _):
        await client.send({"type": "response.create", "event_id": "evt_f"})
        error = (await client.recv())["error"]
        assert (error["type"], error["event_id"]) == ("server_error", "evt_f")

        await client.send({"type": "response.create"})
        events = await client.recv_until("rate_limits.updated")
        assert types(events) == ["response.created", "response.done", "rate_limits.updated"]
        details = events[1]["response"]["status_details"]
        assert details["error"]["code"] == "rate_limit_exceeded"
        assert events[2]["rate_limits"][0]["remaining"] == 0
    assert server.protocol_errors == []


# -- conversation items ------------------------------------------------------------


async def test_conversation_items(server: FakeOpenAIRealtimeServer) -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    image_url = "data:image/png;base64," + base64.b64encode(png).decode()
    async with session(server) as (client, conn):
        for item in (
            {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "S"}]},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Earlier reply"}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": image_url},
                ],
            },
        ):
            await client.send({"type": "conversation.item.create", "item": item})
            added, done = await client.recv(), await client.recv()
            assert (added["type"], done["type"]) == (
                "conversation.item.added",
                "conversation.item.done",
            )
            assert added["item"]["id"].startswith("item_")
        assert conn.images == [("image/png", png)]
        assert [item["role"] for item in conn.items] == ["system", "assistant", "user"]
        assert conn.last_user_text() == "What is this?"

        await client.send({"type": "conversation.item.delete", "item_id": conn.items[0]["id"]})
        assert (await client.recv())["type"] == "conversation.item.deleted"
        await client.send({"type": "conversation.item.delete", "item_id": "item_gone"})
        assert (await client.recv())["error"]["code"] == "item_delete_invalid_item_id"
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "https://x/y.png"}],
                },
            }
        )
        assert (await client.recv())["error"]["param"] == "item.content[0].image_url"
        assert len(conn.items) == 2
    assert server.protocol_errors == []


# -- protocol violations -------------------------------------------------------------


def _tool(name: str) -> dict[str, Any]:
    return {"type": "function", "name": name, "parameters": {"type": "object"}}


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ({"type": "response.audio.delta"}, "invalid_value", "type"),
        ({"session": {}}, "missing_required_parameter", "type"),
        (
            {"type": "session.update", "session": {"type": "realtime", "modalities": ["audio"]}},
            "unknown_parameter",
            "session.modalities",
        ),
        (
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [{"type": "text"}]},
            },
            "invalid_value",
            "item.content[0].type",
        ),
        (
            {"type": "conversation.item.create", "item": {"type": "function_call_output"}},
            "missing_required_parameter",
            "item.call_id",
        ),
        (
            {"type": "session.update", "session": {"type": "realtime", "tools": [_tool("a" * 65)]}},
            "string_above_max_length",
            "session.tools[0].name",
        ),
        (
            {"type": "response.create", "response": {"tools": [_tool("x"), _tool("script.x")]}},
            "invalid_value",
            "response.tools[1].name",
        ),
    ],
)
async def test_invalid_client_events_are_errors_and_recorded(
    server: FakeOpenAIRealtimeServer, event: dict[str, Any], code: str, param: str
) -> None:
    async with session(server) as (client, conn):
        await client.send({**event, "event_id": "evt_bad"})
        error = (await client.recv())["error"]
        assert (error["type"], error["code"], error["param"], error["event_id"]) == (
            "invalid_request_error",
            code,
            param,
            "evt_bad",
        )
        assert conn.received[-1]["event_id"] == "evt_bad"
    assert len(server.protocol_errors) == 1


async def test_malformed_frames_and_beta_headers_are_protocol_errors(
    server: FakeOpenAIRealtimeServer,
) -> None:
    async with connect(
        f"{server.url}/realtime?model={MODEL}",
        additional_headers={
            "Authorization": f"Bearer {FakeOpenAIRealtimeServer.API_KEY}",
            "OpenAI-Beta": "realtime=v1",
        },
    ) as ws:
        client = Client(ws)
        await client.recv()
        await ws.send("{not json")
        assert (await client.recv())["error"]["code"] == "invalid_json"
        await ws.send(b"\x00\x01")
        assert (await client.recv())["error"]["code"] == "invalid_event"
    assert len(server.protocol_errors) == 3
    assert "OpenAI-Beta" in server.protocol_errors[0]


# -- faults ------------------------------------------------------------------------


async def test_raw_injection_and_abrupt_close(server: FakeOpenAIRealtimeServer) -> None:
    async with session(server) as (client, conn):
        await server.inject(conn, '{"type": "response.future_event"}')
        assert json.loads(await client.ws.recv()) == {"type": "response.future_event"}
        conn.close_abruptly()
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.rcvd is None  # no close frame: the client reports 1006


async def test_session_expiry(server: FakeOpenAIRealtimeServer) -> None:
    server.session_ttl_s = 0.05
    async with session(server) as (client, _):
        error = (await client.recv())["error"]
        assert error["code"] == "session_expired"
        assert error["message"] == "Your session hit the maximum duration of 60 minutes."
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001


async def test_wait_helpers(server: FakeOpenAIRealtimeServer) -> None:
    async with session(server) as (client, conn):
        await client.send({"type": "response.create", "event_id": "evt_w"})
        event = await conn.wait_for_event("response.create")
        assert event["event_id"] == "evt_w"
        await conn.wait_idle()
        assert conn.responses[0].status == "completed"
        # Read what was sent: a client that stops reading cannot close promptly.
        await client.recv_until("rate_limits.updated")
        with pytest.raises(AssertionError, match="timed out"):
            await conn.wait_for_event("response.cancel", timeout=0.01)


# -- pacing ------------------------------------------------------------------------

# One second of the model's voice: 25 chunks of the fake's default 40 ms.
ONE_SECOND = speech_like(1.0, seed=7)


def audio_deltas(events: list[dict[str, Any]]) -> int:
    return types(events).count("response.output_audio.delta")


async def audio_chunks(client: Client) -> AsyncIterator[None]:
    """Once per audio delta of the client's current response, until it is done."""
    while (event := await client.recv())["type"] != "response.done":
        if event["type"] == "response.output_audio.delta":
            yield None


@contextlib.asynccontextmanager
async def racing(**pacing: ModelPacing) -> AsyncIterator[dict[str, AsyncIterator[None]]]:
    """One server per pacing, each asked at once for the same one-second reply."""
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, Client] = {}
        for name, paced in pacing.items():
            server = await stack.enter_async_context(FakeOpenAIRealtimeServer())
            server.pacing = paced
            server.add_response(ScriptedResponse(SpeechItem("One second of speech.", ONE_SECOND)))
            clients[name], _ = await stack.enter_async_context(session(server))
        for client in clients.values():
            await client.send({"type": "response.create"})
        yield {name: audio_chunks(client) for name, client in clients.items()}


async def test_hold_lets_exactly_one_audio_chunk_out_until_released(
    server: FakeOpenAIRealtimeServer,
) -> None:
    hold = Hold()
    server.pacing = ModelPacing(hold=hold)
    server.add_response(ScriptedResponse(SpeechItem("Held after its first chunk.", ONE_SECOND)))
    async with session(server) as (client, conn):
        await client.send({"type": "response.create"})
        await hold.wait_reached()
        # The fake waits at the hold: everything before this marker's answer is all the
        # client gets until the release.
        await client.send({"type": "input_audio_buffer.clear"})
        before = await client.recv_until("input_audio_buffer.cleared")
        assert audio_deltas(before) == 1
        assert (
            audio_of(before)
            == conn.responses[0].pcm
            == ONE_SECOND[: len(ONE_SECOND) // RACED_CHUNKS]
        )
        assert "response.output_audio_transcript.delta" in types(before)

        hold.set()
        after = await client.recv_until("response.done")
        assert audio_deltas(after) == RACED_CHUNKS - 1
        assert audio_of(before + after) == ONE_SECOND
        assert after[-1]["response"]["status"] == "completed"
    assert server.protocol_errors == []


async def test_speed_is_relative_to_real_time(socket_enabled: None) -> None:
    await check_speed_is_relative_to_real_time(racing)


async def test_first_audio_waits_for_the_models_latency(socket_enabled: None) -> None:
    await check_first_audio_waits_for_the_models_latency(racing)


# -- audio samples -----------------------------------------------------------------


def test_audio_samples_sit_far_from_the_vad_threshold() -> None:
    speech = speech_like(1.0)
    frames = [rms(speech[i : i + 960]) for i in range(0, len(speech), 960)]
    assert min(frames) > 4 * VAD_RMS_THRESHOLD
    assert rms(silence(1.0)) < VAD_RMS_THRESHOLD / 10
    assert rms(tone(0.1)) > 4 * VAD_RMS_THRESHOLD
    assert duration_ms(utterance(1.0, lead_silence_s=0.2, tail_silence_s=0.3)) == 1500
    assert speech_like(0.5) == speech_like(0.5)  # deterministic, so tests can compare bytes
