"""The follow-up DM end to end on Teams: the real dispatcher sends an Adaptive Card 1.5 through the
Bot Connector, and pressing Attended (Action.Execute) answers the invoke with the updated card."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.teams import cards
from bot.views import View
from sync.notify.reminders import Dispatcher, replan_appointment
from sync.store.model import Appointment, AuditEntry, ChatIdentity, Practice, Practitioner, Role
from tests.bot.reminder_views import labels, samples
from tests.bot.teams.conftest import TENANT, Teams, _serve, activity, teams_settings
from tests.bot.teams.test_invoke import _buttons, _invoke
from tests.bot.teams.test_schemas import CARD_SCHEMA
from tests.fakes.bot_connector import FakeBotConnector

START = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


@pytest.fixture
async def teams(
    backend: str, tmp_path: Path, connector: FakeBotConnector, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Teams]:
    """The Teams server without its own scheduler: the test runs the dispatcher itself."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", connector.ca_path)
    settings = teams_settings(backend, tmp_path, connector, scheduler_enabled=False)
    async for url, core, app in _serve(settings):
        async with aiohttp.ClientSession() as session:
            yield Teams(url, connector, core, settings, app, session)


async def _followup_card(t: Teams) -> tuple[int, dict[str, Any]]:
    """User 2 is Dr Lee's chat identity; the dispatcher sends the follow-up of a 10:00 visit."""
    for n in (1, 2):  # user 1 becomes admin (first contact); user 2 is the practitioner
        status, _ = await t.post(activity(t.connector.service_url, text="help", sender=n))
        assert status in (200, 201)
    async with t.core.store.session() as s:
        practice = await s.scalar(select(Practice).order_by(Practice.id).limit(1))
        assert practice is not None
        lee = Practitioner(practice_id=practice.id, name="Dr Lee", handle="dr-lee", timezone="UTC", reminder_prefs={})
        s.add(lee)
        await s.flush()
        appt = Appointment(
            practice_id=practice.id,
            practitioner_id=lee.id,
            start=START,
            end=START + timedelta(minutes=30),
            client_name="Ann Example",
            service="Check-up",
            tzid="UTC",
            status="confirmed",
            version=1,
            exdates=[],
        )
        s.add(appt)
        ident = await s.scalar(select(ChatIdentity).where(ChatIdentity.user_id == "29:user-2"))
        assert ident is not None
        ident.practitioner_id = lee.id
        s.add(Role(chat_identity_id=ident.id, role="practitioner", granted_by="test"))
        await s.flush()
        appt_id = appt.id
        await replan_appointment(s, appt_id, START - timedelta(hours=2))
    # Roles written straight to the database (as the CLI or another replica would) show after the
    # cache's TTL; the test does not wait for that.
    for cache in t.core.services.actor_caches:
        cache.forget_all()
    t.core.clock = lambda: START + timedelta(minutes=31)
    dispatcher = Dispatcher(t.core.store, lambda: t.core.services.notifier, t.core.clock)
    report = await dispatcher.run_due()
    assert report.sent == 1, report
    sent = t.connector.recorded.activities("a:personal-2")
    card = sent[-1]["attachments"][0]["content"]
    return appt_id, card


async def test_followup_card_is_valid_and_attended_updates_it_in_place(teams: Teams) -> None:
    appt_id, card = await _followup_card(teams)
    assert [e.message for e in CARD_SCHEMA.iter_errors(card)] == []
    buttons = [b for b in _buttons(card) if b["type"] == "Action.Execute"]
    assert [b["title"] for b in buttons] == ["Attended", "No-show", "Book follow-up"]
    assert "Ann Example" not in str(card) and "A.E." in str(card)

    attended = buttons[0]
    status, body = await teams.post(_invoke(teams, attended, sender=2))
    assert status == 200, body
    updated = body["value"]
    assert [e.message for e in CARD_SCHEMA.iter_errors(updated)] == []
    assert f"A-{appt_id} marked attended by User 2" in str(updated)
    assert [b["title"] for b in _buttons(updated) if b["type"] == "Action.Execute"] == ["Book follow-up"]
    async with teams.core.store.session() as s:
        appt = await s.get(Appointment, appt_id)
        audit = (
            await s.execute(select(AuditEntry.action, AuditEntry.actor).where(AuditEntry.appointment_id == appt_id))
        ).all()
    assert appt is not None and appt.status == "completed"
    assert [tuple(r) for r in audit] == [("appointment.completed", f"teams:{TENANT}/29:user-2")]

    status, body = await teams.post(_invoke(teams, buttons[1], sender=2))  # No-show after Attended
    assert status == 200 and "Already recorded" in str(body["value"])
    async with teams.core.store.session() as s:
        appt = await s.get(Appointment, appt_id)
    assert appt is not None and appt.status == "completed"


async def test_a_stranger_pressing_the_card_changes_nothing(teams: Teams) -> None:
    appt_id, card = await _followup_card(teams)
    no_show = next(b for b in _buttons(card) if b.get("verb") == "followup_no_show")
    status, body = await teams.post(_invoke(teams, no_show, sender=3))  # user 3 has no role
    assert status == 200 and "Attention" in str(body["value"])
    async with teams.core.store.session() as s:
        appt = await s.get(Appointment, appt_id)
        audit = (await s.scalars(select(AuditEntry.id).where(AuditEntry.appointment_id == appt_id))).all()
    assert appt is not None and appt.status == "confirmed" and list(audit) == []


@pytest.mark.parametrize(("name", "view"), samples(), ids=labels())
def test_reminder_views_are_valid_adaptive_cards(name: str, view: View) -> None:
    card = cards.render(view)
    assert [e.message for e in CARD_SCHEMA.iter_errors(card)] == []
    if name == "status with reminders":
        assert "Retrying" in str(card) and "Unknown" in str(card)
