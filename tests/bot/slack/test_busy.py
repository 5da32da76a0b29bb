"""Under overload a request is told "busy, try again" at once, rather than answered seconds late: when
the answers already queued would keep a new one waiting past the queue's bound, a slash command is
acked "busy", and a modal submit keeps its form open saying so, with nothing changed."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot.commands import actions
from bot.slack.listeners import BUSY_SUBMIT
from sync.store.model import Appointment, AuditEntry
from tests.bot.slack.conftest import SlackClient, signed_headers, submission_payload


def _overloaded(slack: SlackClient, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The answers' queue says a new job would wait past its bound while the returned flag is set."""
    queue = slack.runtime.background
    bound = queue.max_wait
    assert bound is not None  # the server bounds the wait
    real = queue.expected_wait
    on = [True]
    monkeypatch.setattr(queue, "expected_wait", lambda: bound + 1.0 if on[0] else real())
    return on


async def test_a_command_is_acked_busy_when_its_answer_would_wait_too_long(
    slack: SlackClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _overloaded(slack, monkeypatch)
    body = slack.command_body(f"appointment A-{slack.clinic.a_lee_10}", rid="r-busy")
    async with slack.session.post(slack.url + "/slack/events", data=body, headers=signed_headers(body)) as resp:
        assert resp.status == 200
        assert "busy right now" in await resp.text()
    await slack.settle()
    assert slack.fake.responses.get("r-busy") in (None, [])  # no late answer follows


async def test_a_modal_submit_keeps_its_form_open_saying_busy_and_changes_nothing(
    slack: SlackClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    appt = slack.clinic.a_lee_10
    await slack.interact(slack.action_payload("clinic.reschedule", actions.encode(actions.OpenReschedule(appt, 1))[1]))
    await slack.settle()
    meta = slack.fake.calls_to("views.open")[0].args["view"]["private_metadata"]
    overloaded = _overloaded(slack, monkeypatch)
    status, ack = await slack.interact_json(submission_payload(meta, "2026-03-03", "16:00", slack.clinic.lee))
    assert status == 200 and ack == {"response_action": "errors", "errors": {"time": BUSY_SUBMIT}}
    assert "busy right now" in json.dumps(ack)
    await slack.settle()
    async with slack.core.store.session() as s:
        a = await s.get(Appointment, appt)
        assert a is not None and a.version == 1
        assert await s.scalar(select(AuditEntry).where(AuditEntry.action == "appointment.rescheduled")) is None
    overloaded[0] = False  # the queue moves again: the same submit, pressed again, goes through
    again = submission_payload(meta, "2026-03-03", "16:00", slack.clinic.lee)
    again["view"]["hash"] = "2"  # a new request (the same signed body twice is refused as a replay)
    status, done = await slack.interact_json(again)
    assert status == 200 and done == {"response_action": "clear"}


async def test_a_button_is_acked_at_once_and_told_busy_at_its_response_url(
    slack: SlackClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _overloaded(slack, monkeypatch)
    queued = slack.runtime.background.rejected
    payload = slack.action_payload("clinic.details", actions.encode(actions.ShowDetails(slack.clinic.a_lee_10))[1],
                                   rid="r-btn")  # fmt: skip
    resp = await slack.interact(payload)
    assert resp.status == 200
    await slack.settle()
    [told] = slack.fake.responses["r-btn"]
    assert "busy right now" in json.dumps(told) and told["response_type"] == "ephemeral"
    assert slack.runtime.background.rejected == queued + 1


async def test_help_bad_input_and_a_reschedule_press_are_not_refused_as_busy(
    slack: SlackClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What needs no queued work is answered as usual; a Reschedule press goes to the modal queue."""
    _overloaded(slack, monkeypatch)
    for text in ("help", "reschedule"):
        body = slack.command_body(text)
        async with slack.session.post(slack.url + "/slack/events", data=body, headers=signed_headers(body)) as resp:
            assert resp.status == 200
            assert "busy right now" not in await resp.text() and "blocks" in await resp.text()
    appt = slack.clinic.a_lee_10
    await slack.interact(slack.action_payload("clinic.reschedule", actions.encode(actions.OpenReschedule(appt, 1))[1]))
    await slack.settle()
    assert slack.fake.calls_to("views.open")


async def test_a_modal_submit_past_the_moves_under_way_is_busy(slack: SlackClient) -> None:
    """Each move under way holds a database connection: past SUBMITS_AT_ONCE, "busy" at once."""
    from bot.slack.listeners import SUBMITS_AT_ONCE

    appt = slack.clinic.a_lee_10
    await slack.interact(slack.action_payload("clinic.reschedule", actions.encode(actions.OpenReschedule(appt, 1))[1]))
    await slack.settle()
    meta = slack.fake.calls_to("views.open")[0].args["view"]["private_metadata"]
    slack.runtime.listeners._submitting = SUBMITS_AT_ONCE
    status, ack = await slack.interact_json(submission_payload(meta, "2026-03-03", "16:00", slack.clinic.lee))
    assert status == 200 and ack == {"response_action": "errors", "errors": {"time": BUSY_SUBMIT}}
    slack.runtime.listeners._submitting = SUBMITS_AT_ONCE - 1
    again = submission_payload(meta, "2026-03-03", "16:00", slack.clinic.lee)
    again["view"]["hash"] = "2"
    status, done = await slack.interact_json(again)
    assert status == 200 and done == {"response_action": "clear"}
    await slack.settle()
    assert slack.runtime.listeners._submitting == SUBMITS_AT_ONCE - 1  # the one taken has finished
