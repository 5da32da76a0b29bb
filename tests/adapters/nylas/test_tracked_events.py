"""Tracked events through the running server, in Slack: a work event's Track button makes it an
activity (agenda, audit); an edit in the work calendar reaches the activity at the next sync, a move
of the activity from chat reaches the work calendar through the outbox; untrack leaves the event in
its calendar and nothing of it in the database (every table read back, decrypted); it can be
tracked again, by typing `track <ref>`."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from sync.engine.outbox import run_until_idle
from sync.engine.run import sync_connection
from sync.services.connections import set_calendar
from sync.store.model import ACTIVITY, Appointment, AuditEntry, Connection, Link, OutboxOp
from tests.adapters.nylas.fakes.nylas import NylasFake, timespan
from tests.adapters.nylas.test_road import connect
from tests.adapters.nylas.test_work_calendar import clinic, everything_stored, fake_slack, nylas
from tests.e2e.conftest import TZ, at
from tests.e2e.test_oauth_connect import Clinic

__all__ = ["clinic", "fake_slack", "nylas"]  # fixtures, used by name

TITLE = "Referral visit: St Mary's cardiology"
SECRETS = (TITLE, "dr.osei@stmarys.example", "Kofi Osei", "Bring the referral pack")


def work_ref(answer: str, title: str) -> str:
    """The reference a Slack agenda shows for the work event with this title."""
    for block in json.loads(answer)["blocks"]:
        if str(block.get("block_id", "")).startswith("work:") and title in block["text"]["text"]:
            return str(json.loads(block["accessory"]["value"])["e"])
    raise AssertionError(f"no work event {title!r} in {answer}")


def work_buttons(answer: str) -> list[dict[str, Any]]:
    """The Track/Untrack buttons of the work events in a Slack agenda answer."""
    blocks = json.loads(answer)["blocks"]
    return [b["accessory"] for b in blocks if str(b.get("block_id", "")).startswith("work:") and "accessory" in b]


async def ask(clinic: Clinic, text: str, user: str, rid: str) -> str:
    """A signed `/clinic` command; its answer, inline in the ack (an agenda for a known person) or
    through its response_url, as JSON text."""
    resp = await clinic.slack.command(text, user=user, rid=rid)
    assert resp.status == 200
    body = await resp.text()
    if body.startswith("{") and "blocks" in json.loads(body):
        return body
    await clinic.slack.fake.wait_for(lambda: clinic.slack.fake.responses[rid])
    return json.dumps(clinic.slack.fake.responses[rid][-1])


async def synced(clinic: Clinic, connection_id: int) -> None:
    """One sync of the connection, which must succeed (its error said when not)."""
    # wait: the server's own worker may be syncing the connection (after connect) just then
    report = await sync_connection(clinic.core, connection_id, wait=30.0)
    if report.failed:
        async with clinic.core.store.session() as s:
            conn = await s.get(Connection, connection_id)
            raise AssertionError(f"sync failed: {conn.last_error if conn else '?'}")


async def activities(clinic: Clinic) -> list[Appointment]:
    async with clinic.core.store.session() as s:
        return list((await s.scalars(select(Appointment).where(Appointment.kind == ACTIVITY))).all())


async def test_track_edit_both_ways_untrack_and_track_again(clinic: Clinic, nylas: NylasFake) -> None:
    nylas.next_login = ("outreach.lead@work.example", "google")
    conn, grant, _ = await connect(clinic, nylas)
    [work] = [c for c in await clinic.calendars() if c.role == "mirror"]
    await set_calendar(clinic.core, work.id, role="work", actor="cli:test")
    event = nylas.server_add(grant, work.remote_id, {
        "title": TITLE, "when": timespan(at(9), 60, TZ), "description": "Bring the referral pack",
        "participants": [{"email": "dr.osei@stmarys.example", "name": "Kofi Osei", "status": "yes"}]})
    other = nylas.server_add(grant, work.remote_id, {"title": "Team stand-up", "when": timespan(at(11), 15, TZ)})
    await synced(clinic, conn.id)

    # The practitioner (UP) sees the work events, each with a Track button; nothing is stored yet.
    agenda = await ask(clinic, "today", "UP", "agenda-1")
    buttons = work_buttons(agenda)
    assert [b["text"]["text"] for b in buttons] == ["Track", "Track"], agenda
    assert await activities(clinic) == []

    # Track the referral visit from its button.
    track = buttons[0]
    assert track["action_id"] == "clinic.track"
    await clinic.slack.interact(clinic.slack.action_payload("clinic.track", track["value"], user="UP", rid="track"))
    await clinic.slack.fake.wait_for(lambda: clinic.slack.fake.responses["track"])
    answer = json.dumps(clinic.slack.fake.responses["track"][-1])
    [activity] = await activities(clinic)
    assert f"now tracked as A-{activity.id}" in answer, answer
    assert activity.title == TITLE and activity.start == at(9) and activity.practitioner_id == conn.practitioner_id
    async with clinic.core.store.session() as s:
        [link] = (await s.scalars(select(Link).where(Link.appointment_id == activity.id))).all()
        audited = (await s.scalars(select(AuditEntry.action).where(AuditEntry.appointment_id == activity.id))).all()
    assert link.calendar_id == work.id and link.remote_id == event["id"]
    assert "activity.tracked" in audited

    # A second press changes nothing.
    await clinic.slack.interact(clinic.slack.action_payload("clinic.track", track["value"], user="UP", rid="again"))
    await clinic.slack.fake.wait_for(lambda: clinic.slack.fake.responses["again"])
    assert "tracked already" in json.dumps(clinic.slack.fake.responses["again"][-1])
    assert len(await activities(clinic)) == 1

    # The agenda shows it as an appointment-like row, and the work event offers Untrack.
    agenda = await ask(clinic, "today", "UP", "agenda-2")
    assert f"A-{activity.id}" in agenda and f"tracked as `A-{activity.id}`" in agenda, agenda
    assert [b["text"]["text"] for b in work_buttons(agenda)] == ["Untrack", "Track"]

    # An edit in the work calendar reaches the activity at the next sync (and only the tracked one is read in).
    nylas.server_edit(grant, work.remote_id, event["id"], {"when": timespan(at(13), 90, TZ)})
    nylas.server_edit(grant, work.remote_id, other["id"], {"title": "Team stand-up (moved)"})
    await synced(clinic, conn.id)
    [activity] = await activities(clinic)
    assert activity.start == at(13) and activity.end == at(14, 30) and activity.version == 2

    # A move of the activity from chat reaches the work calendar through the outbox.
    moved = await ask(clinic, f"reschedule A-{activity.id} today 4pm", "UP", "move")
    assert "16:00" in moved, moved
    async with clinic.core.store.session() as s:
        ops = (await s.scalars(select(OutboxOp.op).where(OutboxOp.appointment_id == activity.id))).all()
    assert list(ops) == ["source_reschedule"]
    await run_until_idle(clinic.core)
    remote = nylas.live_events(grant, work.remote_id)[event["id"]]
    assert remote["when"]["start_time"] == int(at(16).timestamp())
    assert remote["title"] == TITLE  # only the time was changed there
    await synced(clinic, conn.id)  # our own write read back: no change
    [activity] = await activities(clinic)
    assert activity.start == at(16) and activity.status == "confirmed"

    # Untrack: the event stays in its calendar, nothing about it stays in the database.
    gone = await ask(clinic, f"untrack A-{activity.id}", "UP", "untrack")
    assert "no longer tracked" in gone, gone
    assert event["id"] in nylas.live_events(grant, work.remote_id)
    assert await activities(clinic) == []
    stored = await everything_stored(clinic)
    for secret in (*SECRETS, event["id"]):
        assert secret not in stored, secret
    async with clinic.core.store.session() as s:
        actions = (await s.scalars(select(AuditEntry.action).where(AuditEntry.appointment_id == activity.id))).all()
    assert actions[0] == "activity.tracked" and actions[-1] == "activity.untracked"
    await synced(clinic, conn.id)  # no tracked event: nothing read in
    assert await activities(clinic) == []

    # Track again, typed this time (the reference the agenda shows).
    agenda = await ask(clinic, "today", "UP", "agenda-3")
    ref = work_ref(agenda, TITLE)
    assert f"`{ref}`" in agenda and "tracked as" not in agenda
    again = await ask(clinic, f"track {ref}", "UP", "retrack")
    [fresh] = await activities(clinic)
    assert f"now tracked as A-{fresh.id}" in again and fresh.start == at(16) and fresh.title == TITLE


async def test_track_refuses_what_it_cannot_track(clinic: Clinic, nylas: NylasFake) -> None:
    nylas.next_login = ("outreach.lead@work.example", "google")
    _, grant, _ = await connect(clinic, nylas)
    [work] = [c for c in await clinic.calendars() if c.role == "mirror"]
    await set_calendar(clinic.core, work.id, role="work", actor="cli:test")
    nylas.server_add(grant, work.remote_id, {"title": TITLE, "when": timespan(at(9), 60, TZ)})

    assert "is not a work event" in await ask(clinic, "track tomorrow", "UP", "bad-ref")
    assert "no work calendar 999" in await ask(clinic, "track W999-00000000", "UP", "no-cal")
    missing = await ask(clinic, f"track W{work.id}-00000000", "UP", "missing")
    assert "is not in that work calendar" in missing, missing
    assert "is not a tracked activity" in await ask(clinic, "untrack A-77", "UP", "not-tracked")
    # Someone with no link to the calendar's practitioner and no staff role may not track it.
    agenda = await ask(clinic, "today", "UP", "agenda")
    ref = work_ref(agenda, TITLE)
    assert "no role" in await ask(clinic, f"track {ref}", "UX", "stranger")
    # The work calendar cannot be read: nothing is made, the person is told.
    nylas.fail(503, "provider_error", "Provider unavailable", count=10)
    down = await ask(clinic, f"track {ref}", "UP", "down")
    assert "A-" not in down and await activities(clinic) == [], down
