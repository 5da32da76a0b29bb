"""Tracking one visit of a repeating event, end to end, the same story on every calendar platform that
keeps a series with visits of its own (Google, Outlook through Graph, Nylas).

Each platform's test module gives a `Visits` for its fake: how to connect and add a daily series from
today at 09:00, what the visit of a given day is called there, how a person edits, moves and deletes a
visit or the series in the calendar, and what a move from chat must have written. The steps here are
the story: today's visit tracked from the agenda; another visit edited does not reach the activity and
this visit moved does; a move from chat writes this visit only (the series is never written); the visit
deleted, or the whole series deleted, cancels the activity.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from sync.engine.outbox import run_until_idle
from sync.store.model import Link
from tests.adapters.nylas.test_tracked_events import activities, ask, synced, work_ref
from tests.e2e.conftest import at
from tests.e2e.test_oauth_connect import Clinic

__all__ = ["TITLE", "Visits", "another_visit_then_this_one_edited", "moved_from_chat", "series_deleted",
           "track_todays_visit", "visit_deleted"]

TITLE = "Outreach clinic at Northside"


class Visits:
    """One platform's fake seen as a calendar of visits of a daily series (TITLE, 09:00-10:00)."""

    #: What the tracked activity's recurrence_key must be (None: any non-empty key).
    recurrence_key: str | None = None

    async def connect_with_series(self, clinic: Clinic) -> int:
        """The platform connected from chat, its calendar made a work calendar, the series added there:
        the connection's id."""
        raise NotImplementedError

    def visit(self, day: int) -> str:
        """The remote id of the visit `day` days from today (the id a tracked visit's link keeps)."""
        raise NotImplementedError

    def retitle(self, visit: str, title: str) -> None:
        raise NotImplementedError

    def move(self, visit: str, start: datetime, end: datetime) -> None:
        raise NotImplementedError

    def delete(self, visit: str) -> None:
        raise NotImplementedError

    def delete_series(self) -> None:
        raise NotImplementedError

    def mark(self) -> object:
        """Where the fake stands now (its request log; the series as it is), for `check_moved`."""
        raise NotImplementedError

    def check_moved(self, visit: str, since: object, start: datetime) -> None:
        """A move from chat wrote `visit` only, now at `start`; the series is as it was."""
        raise NotImplementedError


async def track_todays_visit(clinic: Clinic, visits: Visits) -> tuple[int, int]:
    """Today's visit tracked from the agenda, its link keeping the visit's id, and read back unchanged:
    (connection id, activity id)."""
    conn_id = await visits.connect_with_series(clinic)
    agenda = await ask(clinic, "today", "UP", "agenda")
    answer = await ask(clinic, f"track {work_ref(agenda, TITLE)}", "UP", "track")
    [activity] = await activities(clinic)
    assert f"now tracked as A-{activity.id}" in answer, answer
    assert activity.start == at(9) and activity.rrule is None and activity.recurrence_key
    if visits.recurrence_key is not None:
        assert activity.recurrence_key == visits.recurrence_key
    async with clinic.core.store.session() as s:
        [link] = (await s.scalars(select(Link).where(Link.appointment_id == activity.id))).all()
    assert link.remote_id == visits.visit(0)
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.start == at(9) and activity.version == 1  # the series read back: nothing changed
    return conn_id, activity.id


async def another_visit_then_this_one_edited(clinic: Clinic, visits: Visits, conn_id: int) -> None:
    """Tomorrow's visit edited in the calendar: not this activity's business. Today's moved: it follows."""
    visits.retitle(visits.visit(1), "Outreach clinic (moved room)")
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.version == 1 and activity.title == TITLE

    visits.move(visits.visit(0), at(11), at(12))
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert (activity.start, activity.end, activity.version) == (at(11), at(12), 2)


async def moved_from_chat(clinic: Clinic, visits: Visits, conn_id: int, activity_id: int) -> None:
    """A move from chat writes this visit only (an exception), never the series; read back, no change."""
    since = visits.mark()
    moved = await ask(clinic, f"reschedule A-{activity_id} today 3pm", "UP", "move")
    assert "15:00" in moved, moved
    await run_until_idle(clinic.core)
    visits.check_moved(visits.visit(0), since, at(15))
    await synced(clinic, conn_id)  # our own write read back: no change
    [activity] = await activities(clinic)
    assert activity.start == at(15) and activity.status == "confirmed"


async def visit_deleted(clinic: Clinic, visits: Visits, conn_id: int) -> None:
    """Today's visit deleted in the calendar: the activity is cancelled."""
    visits.delete(visits.visit(0))
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.status == "cancelled"


async def series_deleted(clinic: Clinic, visits: Visits) -> None:
    """Today's visit tracked, then the whole series deleted: the activity is cancelled."""
    conn_id, _ = await track_todays_visit(clinic, visits)
    visits.delete_series()
    await synced(clinic, conn_id)
    [activity] = await activities(clinic)
    assert activity.status == "cancelled"
