"""One test-facing view of the two fake realtime servers, for suites that run on both.

The Home Assistant suites (conversation agent, Assist pipeline) script the model
and inspect what it was sent in these neutral terms; `OpenAIFake` and
`GeminiFake` translate them to `tests.fakes.openai_realtime` and
`tests.fakes.gemini_live`, which stay the protocol-faithful part. Nothing here
adds behaviour: every method is a thin read or write of the wrapped fake.

Scripting is queued per model reply, in the order replies happen, whoever
triggers them (a spoken turn, a typed one, the tool results a reply asked for):

    fake.hear("Turn on the kitchen light.")       # the next spoken turn's transcript
    fake.say_then_call("Sure.", ("intent__HassTurnOn", {"name": "Kitchen light"}))
    fake.say("The kitchen light is on.")          # the reply after the tool results

A connection is a `FakeSession`; `fake.connections` includes the one Home
Assistant opens (and closes) at setup to check the key.

Faults are switched on the same way for both providers (`fake.drop_mid_reply()`,
`fake.fail_next_reply("quota")`…); each applies once, where the provider's own
protocol would show it.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
import json
from typing import Any, Literal, Protocol

from homeassistant.const import CONF_API_KEY, CONF_URL

from custom_components.realtime_assist.const import CONF_PROVIDER
from custom_components.realtime_assist.realtime.events import Usage
from custom_components.realtime_assist.realtime.providers import PROVIDER_GEMINI, PROVIDER_OPENAI
from tests.fakes import gemini_live, openai_realtime
from tests.fakes.loopback import LoopbackServer, ModelPacing, wait_until

type Call = tuple[str, dict[str, Any]]
"""A tool call the model makes: (tool name, arguments)."""

type Failure = Literal["rate_limit", "quota", "server"]
"""How the provider fails a reply (`FakeProvider.fail_next_reply`)."""


@dataclass(frozen=True)
class Reply:
    """One reply of the model: what it says (audio, or text in a text-only session),
    then the tools it calls, if any, then what it goes on saying meanwhile (`then`:
    only where calls run in the background, Gemini 3.8; otherwise the model waits
    for their results)."""

    text: str | None = None
    pcm: bytes | None = None
    """The exact PCM16 24 kHz audio of `text`; None: the fake synthesises some."""
    calls: tuple[Call, ...] = ()
    then: str | None = None


class FakeSession(Protocol):
    """One connection to a fake server, and what went over it."""

    @property
    def instructions(self) -> str:
        """The system instructions the session was configured with."""

    @property
    def tool_names(self) -> set[str]:
        """The functions the session offered the model."""

    @property
    def close_code(self) -> int | None:
        """The websocket close code; None while open."""

    async def wait_closed(self) -> None:
        """Until the connection has closed."""

    def last_user_text(self) -> str | None:
        """The newest user words: typed, or the transcript of a spoken turn."""

    def user_texts(self) -> list[str]:
        """Every user message (typed or transcribed), oldest first; tool results excluded."""

    def reply_pcm(self, n: int) -> bytes:
        """The exact PCM16 24 kHz the n-th reply (0-based) on this connection sent."""

    def reply_transcripts(self) -> list[str]:
        """What each reply on this connection said (or wrote), as far as it got."""

    def is_replying(self) -> bool:
        """The model is generating a reply (or waits for the results of its tool calls)."""

    def tool_results(self) -> list[dict[str, Any]]:
        """The results the client sent for tool calls, in order."""

    def last_input_was_tool_result(self) -> bool:
        """The model's newest input is a tool result (it now continues after its calls)."""

    @property
    def audio_ms_received(self) -> float:
        """How much user audio the connection received."""

    def audio_received(self) -> bytes:
        """The exact user audio the connection received (PCM16 at its input rate), in order."""

    def audio_messages(self) -> list[bytes]:
        """The user audio of each message that carried some, in order."""

    async def wait_for_audio_ms(self, ms: float) -> None:
        """Until the connection has received this much user audio."""

    def got_only_configuration(self) -> bool:
        """The client sent nothing but the session's configuration (no input yet)."""

    @property
    def output_modality(self) -> str:
        """What the session is configured to answer with: `audio` or `text`."""

    def reply_modalities(self) -> list[str]:
        """What each reply on this connection was made in: `audio` or `text`."""

    def reported_usage(self) -> Counter[str]:
        """The tokens the connection's usage reports add up to, by kind (`USAGE_KINDS`)."""

    def transcription_hints(self) -> tuple[list[str], str]:
        """The language(s) and the vocabulary (as text) the input transcription was given."""


