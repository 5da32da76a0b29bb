"""Calendar edits flowing back, end to end (issue 22, item 2): an admin types `/clinic mirror-edits
follow` in Slack, Dr Lee moves the copy of a booking in their own Radicale calendar, and the server's
own sync moves the booking on the Radicale source calendar, audited as made by Dr Lee.
"""

from __future__ import annotations

import json

from tests.bot.slack.conftest import SlackClient
from tests.e2e.conftest import Practice, at, booking


async def _answer(slack: SlackClient, text: str, rid: str, user: str = "US") -> str:
    assert (await slack.command(text, user=user, rid=rid)).status == 200
    await slack.fake.wait_for(lambda: slack.fake.responses[rid])
    return json.dumps(slack.fake.responses[rid])


async def test_a_move_in_the_practitioners_calendar_reaches_the_booking(slack: SlackClient, clinic: Practice) -> None:
    await clinic.put_booking(booking("visit-1", at(10), 30, "Jane Roe"))
    await clinic.sync()
    assert "conflict card" in await _answer(slack, "mirror-edits", "show")  # the default, as it was
    assert "is now 'follow'" in await _answer(slack, "mirror-edits follow", "set")
    assert "now has the staff role" in await _answer(slack, "role grant staff <@UX>", "grant")
    assert "only admins" in await _answer(slack, "mirror-edits keep", "denied", user="UX")

    # Dr Lee drags the copy to 14:00 in their own calendar (through CalDAV, as their phone does).
    (copy,) = await clinic.events(clinic.mirror_url)
    provider = clinic.provider(clinic.mirror_url)
    try:
        await provider.update(copy.remote_id, copy.event.with_changes(start=at(14), end=at(14, 30)), copy.etag)
    finally:
        await provider.aclose()
    await clinic.sync()
    await clinic.sync()  # the source's echo of our write is read, and is not a change

    (source,) = await clinic.events(clinic.source_url)
    assert (source.event.start, source.event.end) == (at(14), at(14, 30))
    assert source.event.client_name == "Jane Roe"  # the booking keeps its fields
    assert (await clinic.appointment("visit-1")).start == at(14)
    (moved,) = await clinic.audit("appointment.rescheduled")
    assert moved.actor == "practitioner:dr-lee"
    assert await clinic.audit("sync.conflict.mirror_edited") == []
    (setting,) = await clinic.audit("practice.mirror_edits")
    assert setting.actor.startswith("slack:") and setting.after == {"mirror_edits": "follow"}
    assert [c.event.start for c in await clinic.events(clinic.mirror_url)] == [at(14)]
