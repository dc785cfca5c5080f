"""User audio on its way to the provider, on both fakes: frames handed in together go
out as one message, a frame handed in alone goes at once, nothing sent after the
audio overtakes it, and without the provider's turn detection the audio is the speech."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from custom_components.realtime_assist.realtime.audio import MicrophoneResampler
from custom_components.realtime_assist.realtime.config import TurnDetection, TurnDetectionMode
from custom_components.realtime_assist.realtime.events import InputTranscript, ResponseDone
from custom_components.realtime_assist.realtime.turn import Turn, TurnDeadlines
from tests.fakes.audio_samples import silence, speech_like
from tests.fakes.providers import FakeProvider, OpenAIFake
from tests.fixtures_entry import every_provider
from tests.realtime.events import until
from tests.realtime.sessions import RATE, OpenSession

provider = every_provider

FRAME_BYTES = 320  # 10 ms at 16 kHz, as Home Assistant's pipeline hands audio on


def _frames(pcm: bytes) -> list[bytes]:
    return [pcm[start : start + FRAME_BYTES] for start in range(0, len(pcm), FRAME_BYTES)]


def _at_provider_rate(realtime_fake: FakeProvider) -> MicrophoneResampler | None:
    """What the session does to the audio on its way (OpenAI takes 24 kHz, Gemini 16)."""
    return MicrophoneResampler(RATE, 24000) if isinstance(realtime_fake, OpenAIFake) else None


async def test_frames_handed_in_together_go_as_one_message(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    """A satellite's packet becomes several 10 ms chunks in a row (Home Assistant splits
    it). Once chunks have come together, a packet costs one send. A frame that comes
    alone goes at once: it reaches the provider before anything follows it."""
    session, _ = await open_session()
    conn = await realtime_fake.wait_for_connection(1)
    first, second = _frames(silence(0.03, RATE)), _frames(speech_like(0.03, RATE))
    alone = silence(0.01, RATE)

    # (A fresh resampler's first output is a sample short of 10 ms.)
    for sent_ms, packet in ((29.9, first), (59.9, second)):
        for frame in packet:
            await session.send_audio(frame)
        await conn.wait_for_audio_ms(sent_ms)
    await session.send_audio(alone)
    await conn.wait_for_audio_ms(69.9)

    resampler = _at_provider_rate(realtime_fake)
    sent = [b"".join(first), b"".join(second), alone]
    if resampler is not None:
        sent = [resampler.process(pcm) for pcm in sent]
    *_, second_message, last_message = conn.audio_messages()
    assert (second_message, last_message) == (sent[1], sent[2])
    assert conn.audio_received() == b"".join(sent)


async def test_what_is_sent_after_the_audio_does_not_overtake_it(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    """The user's turn ended by hand right after their last frame: the provider has
    every frame before the end of the turn, and answers what it heard."""
    session, events = await open_session(turn_detection=TurnDetection(mode=TurnDetectionMode.OFF))
    realtime_fake.hear("Turn on the porch light.")
    realtime_fake.say("Done.")
    spoken = speech_like(0.5, RATE) + silence(0.2, RATE)

    for frame in _frames(spoken):
        await session.send_audio(frame)
    await session.commit_audio()
    seen = await until(events, lambda event: isinstance(event, ResponseDone))

    transcripts = [e.text for e in seen if isinstance(e, InputTranscript) and e.final]
    assert transcripts == ["Turn on the porch light."]
    conn = await realtime_fake.wait_for_connection(1)
    resampler = _at_provider_rate(realtime_fake)
    assert conn.audio_received() == (resampler.process(spoken) if resampler else spoken)


async def test_with_turn_detection_off_the_audio_is_the_speech_however_long(
    realtime_fake: FakeProvider, open_session: OpenSession
) -> None:
    """Without the provider's turn detection nobody reports the user starting to speak;
    Home Assistant's VAD ends the stream. A command that outlasts the wait for speech to
    start (none at all here) is heard whole, not dropped as "nobody spoke"."""
    session, _ = await open_session(turn_detection=TurnDetection(mode=TurnDetectionMode.OFF))
    realtime_fake.hear("Turn on the porch light and tell me tomorrow's weather.")
    realtime_fake.say("Done.")
    turn = Turn(session, deadlines=TurnDeadlines(speech_start_s=0.0))

    async def satellite() -> AsyncIterator[bytes]:
        for frame in _frames(speech_like(0.5, RATE) + silence(0.2, RATE)):
            yield frame
            await asyncio.sleep(0)  # a frame per pass of the loop, as a stream comes

    try:
        heard = await turn.listen(satellite(), commit_at_end=True)
    finally:
        await turn.cancel()
    assert heard == "Turn on the porch light and tell me tomorrow's weather."
