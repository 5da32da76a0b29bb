"""AnswerCache: shared builds, invalidation by this process's writes, age bounds, size bound."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands.answers import AnswerCache, agenda_audience, agenda_days
from bot.commands.identity import Actor
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.store.database import Store
from sync.store.model import Appointment, ChatIdentity, Practice, Practitioner, Role


async def _write(core: Core) -> None:
    async with core.store.session() as s:
        practice = await s.scalar(select(Practice))
        assert practice is not None
        practice.name = practice.name + "!"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_builds_of_one_key_share_one(core: Core) -> None:
    cache: AnswerCache[str] = AnswerCache(core.store)
    calls = 0
    gate = asyncio.Event()

    async def make() -> tuple[str, float]:
        nonlocal calls
        calls += 1
        await gate.wait()
        return "agenda", 60.0

    waiters = [asyncio.ensure_future(cache.build("k", make)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiters) == ["agenda"] * 5
    assert calls == 1 and cache.get("k") == "agenda"


async def test_a_write_here_invalidates_and_a_racing_build_is_not_kept(core: Core) -> None:
    cache: AnswerCache[str] = AnswerCache(core.store)
    await cache.build("k", _value("v1"))
    assert cache.get("k") == "v1"
    await _write(core)
    assert cache.get("k") is None

    async def racing() -> tuple[str, float]:
        await _write(core)  # committed while the answer was being built: it may have read old data
        return "v2", 60.0

    assert await cache.build("k", racing) == "v2"  # handed to the waiters ...
    assert cache.get("k") is None  # ... but not kept


async def test_age_bounds_and_half_life(core: Core) -> None:
    clock = Clock()
    cache: AnswerCache[str] = AnswerCache(core.store, ttl=5.0, watched_ttl=5.0, clock=clock)
    await cache.build("k", _value("v", max_age=60.0))
    clock.now += 2.0
    assert cache.lookup("k") == ("v", False)
    clock.now += 1.0
    assert cache.lookup("k") == ("v", True)  # past half of its 5 s: time to rebuild in the background
    clock.now += 2.1
    assert cache.get("k") is None
    await cache.build("m", _value("until midnight", max_age=1.0))  # the day ends in one second
    clock.now += 1.1
    assert cache.get("m") is None
    await cache.build("e", _value("an error", max_age=0.0))  # not to be kept at all
    assert cache.get("e") is None


async def test_a_write_by_another_process_shows_within_the_watch_interval_on_sqlite(
    core: Core, settings: Settings, backend: str
) -> None:
    clock = Clock()
    cache: AnswerCache[str] = AnswerCache(core.store, ttl=5.0, watched_ttl=60.0, watch_every=0.25, clock=clock)
    await cache.build("k", _value("v1"))
    other = Store(settings.database_url, settings.database_schema)  # another process, in effect
    try:
        async with other.session() as s:
            practice = await s.scalar(select(Practice))
            assert practice is not None
            practice.name = "renamed elsewhere"
    finally:
        await other.dispose()
    assert cache.get("k") == "v1"  # not looked again yet
    clock.now += 0.3
    if backend == "sqlite":  # SQLite says that someone committed: the entry is gone at once
        assert cache.get("k") is None
    else:  # PostgreSQL cannot say cheaply: the entry lives out its (short) TTL
        assert cache.get("k") == "v1"
        clock.now += 5.0
        assert cache.get("k") is None


async def test_external_version_moves_with_another_processs_commits_not_this_ones_on_sqlite(
    core: Core, settings: Settings, backend: str
) -> None:
    """This process's own commits are told apart by version_for; counting them here too dropped every
    kept answer on SQLite at each write anywhere (bench.chat_mix: hit rate 4-11% against 44-52% on
    PostgreSQL, which has no such counter)."""
    first = core.store.external_version()
    if backend != "sqlite":
        assert first is None
        return
    assert isinstance(first, int)
    assert core.store.external_version() == first  # nothing committed in between
    for _ in range(3):
        async with core.store.session() as s:  # this process's own pool: not another process
            await _write_in(s)
    assert core.store.external_version() == first
    other = Store(settings.database_url, settings.database_schema)  # another process, in effect
    try:
        async with other.session() as s:
            await _write_in(s)
    finally:
        await other.dispose()
    assert core.store.external_version() != first


async def _write_in(s: AsyncSession) -> None:
    practice = await s.scalar(select(Practice))
    assert practice is not None
    practice.name = practice.name + "?"


async def test_a_failed_build_raises_for_every_waiter_and_keeps_nothing(core: Core) -> None:
    cache: AnswerCache[str] = AnswerCache(core.store)

    async def broken() -> tuple[str, float]:
        await asyncio.sleep(0)
        raise RuntimeError("database gone")

    results = await asyncio.gather(cache.build("k", broken), cache.build("k", broken), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert cache.get("k") is None
    assert await cache.build("k", _value("later")) == "later"  # the failure is not remembered


async def test_entries_are_bounded(core: Core) -> None:
    cache: AnswerCache[int] = AnswerCache(core.store, max_entries=10)
    for i in range(25):
        await cache.build(i, _value(i))
    assert len(cache._entries) <= 10
    assert cache.get(24) == 24


def _value(value: object, max_age: float = 60.0):  # type: ignore[no-untyped-def]
    async def make() -> tuple[object, float]:
        return value, max_age

    return make


async def _two_practices(core: Core) -> tuple[int, int]:
    async with core.store.session() as s:
        first = await s.scalar(select(Practice).order_by(Practice.id))
        assert first is not None
        other = Practice(name="Other clinic", timezone="UTC")
        s.add(other)
        await s.flush()
        return first.id, other.id


async def test_a_write_to_another_practice_keeps_the_answer_one_to_its_own_drops_it(core: Core) -> None:
    """Invalidation is per practice: agendas of one clinic survive another clinic's changes."""
    mine, other = await _two_practices(core)
    cache: AnswerCache[str] = AnswerCache(core.store)
    await cache.build("mine", _value("my agenda"), scope=mine)
    await cache.build("theirs", _value("their agenda"), scope=other)
    await cache.build("unscoped", _value("anything"))
    async with core.store.session() as s:  # an ORM change to the other practice's practitioner
        s.add(Practitioner(practice_id=other, name="Dr Other", handle="dr-other", timezone="UTC", reminder_prefs={}))
    assert cache.get("mine") == "my agenda"
    assert cache.get("theirs") is None
    assert cache.get("unscoped") is None  # an answer without a practice goes with any change
    await cache.build("theirs", _value("their agenda"), scope=other)
    async with core.store.session() as s:  # moving a practitioner between practices drops both
        moved = await s.scalar(select(Practitioner).where(Practitioner.handle == "dr-other"))
        assert moved is not None
        moved.practice_id = mine
    assert cache.get("mine") is None and cache.get("theirs") is None


