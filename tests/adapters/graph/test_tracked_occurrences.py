"""Tracking one visit of a repeating Outlook event, end to end (Slack, SQLite and PostgreSQL): the
activity follows that visit by its occurrence id; an edit of that visit in Outlook reaches it and an
edit of another visit does not; a move from chat patches that occurrence only (Outlook makes it an
exception; the series is never written); the visit deleted, or the series deleted, cancels it. The
shared steps are in tests/adapters/tracked_visits.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sync.services.connections import set_calendar
from tests.adapters import tracked_visits as story
from tests.adapters.graph.conftest import TENANT
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox, StoredEvent
from tests.e2e.conftest import at
from tests.e2e.test_oauth_connect import Clinic, fake_slack, graph, graph_clinic, practitioner_connects, sign_in_link

__all__ = ["fake_slack", "graph", "graph_clinic"]  # fixtures, used by name


def utc(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def writes(fake: GraphFake, since: int) -> list[tuple[str, str]]:
    return [(m, p.rsplit("/", 1)[-1]) for m, p in fake.http_requests[since:] if m in ("PATCH", "POST", "DELETE")
            and "/events" in p]


class GraphVisits(story.Visits):
    """Outlook's occurrences of a daily series of five, from today at 09:00, in Dr Lee's mailbox."""

    def __init__(self, fake: GraphFake) -> None:
        self.fake = fake
        self.mailbox: Mailbox | None = None
        self.series: StoredEvent | None = None
        self.before: dict[str, Any] = {}

    async def connect_with_series(self, clinic: Clinic) -> int:
        mailbox = self.mailbox = self.fake.add_user("dr.lee@clinic.example", tenant_id=TENANT)
        link = sign_in_link(await practitioner_connects(clinic, "outlook"),
                            "https://login.microsoftonline.com/common/oauth2/v2.0/authorize?")
        back = self.fake.login.approve(link, mailbox.user.upn)
        async with clinic.browser.get(f"{clinic.base_url}/oauth/graph/callback?{urlencode(back)}") as page:
            assert page.status == 200, await page.text()
        [calendar] = await clinic.calendars()
        await set_calendar(clinic.core, calendar.id, role="work", actor="cli:test")
        self.series = self.fake.put_event(mailbox, {
            "subject": story.TITLE, "start": utc(at(9)), "end": utc(at(10)),
            "recurrence": {"pattern": {"type": "daily", "interval": 1},
                           "range": {"type": "numbered", "startDate": at(9).date().isoformat(),
                                     "numberOfOccurrences": 5}}})
        return (await clinic.connection()).id

    def _mailbox(self) -> Mailbox:
        assert self.mailbox is not None
        return self.mailbox

    def _series(self) -> StoredEvent:
        assert self.series is not None
        return self.series

    def visit(self, day: int) -> str:
        return f"{self._series().id}_{(at(9) + timedelta(days=day)).astimezone(UTC):%Y%m%dT%H%M}"

    def retitle(self, visit: str, title: str) -> None:
        self.fake.edit_occurrence(self._mailbox(), visit, {"subject": title})

    def move(self, visit: str, start: datetime, end: datetime) -> None:
        self.fake.edit_occurrence(self._mailbox(), visit, {"start": utc(start), "end": utc(end)})

    def delete(self, visit: str) -> None:
        self.fake.remove_occurrence(self._mailbox(), visit)

    def delete_series(self) -> None:
        self.fake.remove_event(self._mailbox(), self._series().id)

    def mark(self) -> int:
        self.before = dict(self._series().fields)
        return len(self.fake.http_requests)

    def check_moved(self, visit: str, since: object, start: datetime) -> None:
        assert isinstance(since, int)
        assert writes(self.fake, since) == [("PATCH", visit)]
        series = self._series()
        assert series.fields == self.before and series.exceptions[visit]["start"] == start


async def test_one_visit_tracked_edited_both_ways_then_deleted(graph_clinic: Clinic, graph: GraphFake) -> None:
    clinic, visits = graph_clinic, GraphVisits(graph)
    conn_id, activity_id = await story.track_todays_visit(clinic, visits)
    await story.another_visit_then_this_one_edited(clinic, visits, conn_id)
    await story.moved_from_chat(clinic, visits, conn_id, activity_id)
    await story.visit_deleted(clinic, visits, conn_id)


async def test_series_deleted_cancels_the_tracked_visit(graph_clinic: Clinic, graph: GraphFake) -> None:
    await story.series_deleted(graph_clinic, GraphVisits(graph))
