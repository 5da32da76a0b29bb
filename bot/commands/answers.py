"""Recently built answers to read-only commands (the day's agenda), so a repeat costs no database work.

Front-desk staff ask for the same day over and over; building it (queries, rendering) is the
costliest thing a chat request does. A front end keeps what it built here, keyed by what the
answer depends on about who asked (`agenda_audience`: the practice, the platform, and staff or
which practitioner's own, so permissions and buttons stay right: an answer kept for staff never
reaches a practitioner, who sees less) and what they asked, and can then answer a repeat, by
anyone of the same audience, inside the acknowledgement itself.

An entry is used only while all of these hold:
- nothing this process committed since it was built touched the tables answers come from, for
  the answer's practice (`Store.version_for`, see sync/store/database.py): a commit whose writes
  all belong to other practices leaves it alone; one whose practice is unknown drops every entry;
  an answer about given days (an agenda) also outlives writes of single appointments on other days;
- where the database can say cheaply that anyone committed anything (`Store.external_version`:
  SQLite), nobody has since it was built, as last looked at most `watch_every` seconds ago;
  that is the bound on how long a change by another process (the CLI) takes to show there;
- it is younger than `ttl` seconds where the database cannot say (PostgreSQL: the bound for
  changes made by another replica), or `watched_ttl` where it can;
- the day it was built for is still the same day (`max_age` given by the builder, e.g. up to
  the practice's next local midnight for "today").

Entries are bounded in number. Concurrent builds of one key share one build (`build`), and a
build that raced a write is handed back but not kept. `lookup` also says when a fresh entry is
half way to its end, so a front end can rebuild it in the background before it expires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo

from bot.commands.identity import Actor

__all__ = ["ANSWER_TTL", "AnswerCache", "agenda_audience", "agenda_days", "until_midnight"]

#: Seconds an answer is reused at most where other processes' writes cannot be seen (PostgreSQL).
ANSWER_TTL = 5.0
#: ... and where they can (SQLite), looked for at most every WATCH_EVERY seconds.
WATCHED_TTL = 60.0
WATCH_EVERY = 0.25
MAX_ANSWERS = 2_000

V = TypeVar("V")


def agenda_audience(actor: Actor) -> Hashable:
    """What an agenda (or another answer built from the same reads) depends on about who asked.

    Staff and admins see every appointment of the practice with every button; anyone else sees
    and may change only their linked practitioner's (bot/commands/access.py, work.py). The
    platform is in it because a mention (`today @!U123`) names a person of that platform.
    """
    if actor.is_staff:
        return (actor.practice_id, actor.platform, "staff")
    return (actor.practice_id, actor.platform, "own", actor.practitioner_id, "practitioner" in actor.roles,
            bool(actor.roles))


def agenda_days(day: date, timezone: str) -> tuple[date, ...]:
    """The UTC dates the local `day` in `timezone` overlaps (what an agenda of it is built from)."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, clock_time.min, zone)
    end = datetime.combine(day + timedelta(days=1), clock_time.min, zone)
    first, last = start.astimezone(UTC).date(), (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return tuple(first + timedelta(days=k) for k in range((last - first).days + 1))


def until_midnight(now: datetime, timezone: str) -> float:
    """Seconds until the next local midnight: "Today" and the like in a title change meaning then."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), clock_time(0), tzinfo=zone)
    return max(0.0, (midnight - local).total_seconds())


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    scope: int | None
    days: tuple[date, ...]
    version: tuple[int, ...]
    external: int | None
    built: float
    expires: float


class Versioned(Protocol):
    """What the cache watches: the core's store (sync.store.database.Store) has both."""

    data_version: int

    def version_for(self, practice_id: int | None, days: Iterable[date] = ()) -> tuple[int, ...]: ...

    def external_version(self) -> int | None: ...


class AnswerCache(Generic[V]):
    """Answers keyed by (audience, command); valid while the store's version for their practice (and days)
    is unchanged."""

    def __init__(
        self,
        store: Versioned,
        *,
        ttl: float = ANSWER_TTL,
        watched_ttl: float = WATCHED_TTL,
        watch_every: float = WATCH_EVERY,
        max_entries: int = MAX_ANSWERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.watched_ttl = watched_ttl
        self.watch_every = watch_every
        self._external: int | None = None
        self._watched_at = float("-inf")
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[Hashable, _Entry[V]] = {}
        self._pending: dict[Hashable, asyncio.Future[V]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        """The answer for `key` if it is still good, else None (and the stale entry is dropped)."""
        found = self.lookup(key)
        return None if found is None else found[0]

    def lookup(self, key: Hashable) -> tuple[V, bool] | None:
        """(answer, due) for `key` if the answer is still good, else None; one lookup for both."""
        entry = self._entries.get(key)
        if entry is not None:
            now = self.clock()
            if now - self._watched_at >= self.watch_every:
                self._look(now)
            if (
                entry.version == self.store.version_for(entry.scope, entry.days)
                and entry.external == self._external
                and entry.expires > now
            ):
                self.hits += 1
                due = now - entry.built > (entry.expires - entry.built) / 2 and key not in self._pending
                return entry.value, due
            del self._entries[key]
        self.misses += 1
        return None

    async def build(
        self, key: Hashable, make: Callable[[], Awaitable[tuple[V, float]]], scope: int | None = None,
        days: Callable[[V], Iterable[date]] | None = None,
    ) -> V:
        """Build the answer for `key` with `make` (-> (value, max age in seconds)) and keep it.

        `scope` is the practice the answer is about (its data all belong to that practice): writes
        to other practices then leave it in place. None: any relevant write drops it. `days` gives
        the UTC dates a built value shows appointments of (`agenda_days`): a write of a single
        appointment on other days then leaves it in place too.

        Concurrent calls for one key share one build. A build during which this process committed
        a relevant write may have read the old data: its value is returned but not kept.
        """
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(self._build(key, make, scope, days))
            pending.add_done_callback(lambda done: self._settled(key, done))
        # shield: one waiter going away (its request cancelled) must not cancel the others' build.
        return await asyncio.shield(pending)

    def _look(self, now: float) -> int | None:
        """Read the database's own change counter now (where it has one) and remember it."""
        self._watched_at = now
        self._external = self.store.external_version()
        return self._external

    async def _build(
        self, key: Hashable, make: Callable[[], Awaitable[tuple[V, float]]], scope: int | None,
        days: Callable[[V], Iterable[date]] | None,
    ) -> V:
        # The last commit before the reads: a scope touched by a later one (a number above it, or
        # one still reaching the database, see Store.version_for) may have been read before that
        # commit, and the value is then not kept.
        before = self.store.data_version
        started = self.clock()
        external = self._look(started)  # read before the data: a later change makes it differ
        ttl = self.ttl if external is None else self.watched_ttl
        value, max_age = await make()
        dated = tuple(days(value)) if days is not None and max_age > 0 else ()
        version = self.store.version_for(scope, dated)
        if max(version) <= before and max_age > 0:
            if len(self._entries) >= self.max_entries:
                now = self.clock()
                self._entries = {k: e for k, e in self._entries.items() if e.expires > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = _Entry(value, scope, dated, version, external, started, started + min(ttl, max_age))
        return value

    def _settled(self, key: Hashable, done: asyncio.Future[V]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]
        if not done.cancelled():
            done.exception()  # retrieved here, so a failed build with no waiter left is not "never retrieved"

    def clear(self) -> None:
        self._entries.clear()