async def test_a_write_whose_practice_is_unknown_drops_every_answer(core: Core) -> None:
    mine, other = await _two_practices(core)
    cache: AnswerCache[str] = AnswerCache(core.store)
    await cache.build("mine", _value("my agenda"), scope=mine)
    await cache.build("theirs", _value("their agenda"), scope=other)
    async with core.store.session() as s:  # a Core UPDATE: which rows (and practices) it hit is not known
        await s.execute(update(Appointment).where(Appointment.id == -1).values(client_name="x"))
    assert cache.get("mine") is None and cache.get("theirs") is None


async def test_a_racing_write_to_the_same_practice_is_not_kept_another_practice_is(core: Core) -> None:
    mine, other = await _two_practices(core)
    cache: AnswerCache[str] = AnswerCache(core.store)

    async def racing(practice_id: int, value: str) -> tuple[str, float]:
        async with core.store.session() as s:
            place = await s.get(Practice, practice_id)
            assert place is not None
            place.name = place.name + "!"
        return value, 60.0

    assert await cache.build("a", lambda: racing(mine, "v1"), scope=mine) == "v1"
    assert cache.get("a") is None
    assert await cache.build("b", lambda: racing(other, "v2"), scope=mine) == "v2"
    assert cache.get("b") == "v2"


async def test_an_answer_about_days_outlives_single_appointment_writes_on_other_days(core: Core) -> None:
    """An agenda depends on its days: moving a visit between two other days leaves it, one on its days
    drops it; a series (its visits are on many days) and any other write of the practice drop it too."""
    mine, _ = await _two_practices(core)
    monday = datetime(2031, 3, 3, 10, tzinfo=UTC)
    async with core.store.session() as s:
        visit = Appointment(practice_id=mine, start=monday, end=monday + timedelta(minutes=30), client_name="A",
                            exdates=[], rdates=[])
        s.add(visit)
    cache: AnswerCache[str] = AnswerCache(core.store)

    async def keep_all() -> None:
        for k in range(5):
            await cache.build(k, _value(f"day {k}"), scope=mine, days=lambda v, k=k: [(monday + timedelta(days=k)).date()])

    async def move(days: int) -> None:
        async with core.store.session() as s:
            row = await s.get(Appointment, visit.id)
            assert row is not None
            row.start, row.end = row.start + timedelta(days=days), row.end + timedelta(days=days)

    await keep_all()
    await move(2)  # Monday -> Wednesday
    assert [cache.get(k) is not None for k in range(5)] == [False, True, False, True, True]
    await keep_all()
    async with core.store.session() as s:  # the client's name only: still that row's day
        row = await s.get(Appointment, visit.id)
        assert row is not None
        row.client_name = "B"
    assert [cache.get(k) is not None for k in range(5)] == [True, True, False, True, True]
    await keep_all()
    async with core.store.session() as s:  # a series: its visits could be on any day
        s.add(Appointment(practice_id=mine, start=monday, end=monday + timedelta(minutes=30), rrule="FREQ=DAILY",
                          exdates=[], rdates=[]))
    assert [cache.get(k) for k in range(5)] == [None] * 5
    await keep_all()
    async with core.store.session() as s:  # not an appointment: the practice's answers all go
        place = await s.get(Practice, mine)
        assert place is not None
        place.name += "!"
    assert [cache.get(k) for k in range(5)] == [None] * 5


