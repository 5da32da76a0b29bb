"""Recently resolved Teams actors, so a turn from a known person needs no database round trip.

Resolving an actor costs two queries (identity, roles) in a session of its own: under load that
was the largest part of a turn. Entries are keyed by (tenant, user id) and live `ttl` seconds.
Role changes made through this bot clear the cache at once (`forget_all`); changes made
elsewhere (another replica, the CLI, an admin editing the database) show within `ttl`. A changed
display name goes to the database, which records it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.commands import Actor, resolve_actor
from sync.core import Core

__all__ = ["ACTOR_TTL", "ActorCache"]

#: Seconds a resolved actor is trusted; the bound on how long a role change made elsewhere takes
#: to apply here.
ACTOR_TTL = 10.0
#: Bound on entries, so unauthenticated traffic with made-up user ids cannot grow it without limit.
MAX_ACTORS = 10_000


class ActorCache:
    """Resolve Teams actors through a short-lived per-process cache."""

    def __init__(
        self,
        core: Core,
        *,
        ttl: float = ACTOR_TTL,
        max_entries: int = MAX_ACTORS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = core
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[tuple[str, str], tuple[float, str, Actor]] = {}
        #: Bumped by forget_all: a lookup that started before a role change must not store its result.
        self._generation = 0

    async def resolve(self, tenant: str, user_id: str, display: str) -> Actor:
        """The actor for this Teams user, from the cache when fresh, else from the database."""
        key = (tenant, user_id)
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now and (not display or entry[1] == display):
            return entry[2]
        generation = self._generation
        actor = await resolve_actor(self.core, "teams", tenant, user_id, display)
        if generation == self._generation:
            if len(self._entries) >= self.max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (now + self.ttl, display, actor)
        return actor

    def forget_all(self) -> None:
        """Drop every entry (after a role change: roles are few and changes rare)."""
        self._generation += 1
        self._entries.clear()
