"""/slack/events over HTTP: signed commands and buttons work, and bad requests change nothing."""

from __future__ import annotations

import json
import time

from sqlalchemy import func, select

from bot.commands import actions
from sync.store.model import Appointment, AuditEntry, ChatIdentity
from tests.bot.clinic import at, make_actor
from tests.bot.slack.conftest import SlackClient, signed_headers, submission_payload
from tests.fakes.slack import check_blocks


async def _state(c: SlackClient) -> tuple[int, int, int]:
    async with c.core.store.session() as s:
        return (
            await s.scalar(select(func.count()).select_from(ChatIdentity)) or 0,
            await s.scalar(select(func.count()).select_from(AuditEntry)) or 0,
            await s.scalar(select(func.sum(Appointment.version))) or 0,
        )


async def test_today_acks_at_once_then_answers_with_the_agenda(slack: SlackClient) -> None:
    resp = await slack.command("today", rid="r1")
    assert resp.status == 200
    await slack.settle()
    [answer] = slack.fake.responses["r1"]
    assert answer["response_type"] == "ephemeral"
    check_blocks(answer["blocks"])
    text = json.dumps(answer["blocks"])
    assert f"A-{slack.clinic.a_lee_10}" in text and "Jane Roe" in text and "clinic.reschedule" in text


async def test_bad_input_is_answered_in_the_ack_and_changes_nothing(slack: SlackClient) -> None:
    before = await _state(slack)
    body = slack.command_body("reschedule banana")
    resp_status, doc = await _post_json(slack, body)
    assert resp_status == 200 and doc["response_type"] == "ephemeral"
    check_blocks(doc["blocks"])
    assert "not an appointment id" in json.dumps(doc) and "/clinic reschedule A-1042 tomorrow 3pm" in json.dumps(doc)
    await slack.settle()
    assert await _state(slack) == before


async def test_forged_stale_and_replayed_requests_get_401_and_change_nothing(slack: SlackClient) -> None:
    body = slack.command_body(f"cancel A-{slack.clinic.a_lee_10}")
    before = await _state(slack)
    assert (await slack.post(body, sign_it=False)).status == 401
    assert (await slack.post(body, secret="wrong-secret")).status == 401
    assert (await slack.post(body, signature="v0=" + "0" * 64)).status == 401
    assert (await slack.post(body, ts=int(time.time()) - 301)).status == 401
    assert (await slack.post(body, ts=int(time.time()) + 301)).status == 401
    assert (await slack.post(body, headers={"X-Slack-Request-Timestamp": "soon"})).status == 401
    await slack.settle()
    assert await _state(slack) == before and slack.fake.calls == []
    stamp = int(time.time())
    first = await slack.post(body, ts=stamp)
    replay = await slack.post(body, ts=stamp)
    assert first.status == 200 and replay.status == 401
    await slack.settle()
    assert len(slack.fake.calls_to("response_url")) == 1


async def test_garbage_bodies_and_unknown_actions_never_500(slack: SlackClient) -> None:
    before = await _state(slack)
    for body in [
        b"",
        b"payload=not-json",
        b"payload=%7B%7D",
        b"\xff\xfe\x00garbage",
        b"a=1&b=2",
        b"payload=" + json.dumps({"type": "block_actions"}).encode(),
        b"payload=" + json.dumps({"type": "view_submission", "user": {}, "view": {"id": 1}}).encode(),
        b"payload=" + json.dumps({"type": "block_actions", "user": {}, "actions": [1]}).encode(),
        b"command=%2Fclinic&text=today",
    ]:
        resp = await slack.post(body)
        assert 200 <= resp.status < 500, body
    unknown = slack.action_payload("not.ours", "x")
    assert (await slack.interact(unknown)).status in (200, 404)
    tampered = slack.action_payload("clinic.cancel_confirm", '{"a":"DROP TABLE","v":1}', rid="bad")
    assert (await slack.interact(tampered)).status == 200
    made_up = slack.action_payload("clinic.self_destruct", "{}", rid="bad2")
    assert (await slack.interact(made_up)).status == 200
    await slack.settle()
    for rid in ("bad", "bad2"):
        [reply] = slack.fake.responses[rid]
        assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
        assert "run the command again" in json.dumps(reply)
    assert await _state(slack) == before


