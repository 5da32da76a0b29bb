"""Tracking one visit of a repeating event through Nylas (whose occurrences keep ids of their own):
the activity follows that occurrence; an edit of it reaches the activity and an edit of another does
not; a move from chat updates that occurrence only, never the master; the occurrence deleted cancels it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from sync.engine.outbox import run_until_idle
from sync.services.connections import set_calendar
from sync.store.model import Link
from tests.adapters.nylas.fakes.nylas import Grant, NylasFake, timespan
from tests.adapters.nylas.test_road import connect
from tests.adapters.nylas.test_tracked_events import activities, ask, synced, work_ref
from tests.adapters.nylas.test_work_calendar import clinic, fake_slack, nylas
from tests.e2e.conftest import TZ, at
from tests.e2e.test_oauth_connect import Clinic

__all__ = ["clinic", "fake_slack", "nylas"]  # fixtures, used by name

TITLE = "Outreach clinic at Northside"


def daily_series(nylas: NylasFake, grant: Grant, cal_id: str) -> tuple[dict[str, Any], list[str]]:
    """A daily series from today at 09:00 with its three occurrences, as Nylas lists them expanded."""
    master = nylas.server_add(grant, cal_id, {"title": TITLE, "when": timespan(at(9), 60, TZ),
                                              "recurrence": ["RRULE:FREQ=DAILY;COUNT=3"], "ical_uid": "outreach@work"})
    ids = []
    for day in range(3):
        start: datetime = at(9) + timedelta(days=day)
        occurrence = nylas.server_add(grant, cal_id, {
            "id": f"{master['id']}_{start.astimezone(UTC):%Y%m%dT%H%M%SZ}", "title": TITLE,
            "when": timespan(start, 60, TZ), "master_event_id": master["id"], "ical_uid": "outreach@work",
            "original_start_time": int(start.timestamp())})
        ids.append(str(occurrence["id"]))
    return master, ids


async def test_one_occurrence_tracked_edited_both_ways_then_deleted(clinic: Clinic, nylas: NylasFake) -> None:
    nylas.next_login = ("outreach.lead@work.example", "google")
    conn, grant, _ = await connect(clinic, nylas)
    [work] = [c for c in await clinic.calendars() if c.role == "mirror"]
    await set_calendar(clinic.core, work.id, role="work", actor="cli:test")
    master, (today, tomorrow, _) = daily_series(nylas, grant, work.remote_id)

    agenda = await ask(clinic, "today", "UP", "agenda")
    answer = await ask(clinic, f"track {work_ref(agenda, TITLE)}", "UP", "track")
    [activity] = await activities(clinic)
    assert f"now tracked as A-{activity.id}" in answer, answer
    assert activity.start == at(9) and activity.recurrence_key and activity.rrule is None
    async with clinic.core.store.session() as s:
        [link] = (await s.scalars(select(Link).where(Link.appointment_id == activity.id))).all()
    assert link.remote_id == today
    await synced(clinic, conn.id)

    nylas.server_edit(grant, work.remote_id, tomorrow, {"title": "Outreach clinic (moved room)"})
    nylas.server_edit(grant, work.remote_id, today, {"when": timespan(at(11), 60, TZ)})
    await synced(clinic, conn.id)
    [activity] = await activities(clinic)
    assert (activity.start, activity.title, activity.version) == (at(11), TITLE, 2)

    moved = await ask(clinic, f"reschedule A-{activity.id} today 3pm", "UP", "move")
    assert "15:00" in moved, moved
    await run_until_idle(clinic.core)
    live = nylas.live_events(grant, work.remote_id)
    assert live[today]["when"]["start_time"] == int(at(15).timestamp())
    assert live[master["id"]]["when"] == master["when"] and live[master["id"]]["recurrence"] == master["recurrence"]
    await synced(clinic, conn.id)
    [activity] = await activities(clinic)
    assert activity.start == at(15) and activity.status == "confirmed"

    nylas.server_delete(grant, work.remote_id, today)
    await synced(clinic, conn.id)
    [activity] = await activities(clinic)
    assert activity.status == "cancelled"
