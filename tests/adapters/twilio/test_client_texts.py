"""Clients told of changes by text, through the loopback Twilio, and their STOP through the real server.

A visit moved or cancelled through the same service chat uses reaches the client as one short text
(without the service unless the practice turns details on); a signed STOP opts the number out, a
forged one is refused and changes nothing, a replay is harmless; a sender that dies mid-send never
texts twice; quiet hours, templates and 24 h reminders follow the practice's settings, set from chat.
"""

from __future__ import annotations

import asyncio
import email
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from sqlalchemy import select

from adapters.twilio.settings import TwilioSettings
from bot.app import build_app
from bot.cli import main
from bot.commands.grammar import parse
from bot.commands.handlers import handle
from bot.views import ConfirmCancel, Notice
from sync.boot import open_core
from sync.notify import client_reminders, clients
from sync.runtime.core import Core
from sync.services import moves
from sync.services.client_notices import change_client_notices, parse_change
from sync.services.errors import Invalid
from sync.services.identities import Actor
from sync.services.practices import add_practitioner, create_practice
from sync.store.migrate import upgrade
from sync.store.model import Appointment, AuditEntry, ClientNotice, ClientOptOut, SmsInbound
from tests.adapters.twilio.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, TwilioFake
from tests.conftest import TEST_KEY, drop_schema, make_settings

NOW = datetime(2031, 5, 5, 9, 0, tzinfo=UTC)  # 10:00 in London
PUBLIC = "https://bot.northside.example"
INBOUND = f"{PUBLIC}/sms/twilio/inbound"
PHONE = "+447700900123"


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioFake]:
    fake = TwilioFake()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def core(backend: str, tmp_path: Path, twilio: TwilioFake) -> AsyncIterator[Core]:
    settings = make_settings(backend, tmp_path, twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                             twilio_from=twilio.number, twilio_base_url=twilio.url, twilio_timeout=1.0,
                             public_url=PUBLIC)
    c = open_core(settings)
    c.clock = lambda: NOW
    await upgrade(c.store)
    try:
        yield c
    finally:
        await c.close()
        await drop_schema(settings)


async def visit(core: Core, *, practice_settings: dict[str, Any] | None = None, phone: str = "+44 7700 900123",
                start: datetime | None = None) -> tuple[int, int]:
    """A practice that texts its clients, with one booked visit for a client with a phone number."""
    async with core.store.session() as s:
        practice = await create_practice(s, "Northside Clinic", "Europe/London", "test")
        practice.settings = {**(practice.settings or {}), "client_channels": "sms", **(practice_settings or {})}
        lee = await add_practitioner(s, practice, "Dr Ann Lee", email=None, tz="Europe/London", actor="test")
        begin = start or NOW + timedelta(days=2)
        appt = Appointment(practice_id=practice.id, practitioner_id=lee.id, start=begin,
                           end=begin + timedelta(minutes=45), tzid="Europe/London", status="confirmed",
                           version=1, exdates=[], client_name="Jane Roe", client_phone=phone,
                           service="Reiki", notes="knee pain", location_text="12 High St")
        s.add(appt)
        await s.flush()
        return practice.id, appt.id


async def audits(core: Core, action: str) -> list[dict[str, Any]]:
    async with core.store.session() as s:
        rows = (await s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))).all()
        return [dict(r.details or {}) for r in rows]


async def test_a_moved_then_cancelled_visit_texts_the_client_once_each(core: Core, twilio: TwilioFake) -> None:
    practice_id, appt_id = await visit(core)
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=3, hours=5), actor="slack:T1/UDESK")
    stats = await clients.send_due(core)
    assert (stats.sent, stats.failed) == (1, 0)
    [moved] = twilio.messages
    assert moved.to == PHONE and moved.sender == twilio.number
    assert moved.body == ("Northside Clinic: your visit with Dr Ann Lee has moved to Thu 08 May at 15:00. "
                          "At 12 High St. Reply STOP to opt out.")
    assert "Reiki" not in moved.body and "knee" not in moved.body  # no service or notes unless turned on
    assert (await clients.send_due(core)).sent == 0  # sent once

    await moves.cancel(core, practice_id, appt_id, reason="client sick", actor="slack:T1/UDESK")
    await clients.send_due(core)
    assert len(twilio.messages) == 2 and "on Thu 08 May at 15:00 is cancelled" in twilio.messages[1].body
    assert await audits(core, "client.notified") == [
        {"kind": "moved", "channel": "sms", "outcome": "sent"}, {"kind": "cancelled", "channel": "sms", "outcome": "sent"}]


