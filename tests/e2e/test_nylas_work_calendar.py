"""Issue 16's "done when", end to end through the running server (Slack front end, sync worker, the
app-wide Nylas webhook), polling off: a practitioner connects a work calendar through Nylas from
chat (`connect nylas`, hosted sign-in on the fake, callback); `/clinic today` shows its events
beside the practice's appointments; they track one; an edit made in Nylas reaches the activity
through the webhook alone; a move typed in chat reaches Nylas through the outbox, and Nylas's own
notification of that write changes nothing more. (Nylas events carry no attachments.)

The details of tracking (untrack, re-track, what is stored) are in tests/adapters/nylas/."""

from __future__ import annotations

import json

from sqlalchemy import select

from sync.engine.outbox import run_until_idle
from sync.services.connections import set_calendar
from sync.store.model import ACTIVITY, AuditEntry
from tests.adapters.nylas.fakes.nylas import NylasFake, timespan
from tests.adapters.nylas.test_road import clinic, connect, nylas, settle
from tests.adapters.nylas.test_tracked_events import activities, ask, work_buttons
from tests.e2e.conftest import TZ, at
from tests.e2e.test_oauth_connect import Clinic, fake_slack

__all__ = ["clinic", "fake_slack", "nylas"]  # fixtures, used by name

VISIT = "Referral visit: St Mary's cardiology"
BOOKING = "Physio follow-up"


def agenda_texts(answer: str) -> tuple[list[str], list[str]]:
    """(appointment blocks, work-event blocks) of a Slack agenda, as their text."""
    blocks = [b for b in json.loads(answer)["blocks"] if b.get("type") == "section" and "text" in b]
    work = [b["text"]["text"] for b in blocks if str(b.get("block_id", "")).startswith("work:")]
    rest = [b["text"]["text"] for b in blocks if not str(b.get("block_id", "")).startswith("work:")]
    return rest, work


async def test_connect_see_track_and_edit_both_ways_through_the_webhook(clinic: Clinic, nylas: NylasFake) -> None:
    nylas.next_login = ("outreach.lead@work.example", "google")
    lead = nylas.add_grant("outreach.lead@work.example", "google")
    nylas.add_calendar(lead, "clinic-bookings", "Clinic bookings")
    conn, grant, _ = await connect(clinic, nylas)  # `connect nylas` in Slack, hosted sign-in, callback
    assert grant is lead
    await clinic.core.services.sync_queue.drain()  # the server's first sync, and its push set-up after it
    [hook] = nylas.webhooks.values()
    assert hook.url == f"{clinic.base_url}/webhooks/nylas/app"
    calendars = {c.remote_id: c for c in await clinic.calendars()}
    work = next(c for c in calendars.values() if c.role == "mirror")
    await set_calendar(clinic.core, work.id, role="work", actor="cli:admin")  # as `calendar set --role work`
    await set_calendar(clinic.core, calendars["clinic-bookings"].id, role="source", actor="cli:admin")

    # A booking arrives in the practice's source calendar, and the outreach visit in the work calendar:
    # both through the webhook (polling is off).
    nylas.server_add(lead, "clinic-bookings", {"title": BOOKING, "when": timespan(at(10), 45, TZ)})
    visit = nylas.server_add(lead, work.remote_id, {
        "title": VISIT, "when": timespan(at(9), 60, TZ),
        "participants": [{"email": "dr.osei@stmarys.example", "name": "Kofi Osei", "status": "yes"}]})
    await settle(clinic, nylas)
    assert all(d.status == 200 for d in nylas.deliveries)

    # `/clinic today`: the appointment, and apart from it the work event with its Track button.
    agenda = await ask(clinic, "today", "UP", "agenda-1")
    appointments, work_events = agenda_texts(agenda)
    assert any(BOOKING in t for t in appointments) and not any(VISIT in t for t in appointments), agenda
    assert any(VISIT in t for t in work_events) and "Work calendars" in agenda, agenda
    [track] = work_buttons(agenda)
    assert track["text"]["text"] == "Track"

    # Track it.
    await clinic.slack.interact(clinic.slack.action_payload("clinic.track", track["value"], user="UP", rid="track"))
    await clinic.slack.fake.wait_for(lambda: clinic.slack.fake.responses["track"])
    [activity] = await activities(clinic)
    assert activity.kind == ACTIVITY and activity.title == VISIT and activity.start == at(9)
    assert activity.practitioner_id == conn.practitioner_id is not None
    assert f"now tracked as A-{activity.id}" in json.dumps(clinic.slack.fake.responses["track"][-1])

    # Edited in the work calendar (Nylas): the webhook brings it to the activity, no poll, no typed sync.
    nylas.server_edit(lead, work.remote_id, visit["id"], {"when": timespan(at(13), 90, TZ)})
    await settle(clinic, nylas)
    [activity] = await activities(clinic)
    assert activity.start == at(13) and activity.end == at(14, 30) and activity.version == 2
    agenda = await ask(clinic, "today", "UP", "agenda-2")
    assert f"A-{activity.id}" in agenda and "13:00" in agenda, agenda

    # Edited from chat: the move reaches Nylas through the outbox; Nylas's notice of it changes nothing more.
    moved = await ask(clinic, f"reschedule A-{activity.id} today 4pm", "UP", "move")
    assert "16:00" in moved, moved
    await run_until_idle(clinic.core)
    remote = nylas.live_events(lead, work.remote_id)[visit["id"]]
    assert remote["when"]["start_time"] == int(at(16).timestamp()) and remote["title"] == VISIT
    await settle(clinic, nylas)
    [activity] = await activities(clinic)
    assert activity.start == at(16) and activity.version == 3 and activity.status == "confirmed"
    async with clinic.core.store.session() as s:
        actions = (await s.scalars(select(AuditEntry.action).where(AuditEntry.appointment_id == activity.id))).all()
    assert "activity.tracked" in actions