USAGE_KINDS = ("input_text", "input_audio", "input_image", "cached", "output_text", "output_audio")
"""What `FakeSession.reported_usage` counts (cached input is part of the inputs)."""


def usage_kinds(usage: Usage) -> Counter[str]:
    """What the client counted, in `reported_usage` terms, to compare the two."""
    return Counter(
        input_text=usage.input_text,
        input_audio=usage.input_audio,
        input_image=usage.input_image,
        cached=usage.cached_tokens,
        output_text=usage.output_text,
        output_audio=usage.output_audio,
    )


class FakeProvider(Protocol):
    """A fake realtime server, scripted and inspected in provider-neutral terms."""

    name: str
    """The provider's config entry value (`openai`, `gemini`)."""

    def entry_data(self) -> dict[str, Any]:
        """Parent entry data pointing at this fake, as the config flow stores it."""

    @property
    def chunk_delay_s(self) -> float:
        """Pause between the model's output chunks (0: as fast as the socket goes)."""

    @chunk_delay_s.setter
    def chunk_delay_s(self, value: float) -> None: ...

    @property
    def pacing(self) -> ModelPacing:
        """How fast the model generates its replies (see `ModelPacing`)."""

    def hear(self, transcript: str) -> None:
        """What the user says in the next spoken turn (the provider's transcript of it)."""

    def say(self, text: str, pcm: bytes | None = None) -> None:
        """Queue a reply that says `text` (with exactly `pcm`, if given)."""

    def say_then_call(self, text: str | None, *calls: Call, then: str | None = None) -> None:
        """Queue a reply that says `text` (None: nothing), then calls the tools in one batch
        (and says `then` while they run: background calls only)."""

    def mishear(self, name: str, misheard: str) -> None:
        """Transcription writes `misheard` for `name` unless the session's vocabulary has it."""

    def fail_model_listing(self, status: int | None) -> None:
        """The model list is answered with this HTTP status (None: listed again)."""

    def respond_with(self, responder: Callable[[FakeSession], Reply | None] | None) -> None:
        """Decide replies once the queue is empty; None from `responder` means "OK."."""

    @property
    def connections(self) -> list[FakeSession]:
        """Every accepted connection, oldest first."""

    async def wait_for_connection(self, n: int) -> FakeSession:
        """The n-th accepted connection (1-based), waiting up to 5 s for it."""

    @property
    def protocol_errors(self) -> list[str]:
        """Client messages the fake found invalid; tests end by asserting none."""

    # -- fault switches: each applies once ---------------------------------------

    def drop_mid_reply(self) -> None:
        """Drop the connection (no close frame) right after the next reply's first audio."""

    def drop_after_tool_call(self) -> None:
        """Drop the connection once the model has asked for tools, before any result."""

    def drop_mid_user_speech(self) -> None:
        """Drop the connection as soon as the provider's VAD hears the user start speaking."""

    def burst_next_user_turn(self) -> None:
        """The user's speech start and stop, their transcript and the model's tool calls
        reach the client together, in one read (as under network load)."""

    def never_transcribe_next_turn(self) -> None:
        """The next spoken turn gets no transcript of the user at all."""

    def fail_next_transcription(self) -> None:
        """The next spoken turn's transcription fails (Gemini: no transcript comes)."""

    def send_garbage_before_next_reply(self) -> None:
        """Malformed JSON, non-objects, unknown and broken messages before the next reply."""

    def corrupt_next_audio(self) -> None:
        """The next reply's first audio chunk is unusable (bad base64 / an audio rate of 0)."""

    def fail_next_reply(self, failure: Failure) -> None:
        """The next reply fails with a rate limit, exhausted quota or a server error."""

    def refuse_resumption_handles(self) -> None:
        """Resuming a session is refused, so a reconnect starts afresh (OpenAI always does)."""

    def pause_reading(self) -> None:
        """The server stops reading what the client sends (until `resume_reading`)."""

    def resume_reading(self) -> None:
        """The server reads again."""

    def hold_new_connections(self) -> None:
        """New connections wait before their setup completes (to act while one reconnects)."""

    def admit_connections(self) -> None:
        """Held and new connections complete their setup."""