async def test_a_signed_stop_through_the_server_opts_the_number_out_and_a_forged_one_changes_nothing(
    core: Core, twilio: TwilioFake
) -> None:
    practice_id, appt_id = await visit(core)
    async with TestClient(TestServer(build_app(core.settings, core=core))) as http:
        target = str(http.make_url("/sms/twilio/inbound"))
        forged, _, _ = await twilio.reply(INBOUND, PHONE, "STOP", token="not-the-token", post_to=target)
        assert forged == 403
        unsigned = await http.post("/sms/twilio/inbound", data=twilio.inbound_form(PHONE, "STOP"))
        assert unsigned.status == 403
        async with core.store.session() as s:
            assert (await s.scalars(select(ClientOptOut))).all() == []
            assert (await s.scalars(select(SmsInbound))).all() == []

        status, answer, stop_form = await twilio.reply(INBOUND, PHONE, "Stop", post_to=target)
        assert status == 200 and "<Response></Response>" in answer
        async with core.store.session() as s:
            [row] = (await s.scalars(select(ClientOptOut))).all()
            assert (row.practice_id, row.source) == (practice_id, "sms")
            assert row.address_hash == clients.address_hash(PHONE) and PHONE not in row.address_hash
        await moves.move(core, practice_id, appt_id, NOW + timedelta(days=3), actor="cli:desk")
        assert (await clients.send_due(core)).sent == 0 and twilio.messages == []

        status, _, _ = await twilio.reply(INBOUND, PHONE, "START", post_to=target)
        assert status == 200
        # The STOP delivered again (same message, same signature): acted on once, so START stands.
        status, _, _ = await twilio.reply(INBOUND, PHONE, "Stop", form=stop_form, post_to=target)
        assert status == 200
        async with core.store.session() as s:
            assert (await s.scalars(select(ClientOptOut))).all() == []
    assert [a["source"] for a in await audits(core, "client.opt_out")] == ["sms"]
    assert len(await audits(core, "client.opt_in")) == 1
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=4), actor="cli:desk")
    assert (await clients.send_due(core)).sent == 1


async def test_a_sender_that_dies_mid_send_never_texts_twice(core: Core, twilio: TwilioFake) -> None:
    practice_id, appt_id = await visit(core)
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=3), actor="cli:desk")
    twilio.hang = 1
    job = asyncio.create_task(clients.send_due(core))
    await twilio.stored()  # Twilio has the message; the process dies before it hears back
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    async with core.store.session() as s:
        notice = await s.scalar(select(ClientNotice))
        assert notice is not None and (notice.status, notice.attempts) == ("sending", 1)
    # Another replica (or the restarted one) leaves the claim alone while its lease runs...
    assert (await clients.send_due(core)).sent == 0
    # ... then takes it up, asks Twilio, finds the text there, and does not send it again.
    core.clock = lambda: NOW + clients.LEASE + timedelta(seconds=1)
    assert (await clients.send_due(core)).sent == 1
    assert len(twilio.messages) == 1
    async with core.store.session() as s:
        notice = await s.scalar(select(ClientNotice))
        assert notice is not None and notice.status == "sent"


