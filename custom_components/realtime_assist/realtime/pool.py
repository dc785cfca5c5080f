"""Warm sessions, one per conversation, closed after they sit idle.

A conversation's next turn lands in the session that heard the previous one,
so the model remembers and no handshake sits in the turn's path. Sessions
nobody has used for `idle_timeout_s` are closed (the provider bills nothing
for an idle socket, but it holds a connection and counts towards limits).

A session is used through leases (`acquire`): a turn holds one from its first
audio frame until its reply has been read, so the idle timer runs only while
nobody holds any. One-off sessions (`one_off`) never touch the pool or its
warm spare.

Every session the pool opens (conversations', the spare, one-offs) hands its
usage reports to the pool's `on_usage`; `connected_s` adds up how long their
connections were open, so an owner can show that an idle socket costs time, not
tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import dataclass, field
import logging
from typing import Any

from .config import SessionConfig
from .errors import SessionClosedError
from .events import Usage
from .providers.base import Provider
from .session import RealtimeSession, ReconnectPolicy

_LOGGER = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pooled:
    session: RealtimeSession
    leases: int = 0
    idle_timer: asyncio.TimerHandle | None = None
    # Serialises reconfiguration (two leases asking for different configs).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Lease:
    """A hold on a conversation's session: it is not closed for idleness until released."""

    def __init__(self, session: RealtimeSession, on_release: Callable[[], None]) -> None:
        self.session = session
        self._on_release: Callable[[], None] | None = on_release

    @property
    def released(self) -> bool:
        return self._on_release is None

    def release(self) -> None:
        """Give the session back (idempotent); the last release starts its idle timer."""
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release()