class _FaultSwitches:
    """The fault switches (and scripting) both fakes implement alike."""

    server: LoopbackServer

    def mishear(self, name: str, misheard: str) -> None:
        self.server.mishearings[name] = misheard

    def fail_model_listing(self, status: int | None) -> None:
        self.server.listing_failure = status

    def drop_mid_reply(self) -> None:
        self.server.drop_mid_reply()

    def drop_after_tool_call(self) -> None:
        self.server.drop_after_tool_call()

    def drop_mid_user_speech(self) -> None:
        self.server.drop_mid_user_speech()

    def burst_next_user_turn(self) -> None:
        self.server.burst_next_user_turn()

    def never_transcribe_next_turn(self) -> None:
        self.server.never_transcribe_next_turn()

    def fail_next_transcription(self) -> None:
        self.server.fail_next_transcription()

    def send_garbage_before_next_reply(self) -> None:
        self.server.send_garbage_before_next_reply()

    def corrupt_next_audio(self) -> None:
        self.server.corrupt_next_audio()

    def pause_reading(self) -> None:
        self.server.pause_reading()

    def resume_reading(self) -> None:
        self.server.resume_reading()

    def hold_new_connections(self) -> None:
        self.server.hold_new_connections()

    def admit_connections(self) -> None:
        self.server.admit_connections()

    def revoke_key(self) -> None:
        """The key stops working: live connections drop, new ones get the bad-key refusal."""
        self.server.api_key = "revoked"
        for conn in self.server.connections:
            conn.close_abruptly()


# -- OpenAI Realtime -----------------------------------------------------------