async def test_a_lost_answer_is_checked_before_a_retry_and_a_refusal_shows_in_status(
    core: Core, twilio: TwilioFake, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    practice_id, appt_id = await visit(core)
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=3), actor="cli:desk")
    twilio.hang = 1
    stats = await clients.send_due(core)  # Twilio takes it, the answer never comes (timeout)
    twilio.release()
    assert (stats.sent, stats.retried) == (0, 1)
    async with core.store.session() as s:
        notice = await s.scalar(select(ClientNotice))
        assert notice is not None and notice.status == "pending"
        core.clock = lambda: notice.next_attempt_at  # type: ignore[union-attr]
    assert (await clients.send_due(core)).sent == 1 and len(twilio.messages) == 1

    # Twilio refuses the next one (the number said STOP to Twilio directly): failed, audited, in status.
    twilio.opted_out.add(PHONE)
    await moves.cancel(core, practice_id, appt_id, reason="", actor="cli:desk")
    stats = await clients.send_due(core)
    assert (stats.sent, stats.failed) == (0, 1)
    [failed] = await audits(core, "client.notice_failed")
    assert (failed["channel"], failed["outcome"]) == ("sms", "failed") and "21610" in failed["error"]
    # ... and clinicbot now knows the number opted out: as a STOP it heard itself (START lifts it).
    assert await audits(core, "client.opt_out") == [{"source": "sms"}]
    async with core.store.session() as s:
        [optout] = (await s.scalars(select(ClientOptOut))).all()
        assert (optout.practice_id, optout.address_hash, optout.source) == (
            practice_id, clients.address_hash(PHONE), "sms")
    for key, value in {"CLINICBOT_DATABASE_URL": core.settings.database_url,
                       "CLINICBOT_DATABASE_SCHEMA": core.settings.database_schema,
                       "CLINICBOT_SECRET_KEY": TEST_KEY}.items():
        monkeypatch.setenv(key, str(value))
    out = await asyncio.to_thread(CliRunner().invoke, main, ["clients", "status", "--json"])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert (shown["sent"], shown["failed"]) == (1, 1) and "21610" in shown["last_failure"]
    assert shown["sms"] == "sent 1, failed 1"
    staff = Actor(practice_id, 2, "slack", "Desk", frozenset({"staff"}), "T1", "UDESK")
    view = await handle(core, staff, parse("client-notices"))
    assert isinstance(view, Notice) and "Messages by sms: 1 failed, 1 sent" in view.text
    assert "Last failure (sms, cancelled): twilio: the client replied STOP" in view.text and PHONE not in view.text


async def test_quiet_hours_templates_and_details_follow_the_practice(core: Core, twilio: TwilioFake) -> None:
    practice_id, appt_id = await visit(core, practice_settings={"client_quiet": "21:00-11:00"})
    with pytest.raises(Invalid, match=r"\{room\} is not a placeholder"):
        parse_change(["template", "moved", "See you in {room}"])
    for words in (["details", "on"], ["template", "moved", "{practice}: {service} with {practitioner} now {date} {time}"],
                  ["language", "es"]):
        await change_client_notices(core, practice_id, parse_change(words, " ".join(words)), actor="cli:admin")
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=3), actor="cli:desk")
    assert (await clients.send_due(core)).sent == 0  # 10:00 in London: quiet until 11:00
    core.clock = lambda: NOW + timedelta(hours=1)
    assert (await clients.send_due(core)).sent == 1
    assert twilio.messages[0].body == ("Northside Clinic: Reiki with Dr Ann Lee now jue 08 may 10:00 "
                                       "Responda STOP para no recibir más.")
    async with core.store.session() as s:
        rows = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "practice.client_notices"))).all()
        assert [r.after for r in rows] == [{"client_details": True}, {"client_templates.moved": "{practice}: "
                                           "{service} with {practitioner} now {date} {time}"},
                                           {"client_language": "es"}]


async def test_an_admin_sets_it_from_chat_and_staff_only_look(core: Core, twilio: TwilioFake) -> None:
    practice_id, _ = await visit(core)
    admin = Actor(practice_id, 1, "slack", "Ann", frozenset({"admin"}), "T1", "UADMIN")
    desk = Actor(practice_id, 2, "slack", "Desk", frozenset({"staff"}), "T1", "UDESK")
    view = await handle(core, admin, parse("client-notices reminders on"))
    assert isinstance(view, Notice) and "reminders 24 h before: on" in view.text
    view = await handle(core, admin, parse("client-notices template reminder Bis morgen, {client}! {time}"))
    assert isinstance(view, Notice) and "Template reminder: Bis morgen, {client}! {time}" in view.text
    shown = await handle(core, desk, parse("client-notices"))
    assert isinstance(shown, Notice) and "by sms" in shown.text
    denied = await handle(core, desk, parse("client-notices channel email"))
    assert "admin" in getattr(denied, "text", str(denied)).lower()
    async with core.store.session() as s:
        rows = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "practice.client_notices"))).all()
        assert {r.actor for r in rows} == {"slack:T1/UADMIN"} and len(rows) == 2