async def test_a_racing_write_on_the_answers_day_is_not_kept_one_on_another_day_is(core: Core) -> None:
    mine, _ = await _two_practices(core)
    day = datetime(2031, 3, 3, 10, tzinfo=UTC)

    async def racing(on: datetime) -> tuple[str, float]:
        async with core.store.session() as s:
            s.add(Appointment(practice_id=mine, start=on, end=on + timedelta(minutes=30), exdates=[], rdates=[]))
        return "agenda", 60.0

    await cache_build(core, "same", lambda: racing(day), mine, day)
    await cache_build(core, "other", lambda: racing(day + timedelta(days=3)), mine, day)


async def cache_build(core: Core, key: str, make: object, practice: int, day: datetime) -> None:
    cache: AnswerCache[str] = AnswerCache(core.store)
    assert await cache.build(key, make, scope=practice, days=lambda v: [day.date()]) == "agenda"  # type: ignore[arg-type]
    assert (cache.get(key) is None) == (key == "same")


def test_agenda_days_are_the_utc_dates_a_local_day_overlaps() -> None:
    assert agenda_days(date(2031, 3, 3), "UTC") == (date(2031, 3, 3),)
    assert agenda_days(date(2031, 3, 3), "Australia/Sydney") == (date(2031, 3, 2), date(2031, 3, 3))
    assert agenda_days(date(2031, 3, 3), "America/New_York") == (date(2031, 3, 3), date(2031, 3, 4))


def test_staff_share_an_audience_practitioners_and_other_platforms_do_not() -> None:
    def actor(roles: tuple[str, ...], practitioner_id: int | None = None, platform: str = "slack",
              practice_id: int = 1, user: str = "U1") -> Actor:
        return Actor(practice_id, 1, platform, "x", frozenset(roles), "T1", user, practitioner_id)

    staff = agenda_audience(actor(("staff",)))
    assert agenda_audience(actor(("admin",), user="U2")) == staff == agenda_audience(actor(("staff",), 7, user="U3"))
    assert agenda_audience(actor(("practitioner",), 7)) != staff
    assert agenda_audience(actor(("practitioner",), 7)) != agenda_audience(actor(("practitioner",), 8))
    assert agenda_audience(actor(("practitioner",), 7, user="U9")) == agenda_audience(actor(("practitioner",), 7))
    assert agenda_audience(actor(("staff",), platform="teams")) != staff
    assert agenda_audience(actor(("staff",), practice_id=2)) != staff
    assert agenda_audience(actor(())) != agenda_audience(actor(("practitioner",)))


async def test_people_written_without_a_practitioner_link_leave_agendas_a_link_drops_them(core: Core) -> None:
    """A first contact (a new person and their role) changes no agenda; linking a person to a
    practitioner changes what `today @person` shows. Answers not about days go with either."""
    mine, _ = await _two_practices(core)
    day = [date(2031, 3, 3)]
    cache: AnswerCache[str] = AnswerCache(core.store)

    async def keep() -> None:
        await cache.build("agenda", _value("agenda"), scope=mine, days=lambda v: day)
        await cache.build("other", _value("other"), scope=mine)

    await keep()
    async with core.store.session() as s:
        person = ChatIdentity(practice_id=mine, platform="slack", workspace_id="T9", user_id="UNEW", display_name="n")
        s.add(person)
        await s.flush()
        s.add(Role(chat_identity_id=person.id, role="staff", granted_by="test"))
    assert cache.get("agenda") == "agenda" and cache.get("other") is None
    await keep()
    async with core.store.session() as s:
        practitioner = Practitioner(practice_id=mine, name="Dr New", handle="dr-new", timezone="UTC", reminder_prefs={})
        s.add(practitioner)
        await s.flush()
    await keep()
    async with core.store.session() as s:
        linked = await s.get(ChatIdentity, person.id)
        assert linked is not None
        linked.practitioner_id = practitioner.id
    assert cache.get("agenda") is None and cache.get("other") is None


async def test_a_scope_being_committed_reads_as_changed_until_its_connection_is_back(core: Core) -> None:
    """The versions move just before the driver commits; until the commit is done an answer built
    now may read the old data, so the written scope reads as newer than any build could have
    started from (not kept), and moves again once the commit is done."""
    practice_id = (await _two_practices(core))[0]
    cache: AnswerCache[str] = AnswerCache(core.store)
    seen: list[bool] = []

    def during(_conn: object) -> None:  # runs after the store's own listener, before the driver commits
        seen.append(max(core.store.version_for(practice_id)) > core.store.data_version)

    event.listen(core.store.engine.sync_engine, "commit", during)
    try:
        await _write(core)
    finally:
        event.remove(core.store.engine.sync_engine, "commit", during)
    assert True in seen
    assert max(core.store.version_for(practice_id)) <= core.store.data_version
    await cache.build("k", _value("v"), scope=practice_id)
    assert cache.get("k") == "v"
