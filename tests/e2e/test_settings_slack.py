"""Settings changed after creation, from Slack, against a real Radicale: a mirror's projection and
"show as free" rewrite the copies already there, a connection's window brings in bookings it newly
covers, an opt-out is recorded; each change audited as the Slack admin, and refused to non-admins."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from sync.store.model import Practitioner
from tests.bot.slack.conftest import SlackClient, signed_headers
from tests.e2e.conftest import Practice, at, booking


async def say(slack: SlackClient, text: str, user: str = "US") -> str:
    """A signed `/clinic` command; its answer, from the acknowledgement (a cached agenda) or the response_url."""
    slack.n += 1
    rid = f"say{slack.n}"
    body = slack.command_body(text, user, rid)
    async with slack.session.post(slack.url + "/slack/events", data=body, headers=signed_headers(body)) as resp:
        assert resp.status == 200
        acked = await resp.text()
    if acked.strip():
        return acked
    await slack.fake.wait_for(lambda: slack.fake.responses[rid])
    return json.dumps(slack.fake.responses[rid][-1])


async def refused_at_once(slack: SlackClient, text: str) -> str:
    """A command the grammar refuses: the reason comes in the acknowledgement itself."""
    body = slack.command_body(text)
    async with slack.session.post(slack.url + "/slack/events", data=body, headers=signed_headers(body)) as resp:
        assert resp.status == 200
        return await resp.text()


async def test_projection_free_window_and_opt_out_from_slack(slack: SlackClient, clinic: Practice) -> None:
    await clinic.put_booking(booking("visit-1", at(10), 30, "Jane Roe"))
    await clinic.sync()
    [copy] = await clinic.events(clinic.mirror_url)
    assert copy.event.summary == "Physio (J.R.)" and not copy.event.transparent

    answer = await say(slack, "calendar Dr Lee projection busy")  # US talks first: the practice's admin
    assert "Dr Lee now has projection busy" in answer and "1 copy is being rewritten" in answer, answer
    await clinic.outbox_settled()
    [copy] = await clinic.events(clinic.mirror_url)
    assert copy.event.summary == "Busy" and "J.R." not in json.dumps(copy.event.description or "")

    answer = await say(slack, "calendar Dr Lee free on")
    assert "shown as free" in answer, answer
    await clinic.outbox_settled()
    [copy] = await clinic.events(clinic.mirror_url)
    assert copy.event.transparent
    assert "already has" in await say(slack, "calendar Dr Lee free on")

    # A booking 300 days ahead is outside the default window (180 days) until the window grows.
    far = at(10) + timedelta(days=300)
    await clinic.put_booking(booking("far-1", far, 30, "Ann Other"))
    await clinic.sync()
    assert [c.event.start for c in await clinic.events(clinic.mirror_url)] == [at(10)]
    answer = await say(slack, "window caldav 30 400")
    assert "now syncs 30 days back and 400 ahead" in answer, answer
    await clinic.sync()
    assert (await clinic.appointment("far-1")).start == far

    answer = await say(slack, "opt out @dr-lee")
    assert "Dr Lee is opted out" in answer, answer
    async with clinic.core.store.session() as s:
        lee = await s.get(Practitioner, clinic.practitioner_id)
        assert lee is not None and lee.opted_out

    # Staff without the admin role change nothing.
    assert "now has the staff role" in await say(slack, "role grant staff <@UX|ux>")
    refused = await say(slack, "calendar Dr Lee projection full", user="UX")
    assert "only admins" in refused, refused
    refused = await say(slack, "opt in @dr-lee", user="UX")
    assert "only admins" in refused

    bad = await refused_at_once(slack, "calendar Dr Lee projection sepia")
    assert "is not a projection" in bad and "calendar Dr Lee projection busy" in bad
    bad = await refused_at_once(slack, "window caldav thirty 400")
    assert "two whole numbers" in bad
    bad = await say(slack, "window caldav 30 99999")
    assert "days ahead must be 1 to 3650" in bad

    for action, before, after in (
        ("calendar.settings", {"projection": "initials", "show_as_free": False},
         {"projection": "busy", "show_as_free": False}),
        ("connection.window", {"days_back": 30, "days_ahead": 180}, {"days_back": 30, "days_ahead": 400}),
        ("practitioner.opt_out", {"opted_out": False}, {"opted_out": True}),
    ):
        entry = (await clinic.audit(action))[0]
        assert (entry.actor, entry.before, entry.after) == ("slack:T1/US", before, after), action
    assert len(await clinic.audit("calendar.settings")) == 2  # projection, then free; the repeat wrote nothing
    async with clinic.core.store.session() as s:
        assert (await s.scalars(select(Practitioner.opted_out))).all() == [True]