async def test_a_reminder_goes_24_hours_before_once_and_not_for_a_cancelled_visit(
    core: Core, twilio: TwilioFake
) -> None:
    practice_id, _ = await visit(core, practice_settings={"client_reminders": True},
                                 start=NOW + timedelta(hours=30))
    await client_reminders.send_job(core)
    assert twilio.messages == []  # 30 h ahead: not yet
    core.clock = lambda: NOW + timedelta(hours=7)
    await client_reminders.send_job(core)
    await client_reminders.send_job(core)
    [reminder] = twilio.messages
    assert reminder.body.startswith("Northside Clinic: reminder of your visit with Dr Ann Lee on Tue 06 May at 16:00.")

    # A second visit, reminded in quiet hours, is cancelled before they end: the reminder is skipped.
    async with core.store.session() as s:
        other = Appointment(practice_id=practice_id, start=NOW + timedelta(hours=36),
                            end=NOW + timedelta(hours=37), tzid="Europe/London", status="confirmed", version=1,
                            exdates=[], client_phone="+447700900456")
        s.add(other)
        await s.flush()
        other_id = other.id
    await change_client_notices(core, practice_id, parse_change(["quiet", "21:00-08:00"]), actor="cli:admin")
    core.clock = lambda: NOW + timedelta(hours=13)  # 23:00 in London
    assert await client_reminders.queue_reminders(core) == 1
    await moves.cancel(core, practice_id, other_id, reason="", actor="cli:desk")
    core.clock = lambda: NOW + timedelta(hours=22)
    stats = await clients.send_due(core)
    assert stats.skipped == 1
    assert [m.to for m in twilio.messages] == [PHONE, "+447700900456"]  # the cancellation text only
    assert "cancelled" in twilio.messages[1].body


async def test_a_recurring_visit_is_reminded_occurrence_by_occurrence_once_each(
    core: Core, twilio: TwilioFake
) -> None:
    """A weekly series from its calendar: each of its visits is reminded 24 h before, once; a visit taken
    out of the series (EXDATE) after its reminder was queued is not reminded."""
    practice_id, single_id = await visit(core, practice_settings={"client_reminders": True},
                                         start=NOW + timedelta(days=30))
    async with core.store.session() as s:
        series = Appointment(practice_id=practice_id, start=NOW + timedelta(hours=30),
                             end=NOW + timedelta(hours=31), tzid="Europe/London", status="confirmed", version=1,
                             exdates=[], client_name="Jo Weekly", client_phone="+447700900777",
                             rrule="FREQ=WEEKLY;COUNT=3", created_at=NOW - timedelta(days=30))
        s.add(series)
        await s.flush()
        series_id = series.id
    first = NOW + timedelta(hours=30)  # Tue 06 May, 16:00 in London
    core.clock = lambda: first - timedelta(hours=23)
    await client_reminders.send_job(core)
    await client_reminders.send_job(core)
    [one] = twilio.messages
    assert one.to == "+447700900777" and "on Tue 06 May at 16:00" in one.body
    second = first + timedelta(days=7)
    core.clock = lambda: second - timedelta(hours=23)
    await client_reminders.send_job(core)
    assert len(twilio.messages) == 2 and "on Tue 13 May at 16:00" in twilio.messages[1].body

    # The third visit: queued in quiet hours, then taken out of the series before they end.
    await change_client_notices(core, practice_id, parse_change(["quiet", "21:00-08:00"]), actor="cli:admin")
    third = second + timedelta(days=7)
    core.clock = lambda: third - timedelta(hours=18)  # 22:00 in London the evening before: quiet
    assert await client_reminders.queue_reminders(core) == 1
    assert (await clients.send_due(core)).sent == 0
    assert await client_reminders.queue_reminders(core) == 0  # once per visit
    async with core.store.session() as s:
        row = await s.get(Appointment, series_id)
        assert row is not None
        row.exdates = [third.isoformat()]
    core.clock = lambda: third - timedelta(hours=7)
    stats = await clients.send_due(core)
    assert (stats.sent, stats.skipped) == (0, 1) and len(twilio.messages) == 2
    async with core.store.session() as s:
        keys = sorted((await s.scalars(select(ClientNotice.key).where(ClientNotice.appointment_id == series_id))).all())
    assert len(keys) == 3 and len(set(keys)) == 3 and single_id != series_id


