"""The follow-up DM end to end on Slack: the real dispatcher posts it, the buttons are pressed
through signed interactions, and the DM is updated in place with chat.update."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.app import build_app
from bot.slack import render
from bot.slack.server import SLACK
from bot.views import View
from sync.notify.reminders import Dispatcher, replan_appointment
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.store.model import Appointment, AuditEntry, ReminderLedger
from tests.bot.clinic import NOW, make_actor, seed
from tests.bot.reminder_views import labels, samples
from tests.bot.slack.conftest import SlackClient, slack_settings
from tests.fakes.slack import FakeSlack, check_blocks


@pytest.fixture
async def slack(core: Core, settings: Settings, fake_slack: FakeSlack) -> AsyncIterator[SlackClient]:
    """The Slack server without its own scheduler: the test runs the dispatcher itself."""
    clinic = await seed(core)
    app = build_app(slack_settings(settings, fake_slack, scheduler_enabled=False), core=core)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield SlackClient(str(server.make_url("")).rstrip("/"), session, fake_slack, app[SLACK], core, clinic)
    await server.close()


def _buttons(blocks: list[dict[str, Any]]) -> dict[str, str]:
    """action_id -> value of every button in the message."""
    return {
        e["action_id"]: e["value"]
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "button"
    }


async def _dispatch_followup(slack: SlackClient) -> dict[str, Any]:
    """Plan the 10:00 visit's follow-up, run the real dispatcher after it ends; the posted DM."""
    c = slack.clinic
    await make_actor(slack.core, "ULEE", ("practitioner",), practitioner_id=c.lee)
    async with slack.core.store.session() as s:
        await replan_appointment(s, c.a_lee_10, NOW)
    after = NOW + timedelta(hours=2, minutes=31)  # 10:31 in London: the 10:00-10:30 visit is over
    slack.core.clock = lambda: after
    dispatcher = Dispatcher(slack.core.store, lambda: slack.core.services.notifier, slack.core.clock)
    report = await dispatcher.run_due()
    assert report.sent == 1, report
    async with slack.core.store.session() as s:
        kinds = (await s.scalars(select(ReminderLedger.kind).where(ReminderLedger.status == "sent"))).all()
    assert list(kinds) == ["followup"]
    [post] = slack.fake.calls_to("chat.postMessage")
    assert post.args["channel"] == "DULEE"
    blocks = post.args["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    check_blocks(blocks)
    ts = next(ts for (ch, ts) in slack.fake.messages if ch == "DULEE")
    return {"blocks": blocks, "ts": ts}


def _press(slack: SlackClient, dm: dict[str, Any], action_id: str, user: str) -> dict[str, Any]:
    payload = slack.action_payload(
        action_id, _buttons(dm["blocks"])[action_id], user=user, ephemeral=False, message_ts=dm["ts"]
    )
    payload["container"]["channel_id"] = payload["channel"]["id"] = "DULEE"
    return payload


async def test_followup_dm_has_three_buttons_and_attended_updates_it_in_place(slack: SlackClient) -> None:
    dm = await _dispatch_followup(slack)
    buttons = _buttons(dm["blocks"])
    assert list(buttons) == ["clinic.followup_attended", "clinic.followup_no_show", "clinic.followup_book"]
    assert "Jane Roe" not in json.dumps(dm["blocks"]) and "J.R." in json.dumps(dm["blocks"])

    await slack.interact(_press(slack, dm, "clinic.followup_attended", "ULEE"))
    await slack.settle()
    [update] = slack.fake.calls_to("chat.update")
    assert (update.args["channel"], update.args["ts"]) == ("DULEE", dm["ts"])
    text = json.dumps(update.args["blocks"])
    assert "marked attended by ulee" in text
    assert list(_buttons(update.args["blocks"])) == ["clinic.followup_book"]
    async with slack.core.store.session() as s:
        appt = await s.get(Appointment, slack.clinic.a_lee_10)
        audit = (
            await s.execute(
                select(AuditEntry.action, AuditEntry.actor).where(AuditEntry.appointment_id == slack.clinic.a_lee_10)
            )
        ).all()
    assert appt is not None and appt.status == "completed"
    assert [tuple(r) for r in audit] == [("appointment.completed", "slack:T1/ULEE")]


async def test_no_show_then_a_second_press_is_a_noop_with_a_notice(slack: SlackClient) -> None:
    dm = await _dispatch_followup(slack)
    await slack.interact(_press(slack, dm, "clinic.followup_no_show", "ULEE"))
    await slack.settle()
    await slack.interact(_press(slack, dm, "clinic.followup_attended", "ULEE"))
    await slack.settle()
    first, second = slack.fake.calls_to("chat.update")
    assert "marked no-show" in json.dumps(first.args["blocks"])
    assert "Already recorded" in json.dumps(second.args["blocks"])
    async with slack.core.store.session() as s:
        appt = await s.get(Appointment, slack.clinic.a_lee_10)
        marks = (
            await s.scalars(select(AuditEntry.action).where(AuditEntry.appointment_id == slack.clinic.a_lee_10))
        ).all()
    assert appt is not None and appt.status == "no_show"
    assert list(marks) == ["appointment.no_show"]


async def test_a_foreign_users_press_changes_nothing(slack: SlackClient) -> None:
    dm = await _dispatch_followup(slack)
    await make_actor(slack.core, "UADMIN", ("admin",))  # else the first stranger becomes admin
    await make_actor(slack.core, "UKIM", ("practitioner",), practitioner_id=slack.clinic.kim)
    for user in ("UKIM", "UNOBODY"):
        await slack.interact(_press(slack, dm, "clinic.followup_attended", user))
        await slack.settle()
    assert slack.fake.calls_to("chat.update") == []  # the DM was not touched
    answers = [c.args for c in slack.fake.calls_to("response_url")]
    assert len(answers) == 2 and all(a["response_type"] == "ephemeral" for a in answers)
    async with slack.core.store.session() as s:
        appt = await s.get(Appointment, slack.clinic.a_lee_10)
        audit = (await s.scalars(select(AuditEntry.id).where(AuditEntry.appointment_id == slack.clinic.a_lee_10))).all()
    assert appt is not None and appt.status == "confirmed" and list(audit) == []


@pytest.mark.parametrize(("name", "view"), samples(), ids=labels())
def test_reminder_views_render_as_valid_block_kit(name: str, view: View) -> None:
    text, blocks = render.message(view)
    check_blocks(blocks)
    assert text
    dumped = json.dumps(blocks, ensure_ascii=False)
    if name == "reminder late":
        assert "late" in dumped
    if name == "status with reminders":
        assert "12 planned · 1 retrying · 2 failed · 1 unknown" in dumped
    if name.startswith("followup") or name.startswith("reminder"):
        assert "&lt;b&gt;" in dumped or "A.E." in dumped  # people's text escaped
