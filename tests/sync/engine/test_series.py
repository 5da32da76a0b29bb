"""Recurring series kept as one row (CalDAV, iCloud, ICS): their visits on any day, and in clash checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from sync.engine.recurrence import recurrence_key
from sync.engine.series import describe, expand, is_series, refuse_change
from sync.runtime.core import Core
from sync.services import appointments as svc
from sync.store.model import Appointment, Calendar, Connection, Practice, Practitioner

BERLIN = ZoneInfo("Europe/Berlin")


def _series(start: datetime, minutes: int = 50, rrule: str = "FREQ=WEEKLY", **extra: object) -> Appointment:
    fields: dict[str, object] = {"id": 7, "practice_id": 1, "start": start, "end": start + timedelta(minutes=minutes),
                                 "tzid": "Europe/Berlin", "rrule": rrule, "exdates": [], "recurrence_key": "",
                                 "status": "confirmed", "version": 1}  # fmt: skip
    return Appointment(**{**fields, **extra})


def _day(d: date) -> tuple[datetime, datetime]:
    start = datetime(d.year, d.month, d.day, tzinfo=BERLIN)
    return start, start + timedelta(days=1)


def test_a_weekly_visit_keeps_its_wall_clock_time_across_a_dst_change() -> None:
    weekly = _series(datetime(2026, 3, 3, 9, 0, tzinfo=BERLIN))  # Tuesdays 09:00; DST starts 29 March
    [(before, _)] = expand(weekly, *_day(date(2026, 3, 24)))
    [(after, end)] = expand(weekly, *_day(date(2026, 3, 31)))
    assert before.astimezone(BERLIN).hour == 9 and after.astimezone(BERLIN).hour == 9
    assert before.utcoffset() == timedelta(hours=1) and after.utcoffset() == timedelta(hours=2)
    assert end - after == timedelta(minutes=50)
    assert expand(weekly, *_day(date(2026, 3, 25))) == []  # a Wednesday


def test_exdates_until_and_count_end_or_skip_visits() -> None:
    first = datetime(2026, 3, 3, 9, 0, tzinfo=BERLIN)
    skipped = _series(first, exdates=[(first + timedelta(weeks=2)).astimezone(UTC).isoformat()])
    assert expand(skipped, *_day(date(2026, 3, 17))) == []
    assert len(expand(skipped, *_day(date(2026, 3, 24)))) == 1
    until = _series(first, rrule="FREQ=WEEKLY;UNTIL=20260311T000000Z")
    assert len(expand(until, first, first + timedelta(weeks=10))) == 2
    counted = _series(first, rrule="RRULE:FREQ=DAILY;COUNT=3")
    assert len(expand(counted, first, first + timedelta(weeks=10))) == 3
    dated = _series(first, rrule="FREQ=WEEKLY;UNTIL=20260310")  # a date-only UNTIL on a timed series
    assert len(expand(dated, first, first + timedelta(weeks=10))) == 2


def test_all_day_and_unreadable_series() -> None:
    day = _series(datetime(2026, 3, 2, 0, 0, tzinfo=BERLIN), minutes=24 * 60, rrule="FREQ=WEEKLY;BYDAY=MO")
    day.all_day = True
    [(start, end)] = expand(day, *_day(date(2026, 3, 30)))
    assert start == datetime(2026, 3, 30, tzinfo=BERLIN) and end - start == timedelta(days=1)
    assert (
        expand(_series(datetime(2026, 3, 3, 9, tzinfo=BERLIN), rrule="FREQ=SOMETIMES"), *_day(date(2026, 3, 10))) == []
    )


def test_how_a_series_is_described_and_why_chat_does_not_change_it() -> None:
    weekly = _series(datetime(2026, 3, 3, 9, 0, tzinfo=BERLIN))
    assert is_series(weekly)
    assert describe(weekly, "Europe/Berlin").startswith("Repeats every week since Tue 3 Mar 2026.")
    assert "calendar it comes from" in (refuse_change(weekly) or "")
    override = _series(datetime(2026, 3, 10, 11, 0, tzinfo=BERLIN), recurrence_key="20260310T080000Z")
    assert not is_series(override) and refuse_change(override) is None and describe(override, "UTC") == ""


async def _clinic(core: Core) -> tuple[int, int, int]:
    async with core.store.session() as s:
        practice = await s.scalar(select(Practice))
        assert practice is not None
        practice.timezone = "Europe/Berlin"
        pr = Practitioner(practice_id=practice.id, name="Dr Weekly", handle="dr-weekly", timezone="Europe/Berlin",
                          reminder_prefs={})  # fmt: skip
        conn = Connection(practice_id=practice.id, provider="caldav", account="cal@example.test", config={})
        s.add_all([pr, conn])
        await s.flush()
        cal = Calendar(connection_id=conn.id, remote_id="/cal/therapy/", name="Therapy", role="source")
        s.add(cal)
        await s.flush()
        return practice.id, pr.id, cal.id


async def test_a_day_lists_the_visits_of_series_and_their_moved_visits(core: Core) -> None:
    practice_id, pr_id, cal_id = await _clinic(core)
    first = datetime(2026, 1, 6, 9, 0, tzinfo=BERLIN)  # Tuesdays since January
    moved_from = datetime(2026, 3, 10, 9, 0, tzinfo=BERLIN)
    async with core.store.session() as s:
        common = {"practice_id": practice_id, "practitioner_id": pr_id, "source_calendar_id": cal_id,
                  "source_uid": "weekly-1", "tzid": "Europe/Berlin", "client_name": "Sam Series",
                  "status": "confirmed", "exdates": []}  # fmt: skip
        s.add(Appointment(start=first, end=first + timedelta(minutes=50), rrule="FREQ=WEEKLY", recurrence_key="",
                          **common))  # fmt: skip
        moved = moved_from + timedelta(hours=5)
        s.add(Appointment(start=moved, end=moved + timedelta(minutes=50), recurrence_key=recurrence_key(moved_from),
                          **common))  # fmt: skip
    async with core.store.session() as s:
        tuesday = await svc.list_day(s, practice_id, date(2026, 3, 3), "Europe/Berlin")
        assert [(a.start.astimezone(BERLIN).hour, a.client_name) for a in tuesday] == [(9, "Sam Series")]
        assert is_series(tuesday[0])  # a visit of the series: chat shows it, the calendar changes it
        changed = await svc.list_day(s, practice_id, date(2026, 3, 10), "Europe/Berlin")
        assert [a.start.astimezone(BERLIN).hour for a in changed] == [14]  # the moved visit, once
        assert not is_series(changed[0])
        assert await svc.list_day(s, practice_id, date(2026, 3, 4), "Europe/Berlin") == []
        clash = await svc.find_overlaps(
            s, pr_id, datetime(2026, 3, 17, 9, 30, tzinfo=BERLIN), datetime(2026, 3, 17, 10, tzinfo=BERLIN)
        )
        assert [a.start for a in clash] == [datetime(2026, 3, 17, 9, 0, tzinfo=BERLIN)]
        # nothing was added to the session: the visits are copies, the rows are as they were
        assert [a.start for a in (await s.scalars(select(Appointment).order_by(Appointment.id))).all()] == [
            first,
            moved_from + timedelta(hours=5),
        ]


def test_skipping_ahead_to_the_span_gives_the_same_visits() -> None:
    """Expanding from the first visit and from a later whole period agree, for every kind of rule."""
    first = datetime(2023, 1, 31, 9, 0, tzinfo=BERLIN)
    rules = [
        "FREQ=WEEKLY", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH", "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
        "FREQ=DAILY;INTERVAL=3", "FREQ=MONTHLY", "FREQ=MONTHLY;BYDAY=2TU", "FREQ=MONTHLY;BYMONTHDAY=31",
        "FREQ=YEARLY", "FREQ=WEEKLY;COUNT=40", "FREQ=WEEKLY;UNTIL=20250601T000000Z",
    ]  # fmt: skip
    for start in (first, datetime(2023, 3, 14, 8, 30, tzinfo=BERLIN)):
        for rule in rules:
            weekly = _series(start, rrule=rule)
            for day in (date(2023, 2, 1), date(2024, 3, 31), date(2025, 10, 26), date(2026, 11, 10)):
                span = (
                    datetime.combine(day, datetime.min.time(), BERLIN),
                    datetime.combine(day, datetime.min.time(), BERLIN) + timedelta(days=9),
                )
                assert expand(weekly, *span) == expand(weekly, *span, skip_ahead=False), (rule, start, day)
    allday = _series(datetime(2023, 1, 2, 0, 0, tzinfo=BERLIN), minutes=24 * 60, rrule="FREQ=WEEKLY;BYDAY=MO")
    allday.all_day = True
    span = (datetime(2026, 3, 28, tzinfo=BERLIN), datetime(2026, 4, 7, tzinfo=BERLIN))
    assert expand(allday, *span) == expand(allday, *span, skip_ahead=False) != []


def test_how_other_rules_are_described() -> None:
    start = datetime(2026, 3, 3, 9, 0, tzinfo=BERLIN)
    assert describe(_series(start, rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=TU"), "UTC").startswith("Repeats every 2 weeks")
    assert describe(_series(start, rrule="RRULE:FREQ=MONTHLY;BYDAY=1TU"), "UTC").startswith("Repeats every month")
    assert describe(_series(start, rrule="FREQ=HOURLY"), "UTC").startswith("Repeats on a schedule")
