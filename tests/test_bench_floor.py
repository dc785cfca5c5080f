"""The benchmark's do-nothing floor (bench/floor.py) keeps the shape of a realtime turn.

Its plumbing only: what it reads and what it streams, not how long it takes.
"""

from collections.abc import AsyncIterator
import io
import wave

from bench.floor import TRANSCRIPT, Floor, FloorScript, FloorSpeechToText, _paced
from tests.pipeline_helpers import satellite_speech

FRAME = bytes(320)  # 10 ms at 16 kHz


async def test_speech_to_text_returns_once_it_has_read_up_to_the_end_of_speech() -> None:
    entity = FloorSpeechToText(Floor("", FloorScript(end_after_bytes=3 * len(FRAME))))
    read: list[bytes] = []

    async def frames() -> AsyncIterator[bytes]:
        for _ in range(10):
            read.append(FRAME)
            yield FRAME

    result = await entity.async_process_audio_stream(satellite_speech("en"), frames())

    assert result.text == TRANSCRIPT
    assert len(read) == 3


async def test_reply_is_a_wav_of_the_turns_length_in_the_models_chunks() -> None:
    script = FloorScript.make(
        end_after_bytes=0, reply_s=1.0, chunk_ms=40, first_audio_ms=0, speed=0
    )

    chunks = [chunk async for chunk in _paced(script)]

    with wave.open(io.BytesIO(b"".join(chunks))) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getnframes()) == (24000, 1, 24000)
    assert len(chunks[0]) == 44  # the header goes out first, before any audio
    assert [len(chunk) for chunk in chunks[1:]] == [40 * 24 * 2] * 25
