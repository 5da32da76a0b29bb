"""Tracking one visit of a repeating Google event, end to end (Slack, SQLite and PostgreSQL): the
activity follows that visit by its instance id (`<series id>_<YYYYMMDDTHHMMSSZ>`); an edit of that
visit in Google reaches it and an edit of another visit does not; a move from chat writes that
visit only (Google makes it an exception; the series is never written); cancelling the visit, or
deleting the series, or ending the series before it, cancels the activity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from sync.engine.outbox import run_until_idle
from sync.services.connections import set_calendar
from sync.store.model import Link
from tests.adapters.google.conftest import PRIMARY
from tests.adapters.google.fakes.google import GoogleFake
from tests.adapters.google.test_tracked_attachments import sign_in
from tests.adapters.nylas.test_tracked_events import activities, ask, synced, work_ref
from tests.e2e.conftest import TZ, at
from tests.e2e.test_oauth_connect import Clinic, fake_slack, google, google_clinic

__all__ = ["fake_slack", "google", "google_clinic"]  # fixtures, used by name

TITLE = "Outreach clinic at Northside"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def when(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.isoformat(), "timeZone": TZ}


async def track_todays_visit(clinic: Clinic, fake: GoogleFake, rule: str = "RRULE:FREQ=DAILY;COUNT=5"
                             ) -> tuple[int, int, dict[str, Any]]:
    """Google connected from chat; the calendar made a work calendar; a daily series from today at
    09:00 added; today's visit tracked from the agenda. (connection id, activity id, series)."""
    await ask(clinic, "role grant practitioner <@UP|pat> @dr-lee", "US", "grant")
    await sign_in(clinic, fake, "connect google")
    [calendar] = [c for c in await clinic.calendars() if c.remote_id == PRIMARY]
    await set_calendar(clinic.core, calendar.id, role="work", actor="cli:test")
    series = fake.server_insert(PRIMARY, {
        "summary": TITLE, "recurrence": [rule],
        "start": when(at(9)), "end": when(at(10)),
    })
    agenda = await ask(clinic, "today", "UP", "agenda")
    answer = await ask(clinic, f"track {work_ref(agenda, TITLE)}", "UP", "track")
    [activity] = await activities(clinic)
    assert f"now tracked as A-{activity.id}" in answer, answer
    assert activity.start == at(9) and activity.rrule is None and activity.recurrence_key == stamp(at(9))
    async with clinic.core.store.session() as s:
        [link] = (await s.scalars(select(Link).where(Link.appointment_id == activity.id))).all()
    assert link.remote_id == f"{series['id']}_{stamp(at(9))}"
    conn = await clinic.connection()
    await synced(clinic, conn.id)
    [activity] = await activities(clinic)
    assert activity.start == at(9) and activity.version == 1  # the series read back: nothing changed
    return conn.id, activity.id, series


async def test_one_visit_tracked_edited_both_ways_then_cancelled(google_clinic: Clinic, google: GoogleFake) -> None:
    clinic = google_clinic
    conn_id, activity_id, series = await track_todays_visit(clinic, google)
    today = f"{series['id']}_{stamp(at(9))}"
    tomorrow = f"{series['id']}_{stamp(at(9) + timedelta(days=1))}"

    # Another visit edited in Google: not this activity's business.
    google.server_patch(PRIMARY, tomorrow, {"summary": "Outreach clinic (moved room)"})
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.version == 1 and activity.title == TITLE

    # This visit moved in Google: the activity follows.
    google.server_patch(PRIMARY, today, {"start": when(at(11)), "end": when(at(12))})
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert (activity.start, activity.end, activity.version) == (at(11), at(12), 2)

    # A move from chat writes this visit only (an exception), never the series.
    writes_before = len(google.send_updates)
    moved = await ask(clinic, f"reschedule A-{activity_id} today 3pm", "UP", "move")
    assert "15:00" in moved, moved
    await run_until_idle(clinic.core)
    writes = google.send_updates[writes_before:]
    assert [(method, event_id) for method, event_id, _ in writes] == [("patch", today)]
    visit = google.calendar(PRIMARY).get(today)
    assert visit["start"]["dateTime"].startswith(at(15).isoformat()[:16]) and visit["summary"] == TITLE
    master = google.calendar(PRIMARY).get(series["id"])
    assert master["recurrence"] == series["recurrence"] and master["start"] == series["start"]
    await synced(clinic, conn_id)  # our own write read back: no change
    [activity] = await activities(clinic)
    assert activity.start == at(15) and activity.status == "confirmed"

    # The series edited as a whole: the moved visit stays where it was moved to.
    google.server_patch(PRIMARY, series["id"], {"location": "Northside health centre, room 2"})
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.start == at(15) and activity.status == "confirmed"

    # The visit cancelled in Google: the activity is cancelled.
    google.server_delete(PRIMARY, today)
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.status == "cancelled"


async def test_series_deleted_cancels_the_tracked_visit(google_clinic: Clinic, google: GoogleFake) -> None:
    clinic = google_clinic
    conn_id, _, series = await track_todays_visit(clinic, google)
    google.server_delete(PRIMARY, series["id"])
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.status == "cancelled"


async def test_series_ended_before_the_visit_cancels_it(google_clinic: Clinic, google: GoogleFake) -> None:
    clinic = google_clinic
    conn_id, _, series = await track_todays_visit(clinic, google)
    # The series now starts a day later: today's visit is no longer one of its visits.
    day = timedelta(days=1)
    google.server_patch(PRIMARY, series["id"], {"start": when(at(9) + day), "end": when(at(10) + day)})
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.status == "cancelled"
