"""Tracking one visit of a repeating Google event, end to end (Slack, SQLite and PostgreSQL): the
activity follows that visit by its instance id (`<series id>_<YYYYMMDDTHHMMSSZ>`); an edit of that
visit in Google reaches it and an edit of another visit does not; a move from chat writes that
visit only (Google makes it an exception; the series is never written); cancelling the visit, or
deleting the series, or ending the series before it, cancels the activity. The shared steps are in
tests/adapters/tracked_visits.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sync.services.connections import set_calendar
from tests.adapters import tracked_visits as story
from tests.adapters.google.conftest import PRIMARY
from tests.adapters.google.fakes.google import GoogleFake
from tests.adapters.google.test_tracked_attachments import sign_in
from tests.adapters.nylas.test_tracked_events import activities, ask, synced
from tests.e2e.conftest import TZ, at
from tests.e2e.test_oauth_connect import Clinic, fake_slack, google, google_clinic

__all__ = ["fake_slack", "google", "google_clinic"]  # fixtures, used by name


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def when(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.isoformat(), "timeZone": TZ}


class GoogleVisits(story.Visits):
    """Google's instances of a daily series of five, from today at 09:00, in the primary calendar."""

    recurrence_key = stamp(at(9))

    def __init__(self, fake: GoogleFake) -> None:
        self.fake = fake
        self.series: dict[str, Any] = {}

    async def connect_with_series(self, clinic: Clinic) -> int:
        await ask(clinic, "role grant practitioner <@UP|pat> @dr-lee", "US", "grant")
        await sign_in(clinic, self.fake, "connect google")
        [calendar] = [c for c in await clinic.calendars() if c.remote_id == PRIMARY]
        await set_calendar(clinic.core, calendar.id, role="work", actor="cli:test")
        self.series = self.fake.server_insert(PRIMARY, {
            "summary": story.TITLE, "recurrence": ["RRULE:FREQ=DAILY;COUNT=5"],
            "start": when(at(9)), "end": when(at(10)),
        })
        return (await clinic.connection()).id

    def visit(self, day: int) -> str:
        return f"{self.series['id']}_{stamp(at(9) + timedelta(days=day))}"

    def retitle(self, visit: str, title: str) -> None:
        self.fake.server_patch(PRIMARY, visit, {"summary": title})

    def move(self, visit: str, start: datetime, end: datetime) -> None:
        self.fake.server_patch(PRIMARY, visit, {"start": when(start), "end": when(end)})

    def delete(self, visit: str) -> None:
        self.fake.server_delete(PRIMARY, visit)

    def delete_series(self) -> None:
        self.fake.server_delete(PRIMARY, self.series["id"])

    def mark(self) -> int:
        return len(self.fake.send_updates)

    def check_moved(self, visit: str, since: object, start: datetime) -> None:
        assert isinstance(since, int)
        writes = self.fake.send_updates[since:]
        assert [(method, event_id) for method, event_id, _ in writes] == [("patch", visit)]
        moved = self.fake.calendar(PRIMARY).get(visit)
        assert moved["start"]["dateTime"].startswith(start.isoformat()[:16]) and moved["summary"] == story.TITLE
        master = self.fake.calendar(PRIMARY).get(self.series["id"])
        assert master["recurrence"] == self.series["recurrence"] and master["start"] == self.series["start"]


async def test_one_visit_tracked_edited_both_ways_then_cancelled(google_clinic: Clinic, google: GoogleFake) -> None:
    clinic, visits = google_clinic, GoogleVisits(google)
    conn_id, activity_id = await story.track_todays_visit(clinic, visits)
    await story.another_visit_then_this_one_edited(clinic, visits, conn_id)
    await story.moved_from_chat(clinic, visits, conn_id, activity_id)

    # The series edited as a whole: the moved visit stays where it was moved to.
    google.server_patch(PRIMARY, visits.series["id"], {"location": "Northside health centre, room 2"})
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.start == at(15) and activity.status == "confirmed"

    await story.visit_deleted(clinic, visits, conn_id)


async def test_series_deleted_cancels_the_tracked_visit(google_clinic: Clinic, google: GoogleFake) -> None:
    await story.series_deleted(google_clinic, GoogleVisits(google))


async def test_series_ended_before_the_visit_cancels_it(google_clinic: Clinic, google: GoogleFake) -> None:
    clinic, visits = google_clinic, GoogleVisits(google)
    conn_id, _ = await story.track_todays_visit(clinic, visits)
    # The series now starts a day later: today's visit is no longer one of its visits.
    day = timedelta(days=1)
    google.server_patch(PRIMARY, visits.series["id"], {"start": when(at(9) + day), "end": when(at(10) + day)})
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.status == "cancelled"