class SessionPool:
    """Realtime sessions of one agent, keyed by conversation."""

    def __init__(
        self,
        provider: Provider,
        *,
        idle_timeout_s: float,
        input_sample_rate: int = 16000,
        reconnect: ReconnectPolicy | None = None,
        on_close: Callable[[RealtimeSession], None] | None = None,
        on_usage: Callable[[Usage], None] | None = None,
    ) -> None:
        self._provider = provider
        # Told about every session the pool closes, so owners drop what refers to it.
        self._on_close = on_close
        self._on_usage = on_usage
        # Every session opened and not yet counted closed, and the time of those that were.
        self._opened: set[RealtimeSession] = set()
        self._closed_connected_s = 0.0
        self._idle_timeout_s = idle_timeout_s
        self._input_rate = input_sample_rate
        self._reconnect = reconnect
        self._sessions: dict[str, _Pooled] = {}
        # A connected session waiting for the next new conversation (see `keep_warm`).
        self._spare: RealtimeSession | None = None
        self._spare_config: SessionConfig | None = None
        self._creating: dict[str, asyncio.Lock] = {}
        self._one_offs: set[RealtimeSession] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def input_sample_rate(self) -> int:
        """The rate of the PCM16 its sessions take from their owner."""
        return self._input_rate

    async def acquire(self, key: str, config: SessionConfig, *, use_spare: bool = True) -> Lease:
        """Lease the conversation's session, opened (or reconfigured) for `config`.

        Several leases may be held at once (a turn's speech-to-text, agent and
        text-to-speech); the session is closed for idleness only once the last
        is released. A new session takes the warm spare unless `use_spare` is false.
        """
        pooled = await self._get(key, config, use_spare=use_spare)
        pooled.leases += 1
        if pooled.idle_timer is not None:
            pooled.idle_timer.cancel()
            pooled.idle_timer = None
        lease = Lease(pooled.session, lambda: self._release(key, pooled))
        try:
            async with pooled.lock:
                if pooled.session.config != config:
                    await pooled.session.update(config)
        except BaseException:
            lease.release()
            raise
        return lease

    @contextlib.asynccontextmanager
    async def lease(self, key: str, config: SessionConfig) -> AsyncIterator[RealtimeSession]:
        """`acquire` as a context manager: the lease is released on exit."""
        lease = await self.acquire(key, config)
        try:
            yield lease.session
        finally:
            lease.release()

    @contextlib.asynccontextmanager
    async def one_off(self, config: SessionConfig) -> AsyncIterator[RealtimeSession]:
        """A session of its own for one job (read a text aloud, one camera question).

        It never takes the warm spare (whose prompt and tools are a turn's) and
        is closed on exit.
        """
        if self._closed:
            raise SessionClosedError("the session pool is closed")
        session = await self._open(config)
        self._one_offs.add(session)
        try:
            yield session
        finally:
            self._one_offs.discard(session)
            await session.close()

    def _release(self, key: str, pooled: _Pooled) -> None:
        pooled.leases -= 1
        if (
            pooled.leases == 0
            and not self._closed
            and not pooled.session.closed
            and self._sessions.get(key) is pooled
        ):
            pooled.idle_timer = asyncio.get_running_loop().call_later(
                self._idle_timeout_s, self._expire, key, pooled
            )

    async def _get(self, key: str, config: SessionConfig, *, use_spare: bool) -> _Pooled:
        if self._closed:
            raise SessionClosedError("the session pool is closed")
        async with self._creating.setdefault(key, asyncio.Lock()):
            pooled = self._sessions.get(key)
            if pooled is not None and not pooled.session.closed:
                return pooled
            if pooled is not None and pooled.idle_timer is not None:
                pooled.idle_timer.cancel()  # it ended by itself (fatal error); replaced now
            session = self._take_spare() if use_spare else None
            if session is None:
                session = await self._open(config)
            pooled = _Pooled(session)
            self._sessions[key] = pooled
            return pooled

    async def _open(self, config: SessionConfig) -> RealtimeSession:
        session = RealtimeSession(
            self._provider,
            config,
            input_sample_rate=self._input_rate,
            reconnect=self._reconnect,
            on_usage=self._on_usage,
        )
        await session.start()
        self._opened.add(session)
        return session

    def connected_s(self) -> float:
        """How long the pool's sessions have had connections open, in all (seconds)."""
        for session in [session for session in self._opened if session.closed]:
            self._closed_connected_s += session.connected_s
            self._opened.discard(session)
        return self._closed_connected_s + sum(session.connected_s for session in self._opened)

    def keep_warm(self, config: SessionConfig) -> None:
        """Keep one connected session ready, so a new conversation's first audio frame
        goes to an open socket instead of waiting for a handshake."""
        self._spare_config = config
        if self._spare is None and not self._closed:
            self._spawn(self._warm_up())

    async def _warm_up(self) -> None:
        if self._spare is not None or self._spare_config is None:
            return
        try:
            spare = await self._open(self._spare_config)
        except Exception as err:  # a spare is an optimisation; the next turn connects
            _LOGGER.debug("Could not pre-connect a realtime session: %s", err)
            return
        if self._closed or self._spare is not None:
            await spare.close()
            return
        self._spare = spare

    def _take_spare(self) -> RealtimeSession | None:
        spare, self._spare = self._spare, None
        if spare is not None and spare.closed:
            spare = None
        if self._spare_config is not None and not self._closed:
            self._spawn(self._warm_up())
        return spare

    async def settle(self) -> None:
        """Wait until background work (warming the spare, closing sessions) is done."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    def get(self, key: str) -> RealtimeSession | None:
        """The conversation's open session, if it has one."""
        pooled = self._sessions.get(key)
        return pooled.session if pooled is not None and not pooled.session.closed else None

    def _expire(self, key: str, pooled: _Pooled) -> None:
        if self._sessions.get(key) is pooled and pooled.leases == 0:
            _LOGGER.debug(
                "Closing realtime session of %s after %ss idle", key, self._idle_timeout_s
            )
            self._spawn(self.close(key))

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name="realtime_session_pool")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def discard_later(self, key: str) -> Callable[[], None]:
        """A callback that closes the conversation's session (for cleanup hooks)."""
        return lambda: self._spawn(self.close(key))

    async def close(self, key: str) -> None:
        """Close the conversation's session now."""
        pooled = self._sessions.pop(key, None)
        self._creating.pop(key, None)
        if pooled is None:
            return
        if pooled.idle_timer is not None:
            pooled.idle_timer.cancel()
        await pooled.session.close()
        if self._on_close is not None:
            self._on_close(pooled.session)

    async def close_all(self) -> None:
        """Close every session (the config entry unloads)."""
        self._closed = True
        if self._spare is not None:
            await self._spare.close()
            self._spare = None
        for key in list(self._sessions):
            await self.close(key)
        for session in list(self._one_offs):
            await session.close()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def __len__(self) -> int:
        return sum(1 for pooled in self._sessions.values() if not pooled.session.closed)

    def diagnostics(self) -> dict[str, Any]:
        """Per-session counters (no conversation content)."""
        return {
            f"session_{index}": {"leased": pooled.leases > 0, **pooled.session.stats}
            for index, pooled in enumerate(self._sessions.values())
        }
