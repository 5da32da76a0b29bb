"""Conflicts in Slack: the engine finds a hand-edited copy, staff get one card, and decide on it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from sync.engine.outbox import run_until_idle
from sync.engine.run import sync_connection
from sync.notify.recipients import set_staff_channel
from sync.store.model import Appointment, AuditEntry, ChatIdentity, Link, OutboxOp
from tests.bot.clinic import make_actor
from tests.bot.conflict_setup import BOOKED, HandEdit, hand_edited, notices
from tests.bot.slack.conftest import SlackClient
from tests.fakes.slack import check_blocks


async def _staff_channel(slack: SlackClient, channel: str = "C1") -> None:
    async with slack.core.store.session() as s:
        ident = ChatIdentity(practice_id=slack.clinic.practice_id, platform="slack", workspace_id="T1",
                             user_id=f"conversation:{channel}", conversation_ref={"channel": channel})
        s.add(ident)
        await s.flush()
        await set_staff_channel(s, slack.clinic.practice_id, "slack", ident.id)


async def _settled(slack: SlackClient) -> None:
    await slack.core.services.conflict_notice_worker.settled()


def _buttons(blocks: list[dict[str, Any]]) -> dict[str, str]:
    """action id -> value of every button."""
    return {e["action_id"]: e.get("value", "") for b in blocks if b["type"] == "actions" for e in b["elements"]}


async def _card(slack: SlackClient) -> tuple[HandEdit, dict[str, Any]]:
    await _staff_channel(slack)
    await make_actor(slack.core, "UA", ("staff",))
    await make_actor(slack.core, "UB", ("admin",))
    edit = await hand_edited(slack.core, slack.clinic)
    await _settled(slack)
    [post] = slack.fake.calls_to("chat.postMessage")
    return edit, post.args


async def _press(slack: SlackClient, action_id: str, value: str, user: str, ts: str) -> None:
    before = len(slack.fake.calls)
    slack.n += 1
    await slack.interact(slack.action_payload(action_id, value, user=user, ephemeral=False, message_ts=ts,
                                              rid=f"press{slack.n}"))
    await slack.fake.wait_for(lambda: len(slack.fake.calls) > before)
    await slack.settle()


async def test_a_hand_edited_copy_reaches_the_staff_channel_once(slack: SlackClient) -> None:
    edit, args = await _card(slack)
    assert args["channel"] == "C1"  # the channel, not a DM per staff member
    blocks = json.loads(args["blocks"]) if isinstance(args["blocks"], str) else args["blocks"]
    check_blocks(blocks)
    text = json.dumps(blocks)
    assert f"A-{edit.appointment_id}" in text and "mirror0" in text and "Dr Lee" in text
    assert "Thu 5 Mar 14:00" in text and "Thu 5 Mar 15:00" in text  # booking vs calendar
    assert "Jane" not in text  # no client details in a channel card
    assert set(_buttons(blocks)) == {"clinic.conflict_keep", "clinic.conflict_accept", "clinic.details"}
    # read again, edited again while undecided: still one card
    item = edit.mirror.items[edit.remote_id]
    edit.mirror.put(item.event.with_changes(summary="moved again"), edit.remote_id)
    await sync_connection(slack.core, edit.calendars.connections["mirror0"], wait=10)
    await sync_connection(slack.core, edit.calendars.connections["mirror0"], wait=10)
    await _settled(slack)
    assert len(slack.fake.calls_to("chat.postMessage")) == 1
    [notice] = await notices(slack.core)
    assert notice.status == "sent" and notice.attempts == 1


async def test_keep_the_booking_puts_the_copy_back_and_updates_the_card(slack: SlackClient) -> None:
    edit, args = await _card(slack)
    ts = slack.fake.calls_to("chat.postMessage")[0]
    ts_value = next(k[1] for k in slack.fake.messages if k[0] == "C1")
    value = _buttons(args["blocks"])["clinic.conflict_keep"]
    await _press(slack, "clinic.conflict_keep", value, "UA", ts_value)
    [update] = slack.fake.calls_to("chat.update")
    assert update.args["ts"] == ts_value and "kept the booking" in json.dumps(update.args["blocks"])
    assert "clinic.conflict_keep" not in _buttons(update.args["blocks"])
    await run_until_idle(slack.core)
    assert edit.mirror.items[edit.remote_id].event.start == BOOKED
    async with slack.core.store.session() as s:
        link = await s.get(Link, edit.link_id)
        assert link is not None and link.state == "ok"
        ops = (await s.scalars(select(OutboxOp.op).where(OutboxOp.appointment_id == edit.appointment_id))).all()
        assert "source_reschedule" not in ops
        actors = (await s.scalars(select(AuditEntry.actor).where(
            AuditEntry.action == "sync.conflict.keep_booking"))).all()
        assert actors == ["slack:T1/UA"]
        appt = await s.get(Appointment, edit.appointment_id)
        assert appt is not None and appt.start == BOOKED
    assert ts is not None
    # pressing again changes nothing and says so, on the same card
    await _press(slack, "clinic.conflict_accept", _buttons(args["blocks"])["clinic.conflict_accept"], "UB", ts_value)
    second = slack.fake.calls_to("chat.update")[-1]
    assert "Already decided" in json.dumps(second.args["blocks"])
    async with slack.core.store.session() as s:
        appt = await s.get(Appointment, edit.appointment_id)
        assert appt is not None and appt.start == BOOKED and appt.version == 1
        assert len((await s.scalars(select(AuditEntry).where(AuditEntry.action.like("sync.conflict.%_%")))).all()) == 2


async def test_accept_the_calendars_time_moves_the_booking_at_the_source(slack: SlackClient) -> None:
    edit, args = await _card(slack)
    ts_value = next(k[1] for k in slack.fake.messages if k[0] == "C1")
    await _press(slack, "clinic.conflict_accept", _buttons(args["blocks"])["clinic.conflict_accept"], "UB", ts_value)
    [update] = slack.fake.calls_to("chat.update")
    assert "accepted the calendar's time" in json.dumps(update.args["blocks"])
    moved = BOOKED + timedelta(hours=1)
    async with slack.core.store.session() as s:
        ops = set((await s.scalars(select(OutboxOp.op).where(OutboxOp.appointment_id == edit.appointment_id))).all())
    assert "source_reschedule" in ops
    await run_until_idle(slack.core)
    (src,) = edit.source.items.values()
    assert src.event.start == moved
    assert edit.mirror.items[edit.remote_id].event.start == moved
    async with slack.core.store.session() as s:
        appt = await s.get(Appointment, edit.appointment_id)
        assert appt is not None and appt.start == moved
        assert (await s.scalars(select(AuditEntry.actor).where(
            AuditEntry.action == "sync.conflict.accept_calendar"))).all() == ["slack:T1/UB"]
    # the source's echo of our write and the mirror's of its update are not new conflicts
    report = await sync_connection(slack.core, edit.calendars.connections["source"], wait=10)
    report.add(await sync_connection(slack.core, edit.calendars.connections["mirror0"], wait=10))
    assert report.conflicts == 0


async def _unchanged(slack: SlackClient, edit: HandEdit) -> None:
    async with slack.core.store.session() as s:
        link = await s.get(Link, edit.link_id)
        assert link is not None and link.state == "conflict"
        assert (await s.scalars(select(AuditEntry).where(AuditEntry.action.in_(
            ("sync.conflict.keep_booking", "sync.conflict.accept_calendar"))))).all() == []
        appt = await s.get(Appointment, edit.appointment_id)
        assert appt is not None and appt.version == 1
    assert all(n.resolved_at is None for n in await notices(slack.core))


async def test_practitioners_and_people_without_a_role_cannot_decide(slack: SlackClient) -> None:
    edit, args = await _card(slack)
    await make_actor(slack.core, "ULEE", ("practitioner",), practitioner_id=slack.clinic.lee)
    await make_actor(slack.core, "UNOBODY", ())
    ts_value = next(k[1] for k in slack.fake.messages if k[0] == "C1")
    for user in ("ULEE", "UNOBODY"):
        await _press(slack, "clinic.conflict_keep", _buttons(args["blocks"])["clinic.conflict_keep"], user, ts_value)
    answers = [json.dumps(p.args) for p in slack.fake.calls_to("response_url")]
    assert len(answers) == 2 and "only staff and admins" in answers[0] and "no role" in answers[1]
    assert slack.fake.calls_to("chat.update") == []  # the card stays for someone who may decide
    await _unchanged(slack, edit)


async def test_forged_or_broken_buttons_change_nothing(slack: SlackClient) -> None:
    edit, _ = await _card(slack)
    [notice] = await notices(slack.core)
    ts_value = next(k[1] for k in slack.fake.messages if k[0] == "C1")
    for value in ('{"c":999999}', '{"c":"1;drop"}', '{"c":true}', "{}", "not json", '{"a":1}', '{"c":-1}'):
        await _press(slack, "clinic.conflict_keep", value, "UA", ts_value)
    # a conflict of another practice is not found either
    other = await make_actor(slack.core, "UX", ("staff",), team="T2")
    assert other.practice_id != slack.clinic.practice_id
    payload = slack.action_payload("clinic.conflict_accept", json.dumps({"c": notice.id}), user="UX",
                                   ephemeral=False, message_ts=ts_value, rid="other-practice")
    payload["team"]["id"] = payload["user"]["team_id"] = "T2"
    before = len(slack.fake.calls)
    await slack.interact(payload)
    await slack.fake.wait_for(lambda: len(slack.fake.calls) > before)
    await slack.settle()
    answers = [json.dumps(p.args) for p in slack.fake.calls_to("response_url")]
    assert len(answers) == 8 and all("warning" in a for a in answers)
    assert "no such conflict" in answers[-1]
    assert slack.fake.calls_to("chat.update") == []
    await _unchanged(slack, edit)


async def test_without_a_staff_channel_staff_and_admins_get_a_dm_each(slack: SlackClient) -> None:
    await make_actor(slack.core, "UA", ("staff",))
    await make_actor(slack.core, "UB", ("admin",))
    await make_actor(slack.core, "ULEE", ("practitioner",), practitioner_id=slack.clinic.lee)
    await hand_edited(slack.core, slack.clinic)
    await _settled(slack)
    opened = sorted(c.args["users"] for c in slack.fake.calls_to("conversations.open"))
    assert opened == ["UA", "UB"]
    assert sorted(c.args["channel"] for c in slack.fake.calls_to("chat.postMessage")) == ["DUA", "DUB"]


async def test_a_failed_delivery_is_retried_later(slack: SlackClient) -> None:
    await _staff_channel(slack)
    slack.fake.fail("chat.postMessage", "internal_error")
    await hand_edited(slack.core, slack.clinic)
    await _settled(slack)
    [notice] = await notices(slack.core)
    assert notice.status == "pending" and notice.attempts == 1 and notice.next_attempt_at > slack.core.clock()
    assert "internal_error" in (notice.last_error or "")
    slack.core.clock = lambda: notice.next_attempt_at  # time passes
    await _settled(slack)
    [notice] = await notices(slack.core)
    assert notice.status == "sent" and notice.attempts == 2
    assert len([c for c in slack.fake.calls_to("chat.postMessage")]) == 2  # one refused, one delivered
