"""Tracking one visit of a repeating Outlook event, end to end (Slack, SQLite and PostgreSQL): the
activity follows that visit by its occurrence id; an edit of that visit in Outlook reaches it and an
edit of another visit does not; a move from chat patches that occurrence only (Outlook makes it an
exception; the series is never written); the visit deleted, or the series deleted, cancels it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select

from sync.engine.outbox import run_until_idle
from sync.services.connections import set_calendar
from sync.store.model import Link
from tests.adapters.graph.conftest import TENANT
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox, StoredEvent
from tests.adapters.nylas.test_tracked_events import activities, ask, synced, work_ref
from tests.e2e.conftest import at
from tests.e2e.test_oauth_connect import Clinic, fake_slack, graph, graph_clinic, practitioner_connects, sign_in_link

__all__ = ["fake_slack", "graph", "graph_clinic"]  # fixtures, used by name

TITLE = "Outreach clinic at Northside"


def utc(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def visit(series: StoredEvent, moment: datetime) -> str:
    return f"{series.id}_{moment.astimezone(UTC):%Y%m%dT%H%M}"


async def track_todays_visit(clinic: Clinic, graph: GraphFake) -> tuple[int, int, Mailbox, StoredEvent]:
    """Outlook connected from chat, made a work calendar, a daily series from today at 09:00, today's
    visit tracked from the agenda: (connection id, activity id, mailbox, series)."""
    mailbox = graph.add_user("dr.lee@clinic.example", tenant_id=TENANT)
    link = sign_in_link(await practitioner_connects(clinic, "outlook"),
                        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize?")
    back = graph.login.approve(link, mailbox.user.upn)
    async with clinic.browser.get(f"{clinic.base_url}/oauth/graph/callback?{urlencode(back)}") as page:
        assert page.status == 200, await page.text()
    [calendar] = await clinic.calendars()
    await set_calendar(clinic.core, calendar.id, role="work", actor="cli:test")
    series = graph.put_event(mailbox, {
        "subject": TITLE, "start": utc(at(9)), "end": utc(at(10)),
        "recurrence": {"pattern": {"type": "daily", "interval": 1},
                       "range": {"type": "numbered", "startDate": at(9).date().isoformat(),
                                 "numberOfOccurrences": 5}}})
    agenda = await ask(clinic, "today", "UP", "agenda")
    answer = await ask(clinic, f"track {work_ref(agenda, TITLE)}", "UP", "track")
    [activity] = await activities(clinic)
    assert f"now tracked as A-{activity.id}" in answer, answer
    assert activity.start == at(9) and activity.rrule is None and activity.recurrence_key
    async with clinic.core.store.session() as s:
        [row] = (await s.scalars(select(Link).where(Link.appointment_id == activity.id))).all()
    assert row.remote_id == visit(series, at(9))
    conn = await clinic.connection()
    await synced(clinic, conn.id)
    [activity] = await activities(clinic)
    assert activity.start == at(9) and activity.version == 1
    return conn.id, activity.id, mailbox, series


def writes(fake: GraphFake, since: int) -> list[tuple[str, str]]:
    return [(m, p.rsplit("/", 1)[-1]) for m, p in fake.http_requests[since:] if m in ("PATCH", "POST", "DELETE")
            and "/events" in p]


async def test_one_visit_tracked_edited_both_ways_then_deleted(graph_clinic: Clinic, graph: GraphFake) -> None:
    clinic = graph_clinic
    conn_id, activity_id, mailbox, series = await track_todays_visit(clinic, graph)
    today, tomorrow = visit(series, at(9)), visit(series, at(9) + timedelta(days=1))

    graph.edit_occurrence(mailbox, tomorrow, {"subject": "Outreach clinic (moved room)"})
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.version == 1 and activity.title == TITLE

    graph.edit_occurrence(mailbox, today, {"start": utc(at(11)), "end": utc(at(12))})
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert (activity.start, activity.end, activity.version) == (at(11), at(12), 2)

    before: dict[str, Any] = dict(series.fields)
    since = len(graph.http_requests)
    moved = await ask(clinic, f"reschedule A-{activity_id} today 3pm", "UP", "move")
    assert "15:00" in moved, moved
    await run_until_idle(clinic.core)
    assert writes(graph, since) == [("PATCH", today)]
    assert series.fields == before and series.exceptions[today]["start"] == at(15)
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.start == at(15) and activity.status == "confirmed"

    graph.remove_occurrence(mailbox, today)
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.status == "cancelled"


async def test_series_deleted_cancels_the_tracked_visit(graph_clinic: Clinic, graph: GraphFake) -> None:
    clinic = graph_clinic
    conn_id, _, mailbox, series = await track_todays_visit(clinic, graph)
    graph.remove_event(mailbox, series.id)
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.status == "cancelled"