async def test_a_number_that_is_not_international_is_failed_visibly_not_guessed(
    core: Core, twilio: TwilioFake
) -> None:
    practice_id, appt_id = await visit(core, phone="07700 900123")
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=3), actor="cli:desk")
    assert (await clients.send_due(core)).sent == 0 and twilio.messages == []
    async with core.store.session() as s:
        notice = await s.scalar(select(ClientNotice))
        assert notice is not None and notice.status == "failed" and "prefix +44" in (notice.last_error or "")
    # With the practice's country code set, the same number is read as +44 and texted.
    await change_client_notices(core, practice_id, parse_change(["prefix", "+44"]), actor="cli:admin")
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=4), actor="cli:desk")
    assert (await clients.send_due(core)).sent == 1 and [m.to for m in twilio.messages] == [PHONE]
    with pytest.raises(Invalid, match="country code"):
        parse_change(["prefix", "44"])


async def test_every_visit_in_the_window_is_reminded_however_many_pages(
    core: Core, twilio: TwilioFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_reminders, "BATCH", 2)
    practice_id, _ = await visit(core, practice_settings={"client_reminders": True}, start=NOW + timedelta(hours=5))
    async with core.store.session() as s:
        for n in range(4):  # two at the same start: the page boundary falls between equal starts
            begin = NOW + timedelta(hours=6 + n // 2 * 3)
            s.add(Appointment(practice_id=practice_id, start=begin, end=begin + timedelta(hours=1),
                              tzid="Europe/London", status="confirmed", version=1, exdates=[],
                              client_phone=f"+4477009004{n:02d}"))
    assert await client_reminders.queue_reminders(core) == 5
    assert await client_reminders.queue_reminders(core) == 0
    assert (await clients.send_due(core)).sent == 5 and len({m.to for m in twilio.messages}) == 5


@dataclass
class Inbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


async def test_a_visit_cancelled_in_chat_reaches_the_client_once_by_email_and_once_by_text(
    backend: str, tmp_path: Path, twilio: TwilioFake
) -> None:
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mail = Controller(inbox, hostname="127.0.0.1", port=port)
    mail.start()
    settings = make_settings(backend, tmp_path, twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                             twilio_from=twilio.number, twilio_base_url=twilio.url, public_url=PUBLIC,
                             smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
                             smtp_from="Northside Clinic <desk@northside.example>")
    core = open_core(settings)
    core.clock = lambda: NOW
    try:
        await upgrade(core.store)
        practice_id, appt_id = await visit(core, practice_settings={"client_channels": "both"})
        async with core.store.session() as s:
            appt = await s.get(Appointment, appt_id)
            assert appt is not None
            appt.client_email = "jane.roe@client.example"
        desk = Actor(practice_id, 2, "slack", "Desk", frozenset({"staff"}), "T1", "UDESK")
        asked = await handle(core, desk, parse(f"cancel A-{appt_id} client sick"))
        assert isinstance(asked, ConfirmCancel)
        await handle(core, desk, asked.confirm)
        await handle(core, desk, asked.confirm)  # the button pressed twice
        await client_reminders.send_job(core)
        await client_reminders.send_job(core)
        [cancelled] = inbox.messages
        calendar = next(p for p in cancelled.walk() if p.get_content_type() == "text/calendar")
        assert "METHOD:CANCEL" in calendar.get_payload(decode=True).decode()  # type: ignore[union-attr]
        [text] = twilio.messages
        assert text.to == PHONE and "is cancelled" in text.body
        assert sorted(d["channel"] for d in await audits(core, "client.notified")) == ["email", "sms"]
    finally:
        await core.close()
        await drop_schema(settings)
        mail.stop()


async def test_a_long_throttle_waits_as_long_as_twilio_asks(core: Core, twilio: TwilioFake) -> None:
    practice_id, appt_id = await visit(core)
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=3), actor="cli:desk")
    twilio.throttle = [(429, "7200")]  # too long for the client to sleep through: back to the job
    assert (await clients.send_due(core)).retried == 1
    async with core.store.session() as s:
        notice = await s.scalar(select(ClientNotice))
        assert notice is not None and notice.next_attempt_at == NOW + timedelta(hours=2)
    core.clock = lambda: NOW + timedelta(hours=2)
    assert (await clients.send_due(core)).sent == 1 and len(twilio.messages) == 1


