"""Two overlapping bookings from the same feed are a double booking (issue 22, item 4): flagged by the
sync, carded to staff once, and listed by `conflicts`, like a double booking across two sources."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.commands import handle, parse
from bot.views import ConflictList, DoubleBookingCard
from sync.engine.run import sync_all
from sync.runtime.core import Core
from sync.services.connections import add_connection
from sync.store.model import Appointment, ConflictNotice
from tests.adapters.ics.fakes.ics_feed import FeedServer
from tests.bot.clinic import at, make_actor, seed
from tests.bot.commands.test_read_only_source import core

__all__ = ["core"]  # the fixture (a core that may read feeds on loopback), used by name


def _event(uid: str, start: datetime, minutes: int) -> str:
    utc = start.astimezone(UTC)
    end = utc + timedelta(minutes=minutes)
    return (f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260301T000000Z\r\nDTSTART:{utc:%Y%m%dT%H%M%SZ}\r\n"
            f"DTEND:{end:%Y%m%dT%H%M%SZ}\r\nSUMMARY:Check-up\r\nEND:VEVENT\r\n")


def _feed(*events: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example Booking//EN\r\n" + "".join(events)
            + "END:VCALENDAR\r\n")


async def _ids(core: Core, *uids: str) -> list[int]:
    async with core.store.session() as s:
        by_uid = dict((await s.execute(select(Appointment.source_uid, Appointment.id))).tuples().all())
    return [by_uid[u] for u in uids]


async def test_two_bookings_of_one_feed_in_one_slot_are_flagged_carded_and_listed(core: Core) -> None:
    await seed(core)
    async with FeedServer() as feeds:
        feeds.publish("/lee.ics", _feed(_event("a", at(13, day=4), 30), _event("b", at(13, 15, day=4), 30),
                                        _event("c", at(15, day=4), 30)))
        await add_connection(core, "ics", feeds.url("/lee.ics"), practitioner="dr-lee", actor="cli:test")
        first = await sync_all(core)
        assert (first.created, first.conflicts) == (3, 1)
        a, b, c = await _ids(core, "a", "b", "c")

        staff = await make_actor(core, "US", ("staff",))
        listed = await handle(core, staff, parse("conflicts"))
        assert isinstance(listed, ConflictList)
        (card,) = listed.cards
        assert isinstance(card, DoubleBookingCard) and not card.outcome
        assert {item.appointment_id for item, _ in card.bookings} == {a, b}

        assert (await sync_all(core)).conflicts == 0  # read again: told once

        # The feed moves c onto b: a second double booking, against the booking already stored.
        feeds.publish("/lee.ics", _feed(_event("a", at(13, day=4), 30), _event("b", at(13, 15, day=4), 30),
                                        _event("c", at(13, 30, day=4), 30)))
        assert (await sync_all(core)).conflicts == 1
        async with core.store.session() as s:
            pairs = {frozenset((n.appointment_id, n.other_appointment_id))
                     for n in (await s.scalars(select(ConflictNotice))).all()}
        assert pairs == {frozenset((a, b)), frozenset((b, c))}

        # Moved out of the way in the feed: no new conflict, and the old card says so.
        feeds.publish("/lee.ics", _feed(_event("a", at(13, day=4), 30), _event("b", at(16, day=4), 30),
                                        _event("c", at(13, 30, day=4), 30)))
        assert (await sync_all(core)).conflicts == 0
        listed = await handle(core, staff, parse("conflicts"))
        assert isinstance(listed, ConflictList) and listed.cards == ()