class OpenAISession:
    """A `FakeSession` over a fake OpenAI Realtime connection."""

    def __init__(self, conn: openai_realtime.FakeConnection) -> None:
        self.conn = conn

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OpenAISession) and other.conn is self.conn

    def __hash__(self) -> int:
        return id(self.conn)

    @property
    def instructions(self) -> str:
        return str(self.conn.session["instructions"])

    @property
    def tool_names(self) -> set[str]:
        return {tool["name"] for tool in self.conn.session["tools"]}

    @property
    def close_code(self) -> int | None:
        return self.conn.ws.close_code

    async def wait_closed(self) -> None:
        await self.conn.ws.wait_closed()

    def last_user_text(self) -> str | None:
        return self.conn.last_user_text()

    def user_texts(self) -> list[str]:
        return [
            str(text)
            for item in self.conn.items
            if item["type"] == "message" and item["role"] == "user"
            for part in item["content"]
            if (text := part.get("text") or part.get("transcript"))
        ]

    def reply_pcm(self, n: int) -> bytes:
        return self.conn.responses[n].pcm

    def reply_transcripts(self) -> list[str]:
        return ["".join(item.text for item in r.items) for r in self.conn.responses]

    def is_replying(self) -> bool:
        return self.conn.active_response is not None

    def tool_results(self) -> list[dict[str, Any]]:
        return [
            json.loads(item["output"])
            for item in self.conn.items
            if item["type"] == "function_call_output"
        ]

    def last_input_was_tool_result(self) -> bool:
        return bool(self.conn.items) and self.conn.items[-1]["type"] == "function_call_output"

    @property
    def audio_ms_received(self) -> float:
        return self.conn.audio_ms_received

    def audio_received(self) -> bytes:
        return b"".join(self.audio_messages())

    def audio_messages(self) -> list[bytes]:
        return [
            base64.b64decode(event["audio"])
            for event in self.conn.received
            if event.get("type") == "input_audio_buffer.append"
        ]

    async def wait_for_audio_ms(self, ms: float) -> None:
        await _wait_for_audio_ms(self.conn, ms)

    def got_only_configuration(self) -> bool:
        return all(event.get("type") == "session.update" for event in self.conn.received)

    @property
    def output_modality(self) -> str:
        [modality] = self.conn.session["output_modalities"]
        return str(modality)

    def transcription_hints(self) -> tuple[list[str], str]:
        transcription = self.conn.session["audio"]["input"]["transcription"] or {}
        language = transcription.get("language")
        vocabulary = [*(transcription.get("keywords") or []), transcription.get("prompt") or ""]
        return ([language] if language else []), " ".join(vocabulary).strip()

    def reply_modalities(self) -> list[str]:
        """As each `response.created` said (a response may override the session's)."""
        return [
            str(modality)
            for event in self.conn.sent
            if event["type"] == "response.created"
            for modality in event["response"]["output_modalities"]
        ]

    def reported_usage(self) -> Counter[str]:
        """Every `response.done`'s `usage`."""
        counts: Counter[str] = Counter()
        for event in self.conn.sent:
            if event["type"] == "response.done" and (usage := event["response"]["usage"]):
                given, said = usage["input_token_details"], usage["output_token_details"]
                counts["input_text"] += given["text_tokens"]
                counts["input_audio"] += given["audio_tokens"]
                counts["input_image"] += given["image_tokens"]
                counts["cached"] += given["cached_tokens"]
                counts["output_text"] += said["text_tokens"]
                counts["output_audio"] += said["audio_tokens"]
        return counts


class OpenAIFake(_FaultSwitches):
    """A `FakeProvider` over `FakeOpenAIRealtimeServer`."""

    name = PROVIDER_OPENAI

    def __init__(self, server: openai_realtime.FakeOpenAIRealtimeServer) -> None:
        self.server = server

    def fail_next_reply(self, failure: Failure) -> None:
        """In the response (a failed `response.done`), as OpenAI reports these mid-turn."""
        if failure == "rate_limit":
            self.server.rate_limit_next_response()
        elif failure == "quota":
            self.server.exhaust_quota_next_response()
        else:
            self.server.server_error_next_response(in_response=True)

    def refuse_resumption_handles(self) -> None:
        """OpenAI resumes nothing: every reconnect already starts afresh."""

    def entry_data(self) -> dict[str, Any]:
        return {
            CONF_PROVIDER: self.name,
            CONF_API_KEY: self.server.api_key,
            CONF_URL: self.server.url,
        }

    @property
    def chunk_delay_s(self) -> float:
        return self.server.chunk_delay_s

    @chunk_delay_s.setter
    def chunk_delay_s(self, value: float) -> None:
        self.server.chunk_delay_s = value

    @property
    def pacing(self) -> ModelPacing:
        return self.server.pacing

    def hear(self, transcript: str) -> None:
        self.server.add_input_transcript(transcript)

    def say(self, text: str, pcm: bytes | None = None) -> None:
        self.server.add_response(self._scripted(Reply(text, pcm)))

    def say_then_call(self, text: str | None, *calls: Call, then: str | None = None) -> None:
        self.server.add_response(self._scripted(Reply(text, calls=calls, then=then)))

    def respond_with(self, responder: Callable[[FakeSession], Reply | None] | None) -> None:
        if responder is None:
            self.server.responder = None
            return

        def respond(
            conn: openai_realtime.FakeConnection,
        ) -> openai_realtime.ScriptedResponse | None:
            reply = responder(OpenAISession(conn))
            return self._scripted(reply) if reply is not None else None

        self.server.responder = respond

    @staticmethod
    def _scripted(reply: Reply) -> openai_realtime.ScriptedResponse:
        items: list[openai_realtime.OutputItem] = []
        if reply.text is not None:
            items.append(openai_realtime.SpeechItem(reply.text, reply.pcm))
        items += [openai_realtime.FunctionCallItem(name, args) for name, args in reply.calls]
        if reply.then is not None:
            items.append(openai_realtime.SpeechItem(reply.then))
        return openai_realtime.ScriptedResponse(*items)

    @property
    def connections(self) -> list[FakeSession]:
        return [OpenAISession(conn) for conn in self.server.connections]

    async def wait_for_connection(self, n: int) -> FakeSession:
        return OpenAISession(await self.server.wait_for_connection(n))

    @property
    def protocol_errors(self) -> list[str]:
        return self.server.protocol_errors


