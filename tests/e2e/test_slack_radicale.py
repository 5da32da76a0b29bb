"""Slack end to end against real components: a practice whose source calendar lives on a real
Radicale, synced by the server's own sync worker, driven by signed Slack requests.

`/clinic today` lists the booking with its buttons; Reschedule opens the modal; a taken slot is
refused with the next free slots and nothing moves; a free slot moves the booking on Radicale (the
source and the mirror copy), the audit names the Slack user, and the original message is replaced.
"""

from __future__ import annotations

import json
from typing import Any

from sync.store.model import OutboxOp
from tests.bot.slack.conftest import SlackClient, submission_payload
from tests.e2e.conftest import DAY, Practice, at, booking, until
from tests.fakes.slack import check_blocks, check_view


def _buttons(blocks: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The agenda's buttons by action id."""
    found: dict[str, list[dict[str, Any]]] = {}
    for block in blocks:
        for element in block.get("elements", []) if block["type"] == "actions" else [block.get("accessory") or {}]:
            if element.get("type") == "button":
                found.setdefault(element["action_id"], []).append(element)
    return found


async def test_today_then_reschedule_moves_the_radicale_booking(slack: SlackClient, clinic: Practice) -> None:
    await clinic.put_booking(booking("visit-1", at(10), 30, "Jane Roe"))
    await clinic.put_booking(booking("visit-2", at(11), 60, "John Doe"))
    await clinic.sync()
    jane = await clinic.appointment("visit-1")
    copies = await clinic.events(clinic.mirror_url)
    assert [c.event.start for c in copies] == [at(10), at(11)]
    assert all("Jane" not in c.event.summary and "John" not in c.event.summary for c in copies)
    assert "Physio (J.R.)" in [c.event.summary for c in copies]

    # /clinic today, signed; the agenda arrives through the response_url.
    assert (await slack.command("today", rid="agenda")).status == 200
    await slack.fake.wait_for(lambda: slack.fake.responses["agenda"])
    [agenda] = slack.fake.responses["agenda"]
    check_blocks(agenda["blocks"])
    text = json.dumps(agenda["blocks"])
    assert jane.ref in text and "Jane Roe" in text and "John Doe" in text
    assert await clinic.practices() == [("Lee Clinic", "T1", None)]  # bound on first contact
    buttons = _buttons(agenda["blocks"])
    assert {"clinic.reschedule", "clinic.cancel", "clinic.details"} <= set(buttons)
    reschedule = next(b for b in buttons["clinic.reschedule"] if f'"a":{jane.id}' in b["value"].replace(" ", ""))

    # Reschedule -> views.open with the modal.
    click = slack.action_payload("clinic.reschedule", reschedule["value"], rid="click", ephemeral=True)
    assert (await slack.interact(click)).status == 200
    await slack.fake.wait_for(lambda: slack.fake.calls_to("views.open"))
    [opened] = slack.fake.calls_to("views.open")
    check_view(opened.args["view"])
    meta = opened.args["view"]["private_metadata"]

    # A colleague without a role is told so, and nothing changes.
    assert (await slack.command(f"reschedule {jane.ref} tomorrow 3pm", user="UX", rid="norole")).status == 200
    await slack.fake.wait_for(lambda: slack.fake.responses["norole"])
    assert "no role in this practice" in json.dumps(slack.fake.responses["norole"])

    # A taken slot (John Doe is 11:00-12:00): refused with the next free slots, nothing moves.
    status, taken = await slack.interact_json(submission_payload(meta, DAY.isoformat(), "11:15", clinic.practitioner_id))
    assert status == 200 and taken["response_action"] == "errors", taken
    assert "is taken" in taken["errors"]["time"] and "Next free:" in taken["errors"]["time"]
    assert "12:00" in taken["errors"]["time"]
    assert (await clinic.appointment("visit-1")).start == at(10)
    async with clinic.core.store.session() as s:
        assert not (await s.scalars(OutboxOp.__table__.select().where(OutboxOp.status == "pending"))).all()
    assert [i.event.start for i in await clinic.events(clinic.source_url)] == [at(10), at(11)]

    # A free slot: accepted, and the change reaches Radicale through the outbox.
    status, done = await slack.interact_json(submission_payload(meta, DAY.isoformat(), "16:00", clinic.practitioner_id))
    assert status == 200 and done == {"response_action": "clear"}, done
    await slack.settle()
    await clinic.outbox_settled()
    source = {i.event.uid: i.event for i in await clinic.events(clinic.source_url)}
    assert source["visit-1"].start == at(16) and source["visit-1"].end == at(16, 30)
    assert source["visit-2"].start == at(11)
    assert source["visit-1"].client_name == "Jane Roe"  # the booking keeps its fields
    copies = await clinic.events(clinic.mirror_url)
    assert sorted(c.event.start for c in copies) == [at(11), at(16)]

    [entry] = await clinic.audit("appointment.rescheduled")
    assert entry.actor == "slack:T1/US" and entry.appointment_id == jane.id

    # The original (ephemeral) message is replaced with the result.
    await until(lambda: slack.fake.responses["click"])
    replaced = slack.fake.responses["click"][-1]
    assert replaced["replace_original"] is True
    check_blocks(replaced["blocks"])
    assert f"Moved {jane.ref}" in json.dumps(replaced["blocks"])
    # ...which says the calendars were still to be written when it was sent; Details says they are now.
    assert "Bookings (source) (pending)" in json.dumps(replaced["blocks"])
    details = next(b for b in buttons["clinic.details"] if f'"a":{jane.id}' in b["value"].replace(" ", ""))
    await slack.interact(slack.action_payload("clinic.details", details["value"], rid="details"))
    await slack.fake.wait_for(lambda: slack.fake.responses["details"])
    shown = json.dumps(slack.fake.responses["details"][-1]["blocks"])
    assert "Bookings (source) (ok)" in shown and "Dr Lee (mirror) (ok)" in shown

    # The next sync sees our own write on the source as nothing new: no bounce, no conflict.
    await clinic.sync()
    after = await clinic.appointment("visit-1")
    assert after.start == at(16) and after.version == jane.version + 1
    assert [e.actor for e in await clinic.audit("appointment.rescheduled")] == ["slack:T1/US"]
    # ...and the mirror copy read back is our own write, not a hand edit: no conflict, no update.
    assert await clinic.sync_history() == [
        "appointment.created",
        "appointment.created",
        "appointment.rescheduled",
        "sync.source_reschedule",
    ]
    assert sorted(c.event.start for c in await clinic.events(clinic.mirror_url)) == [at(11), at(16)]
