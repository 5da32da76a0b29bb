"""Tracking one visit of a repeating event through Nylas (whose occurrences keep ids of their own):
the activity follows that occurrence; an edit of it reaches the activity and an edit of another does
not; a move from chat updates that occurrence only, never the master; the occurrence deleted cancels it.
The shared steps are in tests/adapters/tracked_visits.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sync.services.connections import set_calendar
from tests.adapters import tracked_visits as story
from tests.adapters.nylas.fakes.nylas import Grant, NylasFake, timespan
from tests.adapters.nylas.test_road import connect
from tests.adapters.nylas.test_work_calendar import clinic, fake_slack, nylas
from tests.e2e.conftest import TZ, at
from tests.e2e.test_oauth_connect import Clinic

__all__ = ["clinic", "fake_slack", "nylas"]  # fixtures, used by name


def daily_series(nylas: NylasFake, grant: Grant, cal_id: str) -> tuple[dict[str, Any], list[str]]:
    """A daily series from today at 09:00 with its three occurrences, as Nylas lists them expanded."""
    master = nylas.server_add(grant, cal_id, {"title": story.TITLE, "when": timespan(at(9), 60, TZ),
                                              "recurrence": ["RRULE:FREQ=DAILY;COUNT=3"], "ical_uid": "outreach@work"})
    ids = []
    for day in range(3):
        start: datetime = at(9) + timedelta(days=day)
        occurrence = nylas.server_add(grant, cal_id, {
            "id": f"{master['id']}_{start.astimezone(UTC):%Y%m%dT%H%M%SZ}", "title": story.TITLE,
            "when": timespan(start, 60, TZ), "master_event_id": master["id"], "ical_uid": "outreach@work",
            "original_start_time": int(start.timestamp())})
        ids.append(str(occurrence["id"]))
    return master, ids


class NylasVisits(story.Visits):
    """The occurrences of a daily series of three in the work calendar of a Google account through Nylas."""

    def __init__(self, fake: NylasFake) -> None:
        self.fake = fake
        self.grant: Grant | None = None
        self.cal_id = ""
        self.master: dict[str, Any] = {}
        self.ids: list[str] = []

    async def connect_with_series(self, clinic: Clinic) -> int:
        self.fake.next_login = ("outreach.lead@work.example", "google")
        conn, self.grant, _ = await connect(clinic, self.fake)
        [work] = [c for c in await clinic.calendars() if c.role == "mirror"]
        await set_calendar(clinic.core, work.id, role="work", actor="cli:test")
        self.cal_id = work.remote_id
        self.master, self.ids = daily_series(self.fake, self.grant, self.cal_id)
        return conn.id

    def _grant(self) -> Grant:
        assert self.grant is not None
        return self.grant

    def visit(self, day: int) -> str:
        return self.ids[day]

    def retitle(self, visit: str, title: str) -> None:
        self.fake.server_edit(self._grant(), self.cal_id, visit, {"title": title})

    def move(self, visit: str, start: datetime, end: datetime) -> None:
        minutes = int((end - start).total_seconds() // 60)
        self.fake.server_edit(self._grant(), self.cal_id, visit, {"when": timespan(start, minutes, TZ)})

    def delete(self, visit: str) -> None:
        self.fake.server_delete(self._grant(), self.cal_id, visit)

    def mark(self) -> int:
        return len(self.fake.requests)

    def check_moved(self, visit: str, since: object, start: datetime) -> None:
        assert isinstance(since, int)
        written = [(r.method, r.path.rsplit("/", 1)[-1]) for r in self.fake.requests[since:]
                   if r.method in ("POST", "PUT", "DELETE") and "/events" in r.path]
        assert written == [("PUT", visit)], written
        live = self.fake.live_events(self._grant(), self.cal_id)
        assert live[visit]["when"]["start_time"] == int(start.timestamp())
        master = live[self.master["id"]]
        assert master["when"] == self.master["when"] and master["recurrence"] == self.master["recurrence"]


async def test_one_occurrence_tracked_edited_both_ways_then_deleted(clinic: Clinic, nylas: NylasFake) -> None:
    visits = NylasVisits(nylas)
    conn_id, activity_id = await story.track_todays_visit(clinic, visits)
    await story.another_visit_then_this_one_edited(clinic, visits, conn_id)
    await story.moved_from_chat(clinic, visits, conn_id, activity_id)
    await story.visit_deleted(clinic, visits, conn_id)