# -- Gemini Live ---------------------------------------------------------------


class GeminiSession:
    """A `FakeSession` over a fake Gemini Live connection."""

    def __init__(self, conn: gemini_live.FakeGeminiConnection) -> None:
        self.conn = conn

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GeminiSession) and other.conn is self.conn

    def __hash__(self) -> int:
        return id(self.conn)

    @property
    def instructions(self) -> str:
        parts = (self.conn.setup.get("systemInstruction") or {}).get("parts") or []
        return "".join(str(part.get("text", "")) for part in parts)

    @property
    def tool_names(self) -> set[str]:
        return {
            declaration["name"]
            for tool in self.conn.setup.get("tools", [])
            for declaration in tool.get("functionDeclarations", [])
        }

    @property
    def close_code(self) -> int | None:
        return self.conn.ws.close_code

    async def wait_closed(self) -> None:
        await self.conn.ws.wait_closed()

    def last_user_text(self) -> str | None:
        return self.conn.last_user_text()

    def user_texts(self) -> list[str]:
        """Notes the client added to the context mid-session are not the user's words."""
        return [
            str(part["text"])
            for content in self.conn.history
            if content.get("role") == "user"
            and not any(content is note for note in self.conn.context_updates)
            for part in content.get("parts", [])
            if part.get("text")
        ]

    def reply_pcm(self, n: int) -> bytes:
        return bytes(self.conn.turns[n].pcm)

    def reply_transcripts(self) -> list[str]:
        return [turn.transcript for turn in self.conn.turns]

    def is_replying(self) -> bool:
        """A turn is open and its `generationComplete` not sent yet (after it, the
        server only waits for playback before `turnComplete`)."""
        if self.conn.active_turn is None:
            return False
        for message in reversed(self.conn.sent):
            content = message.get("serverContent") or {}
            if content.get("generationComplete"):
                return False
            if "modelTurn" in content or "toolCall" in message:
                return True
        return True

    def tool_results(self) -> list[dict[str, Any]]:
        return [dict(response["response"]) for response in self.conn.tool_responses]

    def last_input_was_tool_result(self) -> bool:
        history = self.conn.history
        return bool(history) and any("functionResponse" in p for p in history[-1]["parts"])

    @property
    def audio_ms_received(self) -> float:
        return self.conn.audio_ms_received

    def audio_received(self) -> bytes:
        return b"".join(self.audio_messages())

    def audio_messages(self) -> list[bytes]:
        return [
            base64.b64decode(message["realtimeInput"]["audio"]["data"])
            for message in self.conn.messages
            if "audio" in message.get("realtimeInput", {})
        ]

    async def wait_for_audio_ms(self, ms: float) -> None:
        await _wait_for_audio_ms(self.conn, ms)

    def got_only_configuration(self) -> bool:
        return all("setup" in message for message in self.conn.received)

    @property
    def output_modality(self) -> str:
        modalities = self.conn.setup.get("generationConfig", {}).get("responseModalities")
        return str(modalities[0]).lower() if modalities else "audio"

    def reply_modalities(self) -> list[str]:
        """Gemini fixes the modality at setup: every reply is made in it."""
        return [self.output_modality for _ in self.conn.turns]

    def reported_usage(self) -> Counter[str]:
        """Every `usageMetadata` (the fake details every token it counts)."""
        counts: Counter[str] = Counter()
        for message in self.conn.sent:
            if (usage := message.get("usageMetadata")) is None:
                continue
            for entry in usage.get("promptTokensDetails", []):
                counts[f"input_{entry['modality'].lower()}"] += entry["tokenCount"]
            counts["cached"] += usage.get("cachedContentTokenCount", 0)
            for entry in usage.get("responseTokensDetails", []):
                counts[f"output_{entry['modality'].lower()}"] += entry["tokenCount"]
        return counts

    def transcription_hints(self) -> tuple[list[str], str]:
        transcription = self.conn.setup.get("inputAudioTranscription") or {}
        vocabulary = " ".join(transcription.get("customVocabulary") or [])
        return list(transcription.get("languageCodes") or []), vocabulary