async def test_a_wrong_twilio_setting_never_fails_the_move_it_would_tell(backend: str, tmp_path: Path) -> None:
    settings = make_settings(backend, tmp_path, public_url=PUBLIC)
    core = open_core(settings)
    core.clock = lambda: NOW
    try:
        await upgrade(core.store)
        practice_id, appt_id = await visit(core)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("CLINICBOT_TWILIO_ACCOUNT_SID", "not-a-sid")
            env.delitem(core.settings._sections, TwilioSettings, raising=False)  # read from the environment
            moved = await moves.move(core, practice_id, appt_id, NOW + timedelta(days=3), actor="cli:desk")
        assert moved is not None
        async with core.store.session() as s:
            appt = await s.get(Appointment, appt_id)
            assert appt is not None and appt.start == NOW + timedelta(days=3)
            assert (await s.scalars(select(ClientNotice))).all() == []
    finally:
        await core.close()
        await drop_schema(settings)


async def test_the_cli_shows_and_changes_the_settings_like_chat(
    core: Core, twilio: TwilioFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    await visit(core)
    for key, value in {"CLINICBOT_DATABASE_URL": core.settings.database_url,
                       "CLINICBOT_DATABASE_SCHEMA": core.settings.database_schema,
                       "CLINICBOT_SECRET_KEY": TEST_KEY}.items():
        monkeypatch.setenv(key, str(value))

    async def cli(*words: str) -> Any:
        return await asyncio.to_thread(CliRunner().invoke, main, ["clients", "settings", *words])

    changed = await cli("template", "cancelled", "{practice}: {date} {time} is off. Call us to rebook.")
    assert changed.exit_code == 0, changed.output
    assert "Template cancelled: {practice}: {date} {time} is off. Call us to rebook." in changed.output
    refused = await cli("template", "cancelled", "Bye {client_name}")
    assert refused.exit_code == 1 and "{client_name} is not a placeholder" in refused.output
    shown = await cli()
    assert "by sms" in shown.output and "Template cancelled" in shown.output
    assert (await cli("quiet", "25:00-08:00")).exit_code == 1


async def test_a_text_the_carrier_did_not_deliver_is_bounced_once_through_the_signed_report(
    core: Core, twilio: TwilioFake
) -> None:
    practice_id, appt_id = await visit(core)
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=3), actor="cli:desk")
    assert (await clients.send_due(core)).sent == 1
    [sent] = twilio.messages
    assert sent.status_callback == f"{PUBLIC}/sms/twilio/status"
    async with TestClient(TestServer(build_app(core.settings, core=core))) as http:
        target = str(http.make_url("/sms/twilio/status"))
        assert (await twilio.report(sent, "delivered", post_to=target))[0] == 204
        forged, _ = await twilio.report(sent, "undelivered", "30003", token="not-the-token", post_to=target)
        assert forged == 403
        async with core.store.session() as s:
            notice = await s.scalar(select(ClientNotice))
            assert notice is not None and (notice.status, notice.remote_id) == ("sent", sent.sid)
        status, form = await twilio.report(sent, "undelivered", "30003", post_to=target)
        assert status == 204
        assert (await twilio.report(sent, "undelivered", "30003", post_to=target, form=form))[0] == 204  # replay
    async with core.store.session() as s:
        notice = await s.scalar(select(ClientNotice))
        assert notice is not None and notice.status == "bounced" and "30003" in (notice.last_error or "")
    assert await audits(core, "client.notice_bounced") == [
        {"kind": "moved", "channel": "sms", "outcome": "bounced", "error": "twilio: undelivered (error 30003)"}]
