"""Recently built answers to read-only commands (the day's agenda), so a repeat costs no database work.

Front-desk staff ask for the same day over and over; building it (queries, rendering) is the
costliest thing a chat request does. A front end keeps what it built here, keyed by who asked
(the whole Actor: practice, roles, linked practitioner, so permissions and buttons stay right)
and what they asked, and can then answer a repeat inside the acknowledgement itself.

An entry is used only while all of these hold:
- nothing this process committed since it was built touched the tables answers come from
  (`Store.data_version`, bumped on commit, see sync/store.py);
- it is younger than `ttl` seconds: the bound on how long a change made by another process
  (a second replica, the CLI) takes to show;
- the day it was built for is still the same day (`max_age` given by the builder, e.g. up to
  the practice's next local midnight for "today").

Entries are bounded in number. Concurrent builds of one key share one build (`build`), and a
build that raced a write is handed back but not kept. `due` says when a fresh entry is half way
to its end, so a front end can rebuild it in the background before it expires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sync.store import Store

__all__ = ["ANSWER_TTL", "AnswerCache"]

#: Seconds an answer is reused at most; the bound on how stale it can be for writes made elsewhere.
ANSWER_TTL = 5.0
MAX_ANSWERS = 2_000

V = TypeVar("V")


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    version: int
    built: float
    expires: float


class AnswerCache(Generic[V]):
    """Answers keyed by (actor, command); valid while the store's data version is unchanged."""

    def __init__(
        self,
        store: Store,
        *,
        ttl: float = ANSWER_TTL,
        max_entries: int = MAX_ANSWERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[Hashable, _Entry[V]] = {}
        self._pending: dict[Hashable, asyncio.Future[V]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        """The answer for `key` if it is still good, else None (and the stale entry is dropped)."""
        entry = self._entries.get(key)
        if entry is not None:
            if entry.version == self.store.data_version and entry.expires > self.clock():
                self.hits += 1
                return entry.value
            del self._entries[key]
        self.misses += 1
        return None

    def due(self, key: Hashable) -> bool:
        """True when the entry for `key` is past half its life and no rebuild is under way."""
        entry = self._entries.get(key)
        if entry is None or key in self._pending:
            return False
        now = self.clock()
        return now - entry.built > (entry.expires - entry.built) / 2

    async def build(self, key: Hashable, make: Callable[[], Awaitable[tuple[V, float]]]) -> V:
        """Build the answer for `key` with `make` (-> (value, max age in seconds)) and keep it.

        Concurrent calls for one key share one build. A build during which this process committed
        a relevant write may have read the old data: its value is returned but not kept.
        """
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(self._build(key, make))
            pending.add_done_callback(lambda done: self._settled(key, done))
        # shield: one waiter going away (its request cancelled) must not cancel the others' build.
        return await asyncio.shield(pending)

    async def _build(self, key: Hashable, make: Callable[[], Awaitable[tuple[V, float]]]) -> V:
        version = self.store.data_version
        started = self.clock()
        value, max_age = await make()
        if version == self.store.data_version and max_age > 0:
            if len(self._entries) >= self.max_entries:
                now = self.clock()
                self._entries = {k: e for k, e in self._entries.items() if e.expires > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = _Entry(value, version, started, started + min(self.ttl, max_age))
        return value

    def _settled(self, key: Hashable, done: asyncio.Future[V]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]
        if not done.cancelled():
            done.exception()  # retrieved here, so a failed build with no waiter left is not "never retrieved"

    def clear(self) -> None:
        self._entries.clear()
