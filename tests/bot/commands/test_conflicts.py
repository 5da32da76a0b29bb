"""The `conflicts` command and double bookings: staff see open conflicts as cards; a double booking
is told once, naming both appointments."""

from __future__ import annotations

from datetime import timedelta

from bot.commands import handle, parse
from bot.commands.actions import KeepBooking
from bot.views import ConflictCard, ConflictList, DoubleBookingCard, Error, Help
from sync.engine.run import sync_connection
from sync.notify.conflict_notices import deliver_due
from sync.runtime.core import Core
from sync.runtime.notifier import RecordingNotifier
from tests.bot.clinic import make_actor, seed
from tests.bot.conflict_setup import BOOKED, hand_edited, notices
from tests.sync.helpers import booking


async def test_conflicts_lists_hand_edits_and_double_bookings_for_staff_only(core: Core) -> None:
    clinic = await seed(core)
    edit = await hand_edited(core, clinic)
    await edit.calendars.add_calendar("source2", "source")
    edit.calendars.servers["source2"].put(booking("x1", BOOKED + timedelta(minutes=15)))
    report = await sync_connection(core, edit.calendars.connections["source2"], wait=10)
    assert report.conflicts == 1

    notifier = RecordingNotifier()
    assert await deliver_due(core, notifier) == 2
    assert await deliver_due(core, notifier) == 0  # once each
    kinds = sorted(n.kind for n in notifier.sent)
    assert kinds == ["conflict", "double_booking"]
    double = next(n for n in notifier.sent if n.kind == "double_booking")
    assert len(double.appointment_ids) == 2 and edit.appointment_id in double.appointment_ids
    assert all(n.audience == "staff" for n in notifier.sent)
    assert [n.status for n in await notices(core)] == ["sent", "sent"]

    staff = await make_actor(core, "UA", ("staff",))
    view = await handle(core, staff, parse("conflicts"))
    assert isinstance(view, ConflictList)
    assert [type(c) for c in view.cards] == [ConflictCard, DoubleBookingCard]
    card = view.cards[1]
    assert isinstance(card, DoubleBookingCard)
    assert {i.ref for i, _ in card.bookings} == {f"A-{edit.appointment_id}", f"A-{double.appointment_ids[0]}"}
    assert all(i.client == "" for i, _ in card.bookings)

    lee = await make_actor(core, "ULEE", ("practitioner",), practitioner_id=clinic.lee)
    denied = await handle(core, lee, parse("conflicts"))
    assert isinstance(denied, Error) and denied.kind == "forbidden"


async def test_help_lists_the_conflicts_command(core: Core) -> None:
    await seed(core)
    anyone = await make_actor(core, "UA", ())
    view = await handle(core, anyone, parse("help"))
    assert isinstance(view, Help) and any(e.usage == "conflicts" and e.needs == "staff" for e in view.entries)


async def test_a_decision_on_a_conflict_that_does_not_exist_reads_as_not_found(core: Core) -> None:
    """The error's class, not its wording, decides how it reads: a missing conflict is "not found"."""
    await seed(core)
    staff = await make_actor(core, "UA", ("staff",))
    view = await handle(core, staff, KeepBooking(conflict_id=999_999))
    assert isinstance(view, Error) and view.kind == "not_found"
    assert "no such conflict" in view.message
