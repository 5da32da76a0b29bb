"""A weekly visit kept as one series row, seen from chat: listed every week, busy in clash checks,
changed only in its own calendar."""

from __future__ import annotations

from datetime import timedelta

from bot.commands import actions, handle, parse
from bot.commands.dms import notification_view
from bot.slack import render as slack_render
from bot.teams import cards as teams_cards
from bot.views import Agenda, AppointmentDetail, Error, ReminderCard, RescheduleForm
from sync.runtime.core import Core
from sync.runtime.notifier import Notification
from sync.store.model import Appointment
from tests.bot.clinic import TZ, at, make_actor, seed


async def _weekly(core: Core, practitioner_id: int, practice_id: int) -> int:
    """Dr Lee sees Sam on Tuesdays at 14:00, since 6 January."""
    first = at(14, day=3) - timedelta(weeks=8)
    async with core.store.session() as s:
        appt = Appointment(
            practice_id=practice_id, practitioner_id=practitioner_id, start=first, end=first + timedelta(minutes=50),
            tzid=TZ, rrule="FREQ=WEEKLY;BYDAY=TU", exdates=[], recurrence_key="", source_uid="weekly-sam",
            client_name="Sam Weekly", service="Therapy", status="confirmed", version=1,
        )  # fmt: skip
        s.add(appt)
        await s.flush()
        return appt.id


async def test_today_lists_the_weekly_visit_with_details_only(core: Core) -> None:
    c = await seed(core)
    series_id = await _weekly(core, c.lee, c.practice_id)
    staff = await make_actor(core, "US", ("staff",))
    view = await handle(core, staff, parse("today"))
    assert isinstance(view, Agenda)
    [visit] = [i for i in view.items if i.appointment_id == series_id]
    assert visit.start == at(14) and visit.client == "Sam Weekly"
    assert [type(a).__name__ for a in visit.actions] == ["ShowDetails"]
    detail = await handle(core, staff, actions.ShowDetails(series_id))
    assert isinstance(detail, AppointmentDetail) and "Repeats every week on Tuesday since" in detail.note


async def test_a_series_is_not_moved_or_cancelled_from_chat(core: Core) -> None:
    c = await seed(core)
    series_id = await _weekly(core, c.lee, c.practice_id)
    staff = await make_actor(core, "US", ("staff",))
    for attempt in (
        parse(f"reschedule A-{series_id} tomorrow 3pm"),
        parse(f"cancel A-{series_id}"),
        actions.CancelConfirmed(series_id, 1, "no"),
        actions.PickSlot(series_id, 1, at(16), None),
    ):
        view = await handle(core, staff, attempt)
        assert isinstance(view, Error) and "calendar it comes from" in view.message, (attempt, view)
    async with core.store.session() as s:
        row = await s.get(Appointment, series_id)
        assert row is not None and row.version == 1 and row.status == "confirmed"


async def test_a_weekly_visit_makes_its_slot_taken(core: Core) -> None:
    c = await seed(core)
    series_id = await _weekly(core, c.lee, c.practice_id)
    staff = await make_actor(core, "US", ("staff",))
    view = await handle(core, staff, parse(f"reschedule A-{c.a_lee_10} 14:15"))
    assert isinstance(view, RescheduleForm) and f"taken (A-{series_id})" in view.errors["time"]
    next_week = await handle(core, staff, actions.PickSlot(c.a_lee_10, 1, at(14, 15, day=10), None))
    assert isinstance(next_week, RescheduleForm), next_week  # the visit a week later is there too


async def test_a_reminder_dm_shows_the_visit_it_is_for(core: Core) -> None:
    c = await seed(core)
    series_id = await _weekly(core, c.lee, c.practice_id)
    lee = await make_actor(core, "UL", (), practitioner_id=c.lee)
    note = Notification(
        kind="reminder", practice_id=c.practice_id, practitioner_id=c.lee, appointment_ids=(series_id,),
        data={"offset_minutes": 60, "version": 1, "visit_start": at(14, day=10).isoformat()},
    )  # fmt: skip
    card = await notification_view(core, note, lee)
    assert isinstance(card, ReminderCard)
    assert card.item.start == at(14, day=10) and card.date_label.startswith("Tue 10 Mar")
    assert [type(a).__name__ for a in card.item.actions] == ["ShowDetails"]


async def test_details_of_one_visit_show_that_visit_its_days_and_a_plain_note(core: Core) -> None:
    c = await seed(core)
    first = at(14, day=3) - timedelta(weeks=8)
    async with core.store.session() as s:
        row = Appointment(
            practice_id=c.practice_id, practitioner_id=c.lee, start=first, end=first + timedelta(minutes=50),
            tzid=TZ, rrule="FREQ=WEEKLY;BYDAY=TU,SU", exdates=[], recurrence_key="", source_uid="twice-weekly",
            client_name="Sam Twice", service="Therapy", status="confirmed", version=1,
        )  # fmt: skip
        s.add(row)
        await s.flush()
        series_id = row.id
    staff = await make_actor(core, "US", ("staff",))
    agenda = await handle(core, staff, parse("sunday"))
    assert isinstance(agenda, Agenda)
    [visit] = [i for i in agenda.items if i.appointment_id == series_id]
    [press] = visit.actions
    detail = await handle(core, staff, actions.decode(*actions.encode(press)))  # through the button's wire form
    assert isinstance(detail, AppointmentDetail)
    assert detail.date_label == "Sun 8 Mar 2026" and detail.item.start == at(14, day=8)
    assert "every week on Tuesday and Sunday" in detail.note, detail.note
    assert detail.notice == "", "a description is not a success message"
    card = str(teams_cards.render(detail))
    assert "every week on Tuesday and Sunday" in card and "'color': 'Good'" not in card
    _, blocks = slack_render.message(detail)
    assert "white_check_mark" not in str(blocks) and "every week on Tuesday and Sunday" in str(blocks)
    # A date that is not one of the series' visits falls back to the series itself, not an error.
    odd = await handle(core, staff, actions.ShowDetails(series_id, at(9, day=9)))
    assert isinstance(odd, AppointmentDetail) and odd.item.start == first
