"""Recently resolved chat actors, so a request from a known person needs no database round trip.

Resolving an actor costs two queries (identity, roles) in a session of its own: under load that
was the largest part of a Teams turn or a Slack answer. One cache serves one platform; entries
are keyed by (workspace or tenant, user id) and live `ttl` seconds.
Role changes made through this bot clear the cache at once (`forget_all`); changes made
elsewhere (another replica, the CLI, an admin editing the database) show within `ttl`. A changed
display name goes to the database, which records it. Concurrent turns of one person share one
lookup, so an expired entry costs one database round trip, not one per turn in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bot.commands.identity import Actor, Platform, resolve_actor
from sync.runtime.core import Core

__all__ = ["ACTOR_TTL", "ActorCache"]

#: Seconds a resolved actor is trusted; the bound on how long a role change made elsewhere takes
#: to apply here.
ACTOR_TTL = 10.0
#: Bound on entries, so unauthenticated traffic with made-up user ids cannot grow it without limit.
MAX_ACTORS = 10_000


class ActorCache:
    """Resolve one platform's actors through a short-lived per-process cache."""

    def __init__(
        self,
        core: Core,
        platform: Platform = "teams",
        *,
        ttl: float = ACTOR_TTL,
        max_entries: int = MAX_ACTORS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = core
        self.platform: Platform = platform
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[tuple[str, str], tuple[float, str, Actor]] = {}
        self._pending: dict[tuple[str, str, str], asyncio.Future[Actor]] = {}
        #: Bumped by forget_all: a lookup that started before a role change must not store its result.
        self._generation = 0

    def peek(self, tenant: str, user_id: str, display: str = "") -> Actor | None:
        """The cached actor when fresh, else None; never touches the database."""
        entry = self._entries.get((tenant, user_id))
        if entry is not None and entry[0] > self.clock() and (not display or entry[1] == display):
            return entry[2]
        return None

    def known(self, tenant: str, user_id: str) -> bool:
        """True when this user was resolved before (their entry may have expired since)."""
        return (tenant, user_id) in self._entries

    async def resolve(self, tenant: str, user_id: str, display: str) -> Actor:
        """The actor for this user, from the cache when fresh, else from the database."""
        cached = self.peek(tenant, user_id, display)
        if cached is not None:
            return cached
        ask = (tenant, user_id, display)
        pending = self._pending.get(ask)
        if pending is None:
            pending = self._pending[ask] = asyncio.ensure_future(self._lookup(tenant, user_id, display))
            pending.add_done_callback(lambda done: self._settled(ask, done))
        # shield: one waiter giving up (its request cancelled) must not cancel the others' lookup.
        return await asyncio.shield(pending)

    def refresh_due(self, tenant: str, user_id: str, display: str = "") -> None:
        """Look a fresh entry past half its life up again, in the background (call from the event loop).

        Someone who keeps talking then never meets an expired entry, which costs a database lookup
        inside their request (and, under load, sends the request the slow way); the entry's age
        still bounds how long a role change made in another process takes to apply here.
        """
        entry = self._entries.get((tenant, user_id))
        if entry is None or entry[0] - self.clock() > self.ttl / 2:
            return
        ask = (tenant, user_id, display or entry[1])
        if ask in self._pending:
            return
        pending = self._pending[ask] = asyncio.ensure_future(self._lookup(*ask))
        pending.add_done_callback(lambda done: self._settled(ask, done))

    async def drain(self) -> None:
        """Wait for the lookups in flight (background refreshes included): at shutdown, before the
        database goes away."""
        while self._pending:
            await asyncio.gather(*list(self._pending.values()), return_exceptions=True)

    def _settled(self, ask: tuple[str, str, str], done: asyncio.Future[Actor]) -> None:
        if self._pending.get(ask) is done:
            del self._pending[ask]
        if not done.cancelled():
            done.exception()  # retrieved: a failed lookup nobody waited for is not "never retrieved"

    async def _lookup(self, tenant: str, user_id: str, display: str) -> Actor:
        generation = self._generation
        actor = await resolve_actor(self.core, self.platform, tenant, user_id, display)
        if generation == self._generation:
            now = self.clock()
            if len(self._entries) >= self.max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[(tenant, user_id)] = (now + self.ttl, display, actor)
        return actor

    def forget_all(self) -> None:
        """Drop every entry (after a role change: roles are few and changes rare)."""
        self._generation += 1
        self._entries.clear()
        self._pending.clear()  # lookups in flight may have read the old roles: nobody new joins them