async def test_cancel_button_asks_then_confirms_updating_the_message(slack: SlackClient) -> None:
    appt = slack.clinic.a_lee_11
    await slack.interact(slack.action_payload("clinic.cancel", actions.encode(actions.AskCancel(appt, 1))[1], rid="m"))
    await slack.settle()
    [ask] = slack.fake.responses["m"]
    assert ask["replace_original"] is True and "Yes, cancel it" in json.dumps(ask)
    confirm = next(
        e
        for b in ask["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "clinic.cancel_confirm"
    )
    await slack.interact(slack.action_payload(confirm["action_id"], confirm["value"], rid="m"))
    await slack.settle()
    done = slack.fake.responses["m"][-1]
    assert done["replace_original"] is True and f"Cancelled A-{appt}" in json.dumps(done)
    async with slack.core.store.session() as s:
        a = await s.get(Appointment, appt)
        assert a is not None and a.status == "cancelled"
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "appointment.cancelled"))
        assert entry is not None and entry.actor == "slack:T1/US"


async def test_reschedule_button_opens_the_modal_and_submit_checks_the_slot(slack: SlackClient) -> None:
    appt = slack.clinic.a_lee_10
    payload = slack.action_payload(
        "clinic.reschedule",
        actions.encode(actions.OpenReschedule(appt, 1))[1],
        rid="agenda",
        ephemeral=False,
        message_ts="1.000001",
    )
    slack.fake.messages[("C1", "1.000001")] = {"ts": "1.000001", "text": "", "blocks": []}
    await slack.interact(payload)
    await slack.settle()
    [opened] = slack.fake.calls_to("views.open")
    modal = opened.args["view"]
    assert modal["callback_id"] == "clinic.reschedule"
    meta = modal["private_metadata"]

    status, taken = await slack.interact_json(submission_payload(meta, "2026-03-03", "11:15", slack.clinic.lee))
    assert status == 200 and taken["response_action"] == "errors"
    assert "is taken" in taken["errors"]["time"] and "Next free: Tue 3 Mar 12:00" in taken["errors"]["time"]
    status, done = await slack.interact_json(submission_payload(meta, "2026-03-03", "16:00", slack.clinic.lee))
    assert status == 200 and done == {"response_action": "clear"}
    await slack.settle()
    [update] = slack.fake.calls_to("chat.update")
    assert update.args["channel"] == "C1" and update.args["ts"] == "1.000001"
    check_blocks(update.args["blocks"])
    assert "Moved A-" in json.dumps(update.args["blocks"])
    async with slack.core.store.session() as s:
        a = await s.get(Appointment, appt)
        assert a is not None and a.start == at(16)
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "appointment.rescheduled"))
        assert entry is not None and entry.actor == "slack:T1/US"


async def test_a_slow_submit_acks_in_time_and_finishes_in_the_background(slack: SlackClient) -> None:
    slack.runtime.listeners.submit_budget = 0.0  # over budget at once, however fast the machine
    appt = slack.clinic.a_kim_10
    await slack.interact(
        slack.action_payload("clinic.reschedule", actions.encode(actions.OpenReschedule(appt, 1))[1], rid="slow")
    )
    await slack.settle()
    meta = slack.fake.calls_to("views.open")[0].args["view"]["private_metadata"]
    status, ack = await slack.interact_json(
        {
            "type": "view_submission",
            "team": {"id": "T1"},
            "user": {"id": "US", "username": "us", "team_id": "T1"},
            "view": {
                "id": "V9",
                "type": "modal",
                "callback_id": "clinic.reschedule",
                "private_metadata": meta,
                "state": {
                    "values": {
                        "date": {"value": {"selected_date": "2026-03-03"}},
                        "time": {"value": {"selected_time": "15:00"}},
                    }
                },
            },
        }
    )
    assert status == 200 and ack["response_action"] == "update"
    await slack.settle()
    [update] = slack.fake.calls_to("views.update")
    assert update.args["view_id"] == "V9" and "Moved A-" in json.dumps(update.args["view"])
    assert "Moved A-" in json.dumps(slack.fake.responses["slow"][-1])


async def _post_json(c: SlackClient, body: bytes) -> tuple[int, dict[str, object]]:
    async with c.session.post(c.url + "/slack/events", data=body, headers=signed_headers(body)) as resp:
        return resp.status, json.loads(await resp.text())


async def test_a_select_sends_its_chosen_option_as_the_action(slack: SlackClient) -> None:
    """The staff card's practitioner picker is a static_select: its value is in `selected_option`."""
    await make_actor(slack.core, "UADM", ("admin",))
    payload = slack.action_payload("clinic.staff_map", "", user="UADM", rid="sel")
    chosen = actions.encode(actions.MapStaffMember(987_654, 1))[1]
    payload["actions"][0] = {"type": "static_select", "action_id": "clinic.staff_map", "block_id": "staff:1",
                             "selected_option": {"text": {"type": "plain_text", "text": "Dr Lee"}, "value": chosen},
                             "action_ts": "1.0"}
    await slack.interact(payload)
    await slack.settle()
    [answer] = slack.fake.responses["sel"]
    assert "no longer there" in json.dumps(answer)  # the action was read: calendar 987654 is not in the practice
