"""The per-process actor cache: a role change made in Teams applies at once, one made elsewhere
within the TTL, a renamed person is written through, and a lookup racing a role change never
stores the stale roles."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

import bot.commands.actor_cache as actors_module
from bot.commands import Actor
from bot.commands.actor_cache import ActorCache
from sync.runtime.core import Core
from sync.store.model import ChatIdentity, Role
from tests.bot.teams.conftest import Teams, activity, user

TENANT = "tenant-a"


def _roles_on_card(body: dict[str, Any]) -> str:
    card = body["attachments"][0]["content"]
    facts = next(b for b in card["body"] if b.get("type") == "FactSet")["facts"]
    return str(next(f["value"] for f in facts if f["title"] == "Roles"))


async def test_role_granted_in_teams_applies_to_the_next_message(teams: Teams) -> None:
    url = teams.connector.service_url
    assert (await teams.post(activity(url, text="whoami", sender=1)))[0] in (200, 201)  # first: admin
    assert (await teams.post(activity(url, text="whoami", sender=2)))[0] in (200, 201)
    assert _roles_on_card(teams.connector.recorded.activities("a:personal-2")[-1]) == "none"

    someone = user(2)
    at = f"<at>{someone['name']}</at>"
    mention = {"type": "mention", "text": at, "mentioned": {"id": someone["id"], "name": someone["name"]}}
    grant = activity(url, text=f"role grant staff {at}", sender=1, entities=[mention])
    assert (await teams.post(grant))[0] in (200, 201)
    assert "now has the staff role" in str(teams.connector.recorded.activities("a:personal-1")[-1])

    assert (await teams.post(activity(url, text="whoami", sender=2)))[0] in (200, 201)
    assert _roles_on_card(teams.connector.recorded.activities("a:personal-2")[-1]) == "staff"


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _grant(core: Core, user_id: str, role: str) -> None:
    async with core.store.session() as session:
        identity = await session.scalar(select(ChatIdentity).where(ChatIdentity.user_id == user_id))
        assert identity is not None
        session.add(Role(chat_identity_id=identity.id, role=role, granted_by="test"))


async def test_role_changed_elsewhere_shows_after_the_ttl(core: Core) -> None:
    clock = _Clock()
    cache = ActorCache(core, ttl=10.0, clock=clock)
    await cache.resolve(TENANT, "29:admin", "Admin")  # the practice's first person: admin
    first = await cache.resolve(TENANT, "29:ann", "Ann")
    assert first.roles == frozenset()
    await _grant(core, "29:ann", "staff")  # as the CLI or another replica would

    clock.now += 9.0
    assert (await cache.resolve(TENANT, "29:ann", "Ann")) is first
    clock.now += 2.0
    assert (await cache.resolve(TENANT, "29:ann", "Ann")).roles == {"staff"}


async def test_a_new_display_name_is_written_through(core: Core) -> None:
    cache = ActorCache(core)
    await cache.resolve(TENANT, "29:ann", "Ann")
    renamed = await cache.resolve(TENANT, "29:ann", "Ann Smith")
    assert renamed.display == "Ann Smith"
    async with core.store.session() as session:
        stored = await session.scalar(select(ChatIdentity.display_name).where(ChatIdentity.user_id == "29:ann"))
    assert stored == "Ann Smith"
    assert (await cache.resolve(TENANT, "29:ann", "")) is renamed  # no name given: the cached person


async def test_lookup_racing_a_role_change_is_not_cached(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ActorCache(core)
    await cache.resolve(TENANT, "29:admin", "Admin")
    real = actors_module.resolve_actor

    async def racing(*args: Any) -> Actor:
        found = await real(*args)
        cache.forget_all()  # a role change committed while this lookup was in flight
        return found

    monkeypatch.setattr(actors_module, "resolve_actor", racing)
    stale = await cache.resolve(TENANT, "29:ann", "Ann")
    monkeypatch.setattr(actors_module, "resolve_actor", real)
    await _grant(core, "29:ann", "staff")
    fresh = await cache.resolve(TENANT, "29:ann", "Ann")
    assert stale.roles == frozenset() and fresh.roles == {"staff"}


async def test_concurrent_turns_of_one_person_share_one_lookup(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ActorCache(core)
    real = actors_module.resolve_actor
    calls: list[tuple[Any, ...]] = []

    async def counted(*args: Any) -> Actor:
        calls.append(args)
        return await real(*args)

    monkeypatch.setattr(actors_module, "resolve_actor", counted)
    found = await asyncio.gather(*(cache.resolve(TENANT, "29:ann", "Ann") for _ in range(8)))
    assert len(calls) == 1 and len({a.chat_identity_id for a in found}) == 1
    await cache.resolve(TENANT, "29:bob", "Bob")
    assert len(calls) == 2


async def test_the_cache_is_bounded(core: Core) -> None:
    cache = ActorCache(core, max_entries=3)
    for n in range(5):
        await cache.resolve(TENANT, f"29:u{n}", f"U{n}")
    assert len(cache._entries) <= 3


async def test_a_typed_name_that_matches_one_person_is_accepted(teams: Teams) -> None:
    url = teams.connector.service_url
    assert (await teams.post(activity(url, text="whoami", sender=1)))[0] in (200, 201)  # first: admin
    for n, name in ((2, "Alex Wilber"), (3, "Sam Kim"), (4, "Sam Lee")):
        other = activity(url, text="whoami", sender=n)
        other["from"]["name"] = name
        assert (await teams.post(other))[0] in (200, 201)
    for typed in ("role grant staff Alex Wilber", "role grant staff @alex wilber"):
        assert (await teams.post(activity(url, text=typed, sender=1)))[0] in (200, 201)
        assert "Alex Wilber now has the staff role" in str(teams.connector.recorded.activities("a:personal-1")[-1]) or (
            "already has the staff role" in str(teams.connector.recorded.activities("a:personal-1")[-1])
        )
    # "Sam" is two people: nothing changes, and the card says to mention the one meant.
    assert (await teams.post(activity(url, text="role grant staff Sam", sender=1)))[0] in (200, 201)
    assert "more than one person" in str(teams.connector.recorded.activities("a:personal-1")[-1])
    assert (await teams.post(activity(url, text="whoami", sender=2)))[0] in (200, 201)
    assert _roles_on_card(teams.connector.recorded.activities("a:personal-2")[-1]) == "staff"
    assert (await teams.post(activity(url, text="whoami", sender=4)))[0] in (200, 201)
    assert _roles_on_card(teams.connector.recorded.activities("a:personal-4")[-1]) == "none"


async def test_an_entry_past_half_its_life_is_looked_up_again_in_the_background(core: Core) -> None:
    """Someone who keeps talking never meets an expired entry (a lookup inside their request), and a
    role change made elsewhere still shows within the TTL."""
    clock = _Clock()
    cache = ActorCache(core, ttl=10.0, clock=clock)
    await cache.resolve(TENANT, "29:admin", "Admin")
    first = await cache.resolve(TENANT, "29:ann", "Ann")
    await _grant(core, "29:ann", "staff")
    clock.now += 4.0
    cache.refresh_due(TENANT, "29:ann")  # not yet half way: nothing to do
    assert not cache._pending
    clock.now += 2.0
    assert cache.peek(TENANT, "29:ann", "Ann") is first  # served now, looked up again behind it
    cache.refresh_due(TENANT, "29:ann")
    await cache.drain()
    clock.now += 9.0  # 15 s after the first lookup, 9 s after the refresh
    again = cache.peek(TENANT, "29:ann", "Ann")
    assert again is not None and again.roles == {"staff"}
