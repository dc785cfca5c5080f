"""What the listener has heard of the model's audio items, for barge-in.

Both protocols need it after an interruption: OpenAI truncates each item to
what was heard, Gemini (which cannot truncate) is told in words. Playback is
what the consumer reports (`report_played`, `interrupt(played)`); where it did
not, real time from when the item could start playing: it arrived, and the
item before it had played out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import time

# Audio items remembered; older ones have long been played.
MAX_AUDIO_ITEMS = 8
# Cut items remembered; audio of older ones has long stopped arriving.
MAX_CUT_ITEMS = 32


@dataclass(slots=True)
class AudioItem:
    """What the model has sent of one audio item (and, if known, what it said in it)."""

    item_id: str
    playback_start: float
    received_audio_ms: float = 0.0
    played_ms: int | None = None
    # The item's transcript in pieces, each with the audio (ms) received when it arrived.
    words: list[tuple[float, str]] = field(default_factory=list)

    @property
    def received_ms(self) -> int:
        return int(self.received_audio_ms)

    def heard_ms(self, reported: int | None = None) -> int:
        """What the listener heard: reported playback, else real time since it started."""
        if reported is None:
            reported = self.played_ms
        if reported is None:
            reported = int((time.monotonic() - self.playback_start) * 1000)
        return max(0, min(reported, self.received_ms))

    def heard_text(self, heard_ms: int) -> str:
        """The words that came with the audio heard (a transcript trails its audio)."""
        if heard_ms <= 0:
            return ""
        return "".join(text for at, text in self.words if at <= heard_ms).strip()

    def playback_end(self) -> float:
        return self.playback_start + self.received_ms / 1000


class PlaybackLedger:
    """The audio items that may still be playing, oldest first.

    `take()` hands them over once an interruption cut them; audio of a cut item
    that is still on its way is not counted again.
    """

    def __init__(self) -> None:
        self._items: dict[str, AudioItem] = {}
        # An ordered set: the newest items cut.
        self._cut: dict[str, None] = {}

    def add_audio(self, item_id: str, audio_ms: float) -> None:
        if (item := self._item(item_id)) is not None:
            item.received_audio_ms += audio_ms

    def add_words(self, item_id: str, text: str) -> None:
        if (item := self._item(item_id)) is not None:
            item.words.append((item.received_audio_ms, text))

    def report(self, item_id: str, played_ms: int) -> None:
        if (item := self._items.get(item_id)) is not None:
            item.played_ms = played_ms

    def take(self) -> list[AudioItem]:
        """The items that may still be playing, forgotten from now on (an interruption)."""
        items, self._items = list(self._items.values()), {}
        self._cut.update(dict.fromkeys(item.item_id for item in items))
        while len(self._cut) > MAX_CUT_ITEMS:
            del self._cut[next(iter(self._cut))]
        return items

    def _item(self, item_id: str) -> AudioItem | None:
        """The item's entry (None once cut); a new item starts playing after the one before."""
        if item_id in self._cut:
            return None
        item = self._items.get(item_id)
        if item is None:
            now = time.monotonic()
            previous = next(reversed(self._items.values()), None)
            start = max(now, previous.playback_end()) if previous is not None else now
            item = self._items[item_id] = AudioItem(item_id, start)
            while len(self._items) > MAX_AUDIO_ITEMS:
                del self._items[next(iter(self._items))]
        return item