class GeminiFake(_FaultSwitches):
    """A `FakeProvider` over `FakeGeminiLiveServer`."""

    name = PROVIDER_GEMINI

    def __init__(self, server: gemini_live.FakeGeminiLiveServer) -> None:
        self.server = server

    def fail_next_reply(self, failure: Failure) -> None:
        """By closing the connection, the only way the Live API reports errors."""
        self.server.fail_next_reply_with(failure)

    def refuse_resumption_handles(self) -> None:
        self.server.refuse_handles = True

    def entry_data(self) -> dict[str, Any]:
        return {
            CONF_PROVIDER: self.name,
            CONF_API_KEY: self.server.api_key,
            CONF_URL: self.server.url,
        }

    @property
    def chunk_delay_s(self) -> float:
        return self.server.chunk_delay_s

    @chunk_delay_s.setter
    def chunk_delay_s(self, value: float) -> None:
        self.server.chunk_delay_s = value

    @property
    def pacing(self) -> ModelPacing:
        return self.server.pacing

    def hear(self, transcript: str) -> None:
        self.server.add_input_transcript(transcript)

    def say(self, text: str, pcm: bytes | None = None) -> None:
        self.server.add_response(self._scripted(Reply(text, pcm)))

    def say_then_call(self, text: str | None, *calls: Call, then: str | None = None) -> None:
        self.server.add_response(self._scripted(Reply(text, calls=calls, then=then)))

    def respond_with(self, responder: Callable[[FakeSession], Reply | None] | None) -> None:
        if responder is None:
            self.server.responder = None
            return

        def respond(conn: gemini_live.FakeGeminiConnection) -> gemini_live.ScriptedTurn | None:
            reply = responder(GeminiSession(conn))
            return self._scripted(reply) if reply is not None else None

        self.server.responder = respond

    @staticmethod
    def _scripted(reply: Reply) -> gemini_live.ScriptedTurn:
        parts: list[gemini_live.ModelPart] = []
        if reply.text is not None:
            parts.append(gemini_live.SpeechPart(reply.text, reply.pcm))
        parts += [gemini_live.ToolCallPart(name, args) for name, args in reply.calls]
        if reply.then is not None:
            parts.append(gemini_live.SpeechPart(reply.then))
        return gemini_live.ScriptedTurn(*parts)

    @property
    def connections(self) -> list[FakeSession]:
        return [GeminiSession(conn) for conn in self.server.connections]

    async def wait_for_connection(self, n: int) -> FakeSession:
        return GeminiSession(await self.server.wait_for_connection(n))

    @property
    def protocol_errors(self) -> list[str]:
        return self.server.protocol_errors


async def _wait_for_audio_ms(
    conn: openai_realtime.FakeConnection | gemini_live.FakeGeminiConnection, ms: float
) -> None:
    """Until a fake's connection has received `ms` of user audio."""
    await wait_until(conn._changed, lambda: conn.audio_ms_received >= ms, 5.0, f"{ms} ms of audio")
