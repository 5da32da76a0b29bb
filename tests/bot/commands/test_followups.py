"""Follow-up answers, agenda/reminder DM views and reminder health: roles, audit, no-ops, privacy."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.commands import actions, handle, parse
from bot.commands.actions import BookFollowUp, MarkAttended, MarkNoShow, OpenReschedule, ShowDetails
from bot.commands.dms import notification_view
from bot.views import Agenda, Error, FollowUp, ReminderCard, Status
from sync.runtime.core import Core
from sync.runtime.notifier import Notification, RecordingNotifier
from sync.store.model import Appointment, AuditEntry, Practice, Practitioner, ReminderLedger
from tests.bot.clinic import NOW, at, make_actor, seed

AFTER = NOW + timedelta(hours=4)  # 12:00 in London: the 10:00 and 11:00 visits are over


async def _appt(core: Core, appt_id: int) -> Appointment:
    async with core.store.session() as s:
        a = await s.get(Appointment, appt_id)
        assert a is not None
        return a


async def _audit(core: Core, appt_id: int) -> list[tuple[str, str]]:
    async with core.store.session() as s:
        rows = await s.execute(
            select(AuditEntry.action, AuditEntry.actor)
            .where(AuditEntry.appointment_id == appt_id)
            .order_by(AuditEntry.seq)
        )
        return [(str(a), str(b)) for a, b in rows]


async def test_attended_marks_completed_audited_as_the_chat_user_and_twice_is_a_noop(core: Core) -> None:
    c = await seed(core)
    core.clock = lambda: AFTER
    lee = await make_actor(core, "ULEE", ("practitioner",), practitioner_id=c.lee)
    view = await handle(core, lee, MarkAttended(c.a_lee_10))
    assert isinstance(view, FollowUp), view
    assert (await _appt(core, c.a_lee_10)).status == "completed"
    assert await _audit(core, c.a_lee_10) == [("appointment.completed", "slack:T1/ULEE")]
    assert "marked attended by ulee" in view.outcome
    assert [type(a) for a in view.actions] == [BookFollowUp]  # no second answer offered

    staff = await make_actor(core, "USTAFF", ("staff",))
    again = await handle(core, staff, MarkNoShow(c.a_lee_10))
    assert isinstance(again, FollowUp)
    assert "Already recorded" in again.notice and "Nothing was changed" in again.notice
    assert (await _appt(core, c.a_lee_10)).status == "completed"
    assert await _audit(core, c.a_lee_10) == [("appointment.completed", "slack:T1/ULEE")]


async def test_no_show_by_staff_and_the_event_is_emitted(core: Core) -> None:
    c = await seed(core)
    core.clock = lambda: AFTER
    seen: list[str] = []

    async def record(_s: object, e: object) -> None:
        seen.append(getattr(e, "kind", ""))

    core.bus.subscribe("test-record", record)
    staff = await make_actor(core, "USTAFF", ("staff",))
    view = await handle(core, staff, MarkNoShow(c.a_kim_10))
    assert isinstance(view, FollowUp) and "no-show" in view.outcome
    appt = await _appt(core, c.a_kim_10)
    assert (appt.status, appt.version) == ("no_show", 2)
    assert await _audit(core, c.a_kim_10) == [("appointment.no_show", "slack:T1/USTAFF")]
    assert seen == ["no_show"]


async def test_foreign_or_other_practitioners_press_changes_nothing(core: Core) -> None:
    c = await seed(core)
    core.clock = lambda: AFTER
    kim = await make_actor(core, "UKIM", ("practitioner",), practitioner_id=c.kim)
    nobody = await make_actor(core, "UNOBODY", ())
    outsider = await make_actor(core, "UOUT", ("admin",), team="T2")  # another workspace, another practice
    for who in (kim, nobody, outsider):
        for press in (MarkAttended(c.a_lee_10), MarkNoShow(c.a_lee_10), BookFollowUp(c.a_lee_10)):
            view = await handle(core, who, press)
            assert isinstance(view, Error), (who.user_id, view)
            assert view.kind in ("forbidden", "not_found")
    assert (await _appt(core, c.a_lee_10)).status == "confirmed"
    assert await _audit(core, c.a_lee_10) == []


async def test_forged_button_data_is_refused() -> None:
    for value in ('{"a":"1; DROP"}', "{}", "not json", '{"a":true}'):
        try:
            actions.decode("followup_attended", value)
        except Exception as exc:
            assert "not valid" in str(exc)
        else:
            raise AssertionError(value)
    assert actions.decode(*actions.encode(MarkNoShow(7))) == MarkNoShow(7)


async def test_a_visit_not_yet_started_cannot_be_marked(core: Core) -> None:
    c = await seed(core)  # the clock stands at 08:00, before the 10:00 visit
    lee = await make_actor(core, "ULEE", ("practitioner",), practitioner_id=c.lee)
    view = await handle(core, lee, MarkAttended(c.a_lee_10))
    assert isinstance(view, Error) and "has not started yet" in view.message
    assert (await _appt(core, c.a_lee_10)).status == "confirmed"


async def test_book_followup_offers_free_slots_and_asks_staff_once(core: Core) -> None:
    c = await seed(core)
    core.clock = lambda: AFTER
    notifier = RecordingNotifier()
    core.services.notifier = notifier
    lee = await make_actor(core, "ULEE", ("practitioner",), practitioner_id=c.lee)
    view = await handle(core, lee, BookFollowUp(c.a_lee_10))
    assert isinstance(view, FollowUp), view
    # Wednesday 4 March: Dr Lee is busy 09:00-09:30, so 30-minute slots start at 08:00, 08:30, 09:30.
    assert view.slots == ("Wed 4 Mar 08:00", "Wed 4 Mar 08:30", "Wed 4 Mar 09:30")
    assert "staff have been asked" in view.booking_note and "cannot create bookings" in view.booking_note
    [note] = notifier.sent
    assert (note.kind, note.audience, note.appointment_ids) == ("followup_booking", "staff", (c.a_lee_10,))
    assert "Jane" not in str(note.data)  # no patient data in the notification
    again = await handle(core, lee, BookFollowUp(c.a_lee_10))
    assert isinstance(again, FollowUp) and "already requested" in again.notice
    assert len(notifier.sent) == 1
    assert [a for a, _ in await _audit(core, c.a_lee_10)] == ["appointment.followup_requested"]
    assert (await _appt(core, c.a_lee_10)).status == "confirmed"


async def test_book_followup_without_a_reachable_staff_member_records_nothing(core: Core) -> None:
    c = await seed(core)
    core.clock = lambda: AFTER
    lee = await make_actor(core, "ULEE", ("practitioner",), practitioner_id=c.lee)
    view = await handle(core, lee, BookFollowUp(c.a_lee_10))  # no chat front end registered
    assert isinstance(view, FollowUp)
    assert "could not reach any staff member" in view.booking_note and view.slots
    assert await _audit(core, c.a_lee_10) == []


async def test_agenda_dm_lists_every_appointment_with_the_practitioners_buttons(core: Core) -> None:
    c = await seed(core)
    lee = await make_actor(core, "ULEE", ("practitioner",), practitioner_id=c.lee)
    async with core.store.session() as s:
        s.add(
            Appointment(
                practice_id=c.practice_id,
                practitioner_id=c.lee,
                start=at(14),
                end=at(14, 45),
                tzid="Europe/London",
                client_name="Zoe Quinn",
                service="Massage",
                status="confirmed",
                version=1,
                exdates=[],
            )
        )
    n = Notification("agenda", c.practice_id, practitioner_id=c.lee, data={"date": "2026-03-03", "count": 3})
    view = await notification_view(core, n, lee)
    assert isinstance(view, Agenda)
    assert [i.time_label for i in view.items] == ["10:00–10:30", "11:00–12:00", "14:00–14:45"]
    assert [i.client for i in view.items] == ["J.R.", "J.D.", "Z.Q."]  # initials by default
    for item in view.items:
        assert {type(a) for a in item.actions} == {OpenReschedule, actions.AskCancel, ShowDetails}
    empty = await notification_view(
        core, Notification("agenda", c.practice_id, practitioner_id=c.lee, data={"date": "2026-03-07"}), lee
    )
    assert isinstance(empty, Agenda) and empty.items == () and "No appointments on Sat 7 Mar 2026" in empty.empty_text


async def test_reminder_dm_in_the_practitioners_zone_with_late_marker_and_projection(core: Core) -> None:
    c = await seed(core)
    lee = await make_actor(core, "ULEE", ("practitioner",), practitioner_id=c.lee)
    async with core.store.session() as s:
        person = await s.get(Practitioner, c.lee)
        appt = await s.get(Appointment, c.a_lee_10)
        practice = await s.get(Practice, c.practice_id)
        assert person and appt and practice
        person.timezone = "America/New_York"
        appt.location_text = "Room 2"
        practice.settings = {**(practice.settings or {}), "dm_projection": "full"}
    n = Notification(
        "reminder",
        c.practice_id,
        practitioner_id=c.lee,
        appointment_ids=(c.a_lee_10,),
        data={"offset_minutes": 60, "late": True},
    )
    view = await notification_view(core, n, lee)
    assert isinstance(view, ReminderCard)
    assert view.item.time_label == "05:00–05:30" and view.timezone == "America/New_York"
    assert view.late and view.headline == "Reminder: starts in 2 hours"  # counted from now when late
    assert (view.item.client, view.item.service, view.location) == ("Jane Roe", "Physio", "Room 2")
    async with core.store.session() as s:
        practice = await s.get(Practice, c.practice_id)
        assert practice
        practice.settings = {**practice.settings, "dm_projection": "busy"}
    busy = await notification_view(core, n, lee)
    assert isinstance(busy, ReminderCard) and busy.item.client == "client"


async def test_status_shows_reminder_counts(core: Core) -> None:
    c = await seed(core)
    staff = await make_actor(core, "USTAFF", ("staff",))
    async with core.store.session() as s:
        for i, status in enumerate(["planned", "planned", "failed", "unknown", "retry"]):
            s.add(
                ReminderLedger(
                    appointment_id=c.a_lee_10,
                    practitioner_id=c.lee,
                    kind=f"before:{i + 1}",
                    fire_at=NOW + timedelta(minutes=i),
                    status=status,
                    next_attempt_at=NOW + timedelta(minutes=i),
                    last_error="Slack refused the message: ratelimited" if status == "failed" else None,
                )
            )
    view = await handle(core, staff, parse("status"))
    assert isinstance(view, Status) and view.reminders is not None
    r = view.reminders
    assert (r.planned, r.retrying, r.failed, r.unknown) == (2, 1, 1, 1) and not r.healthy
    assert "ratelimited" in r.last_error
