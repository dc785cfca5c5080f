"""What a listener has heard of each of the model's audio items (for truncation on barge-in).

The listener plays from the first byte in real time and pauses when it runs
dry; silence that kept the stream going while a tool ran belongs to no item.
A clock the test moves stands in for the loop's.
"""

from __future__ import annotations

import pytest

from custom_components.realtime_assist.realtime.config import Endpoint, SessionConfig
from custom_components.realtime_assist.realtime.providers.openai import OpenAIRealtimeProvider
from custom_components.realtime_assist.realtime.session import RealtimeSession
from custom_components.realtime_assist.realtime.turn import ReplyAudio, Turn

RATE = 24000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now


def _pcm(ms: int) -> bytes:
    return bytes(2 * RATE * ms // 1000)


@pytest.fixture
async def playback(monkeypatch: pytest.MonkeyPatch) -> tuple[ReplyAudio, Clock]:
    session = RealtimeSession(
        OpenAIRealtimeProvider(Endpoint("key", "ws://127.0.0.1:9")), SessionConfig(model="m")
    )
    turn = Turn(session, typed=True)
    audio = ReplyAudio(turn, RATE)
    clock = Clock()
    monkeypatch.setattr(audio, "_loop", clock)
    yield audio, clock
    await turn.cancel()


async def test_an_interruption_after_a_tool_call_cuts_the_second_item(
    playback: tuple[ReplyAudio, Clock],
) -> None:
    """ "Sure." (item A), a tool runs while silence fills the stream, then item B: 0.5 s into
    B the listener has heard A whole and 0.5 s of B, whatever was delivered ahead."""
    audio, clock = playback
    audio._account(_pcm(400), "A", 400)
    clock.now += 0.4
    for _ in range(10):  # a one-second tool call, kept fed
        audio._account(_pcm(100), None, 0)
        clock.now += 0.1
    audio._account(_pcm(2000), "B", 2000)  # the model speaks faster than real time
    clock.now += 0.5

    assert audio.heard_by_item() == {"A": 400, "B": 500}
    assert audio.still_playing()


async def test_a_listener_that_ran_dry_is_behind_the_clock(
    playback: tuple[ReplyAudio, Clock],
) -> None:
    """A slow model: the listener waited for audio, so it heard less than the time passed."""
    audio, clock = playback
    audio._account(_pcm(200), "A", 200)
    clock.now += 0.5  # 300 ms with nothing to play
    audio._account(_pcm(200), "A", 200)
    clock.now += 0.1

    assert audio.heard_by_item() == {"A": 300}


async def test_nothing_heard_of_an_item_not_reached(
    playback: tuple[ReplyAudio, Clock],
) -> None:
    audio, clock = playback
    audio._account(_pcm(1000), "A", 1000)
    audio._account(_pcm(1000), "B", 1000)
    clock.now += 0.25

    assert audio.heard_by_item() == {"A": 250, "B": 0}


async def test_everything_heard_once_played_out(playback: tuple[ReplyAudio, Clock]) -> None:
    audio, clock = playback
    audio._account(_pcm(300), "A", 300)
    clock.now += 5

    assert audio.heard_by_item() == {"A": 300}
    assert not audio.still_playing()
