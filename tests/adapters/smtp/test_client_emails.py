"""Clients told of changes by email, through a real local SMTP server (aiosmtpd).

A visit moved or cancelled through the same service chat uses reaches the client as an invitation
that updates itself (METHOD:REQUEST with a higher SEQUENCE, METHOD:CANCEL); a booking platform that
tells its clients itself is left to do so; an opted-out client gets nothing; a mail server that is
down defers, and the message goes once it is back.
"""

from __future__ import annotations

import asyncio
import email
import socket
from collections.abc import AsyncIterator, Iterator
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

from adapters.smtp.settings import SmtpSettings
from bot.app import build_app
from bot.cli import main
from sync.boot import open_core
from sync.notify import clients
from sync.runtime.core import Core
from sync.services import moves
from sync.services.practices import add_practitioner, create_practice
from sync.store.migrate import upgrade
from sync.store.model import Appointment, AuditEntry, Calendar, ClientNotice, Connection
from tests.conftest import TEST_KEY, drop_schema, make_settings

NOW = datetime(2031, 5, 5, 9, 0, tzinfo=UTC)


@dataclass
class Inbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd checks its own port once started: it needs a real one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
async def core(backend: str, tmp_path: Path, smtp: tuple[Inbox, int]) -> AsyncIterator[Core]:
    settings = make_settings(backend, tmp_path, smtp_host="127.0.0.1", smtp_port=smtp[1], smtp_security="none",
                             smtp_from="Northside Clinic <desk@northside.example>",
                             public_url="https://bot.northside.example")
    c = open_core(settings)
    c.clock = lambda: NOW
    await upgrade(c.store)
    try:
        yield c
    finally:
        await c.close()
        await drop_schema(settings)


async def visit(core: Core, *, provider: str | None = None, practice_settings: dict[str, Any] | None = None) -> int:
    """A practice with one booked visit for a client with an email address (as a sync would store it)."""
    async with core.store.session() as s:
        practice = await create_practice(s, "Northside Clinic", "Europe/London", "test")
        practice.settings = {**(practice.settings or {}), **(practice_settings or {})}
        lee = await add_practitioner(s, practice, "Dr Ann Lee", email=None, tz="Europe/London", actor="test")
        source_id = None
        if provider is not None:
            conn = Connection(practice_id=practice.id, provider=provider, account="acct", config={})
            s.add(conn)
            await s.flush()
            cal = Calendar(connection_id=conn.id, remote_id="cal", name="Bookings", role="source")
            s.add(cal)
            await s.flush()
            source_id = cal.id
        appt = Appointment(practice_id=practice.id, practitioner_id=lee.id, start=NOW + timedelta(days=2),
                           end=NOW + timedelta(days=2, minutes=45), tzid="Europe/London", status="confirmed",
                           version=1, exdates=[], client_name="Jane Roe", client_email="jane.roe@client.example",
                           service="Reiki", location_text="12 High St", source_calendar_id=source_id)
        s.add(appt)
        await s.flush()
        return appt.id


def invitation(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no invitation in the message")


def body(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no text part")


async def test_a_moved_then_cancelled_visit_updates_itself_in_the_clients_calendar(
    core: Core, smtp: tuple[Inbox, int]
) -> None:
    inbox, _port = smtp
    appt_id = await visit(core, practice_settings={"client_details": True})  # the service is named only then
    async with core.store.session() as s:
        practice_id = (await s.get(Appointment, appt_id)).practice_id  # type: ignore[union-attr]
    new_start = NOW + timedelta(days=3, hours=5)
    await moves.move(core, practice_id, appt_id, new_start, actor="slack:T1/UDESK")
    stats = await clients.send_due(core)
    assert (stats.sent, stats.failed) == (1, 0)
    [moved] = inbox.messages
    assert moved["To"] == "Jane Roe <jane.roe@client.example>"
    assert "has moved to Thu 08 May 2031, 15:00" in moved["Subject"]
    ics = invitation(moved)
    assert "METHOD:REQUEST" in ics and "SEQUENCE:2" in ics and f"UID:clinicbot-{practice_id}-{appt_id}" in ics
    assert "DTSTART:20310508T140000Z" in ics and "LOCATION:12 High St" in ics
    text = body(moved)
    assert "Hello Jane" in text and "Reiki visit with Dr Ann Lee at Northside Clinic" in text
    assert "https://bot.northside.example/unsubscribe?t=" in text
    assert moved["List-Unsubscribe"].startswith("<https://bot.northside.example/unsubscribe?t=")
    # Sent once: the job running again sends nothing more.
    assert (await clients.send_due(core)).sent == 0

    await moves.cancel(core, practice_id, appt_id, reason="client sick", actor="slack:T1/UDESK")
    await clients.send_due(core)
    cancelled = inbox.messages[-1]
    ics = invitation(cancelled)
    assert "METHOD:CANCEL" in ics and "SEQUENCE:3" in ics and "STATUS:CANCELLED" in ics
    assert "is cancelled" in cancelled["Subject"]
    assert cancelled["Message-ID"] != moved["Message-ID"]
    async with core.store.session() as s:
        actions = (await s.scalars(select(AuditEntry.action).where(AuditEntry.action == "client.notified"))).all()
        assert len(actions) == 2


async def test_a_platform_that_tells_its_clients_is_left_to_do_it(core: Core, smtp: tuple[Inbox, int]) -> None:
    appt_id = await visit(core, provider="square")
    async with core.store.session() as s:
        practice_id = (await s.get(Appointment, appt_id)).practice_id  # type: ignore[union-attr]
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=3), actor="slack:T1/UDESK")
    await clients.send_due(core)
    assert smtp[0].messages == []
    async with core.store.session() as s:
        assert (await s.scalars(select(ClientNotice))).all() == []


async def test_an_opted_out_client_gets_nothing_and_the_link_works_through_the_server(
    core: Core, smtp: tuple[Inbox, int]
) -> None:
    appt_id = await visit(core)
    async with core.store.session() as s:
        practice_id = (await s.get(Appointment, appt_id)).practice_id  # type: ignore[union-attr]
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=3), actor="cli:desk")
    token = clients.unsubscribe_token(practice_id, "Jane.Roe@client.example")
    async with TestClient(TestServer(build_app(core.settings, core=core))) as http:
        page = await http.get(f"/unsubscribe?t={token}")
        assert page.status == 200 and "Stop messages" in await page.text()
        assert (await http.post(f"/unsubscribe?t={token[:-2]}xx")).status == 400
        done = await http.post(f"/unsubscribe?t={token}")
        assert done.status == 200 and "no more messages" in await done.text()
    # Queued before the opt-out: checked again when due, and skipped.
    assert (await clients.send_due(core)).skipped == 1
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=4), actor="cli:desk")
    assert (await clients.send_due(core)).sent == 0 and smtp[0].messages == []


async def test_a_mail_server_that_is_down_defers_and_quiet_hours_wait(
    core: Core, smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    appt_id = await visit(core, practice_settings={"client_quiet": "21:00-08:00"})
    async with core.store.session() as s:
        practice_id = (await s.get(Appointment, appt_id)).practice_id  # type: ignore[union-attr]
    late = datetime(2031, 5, 5, 22, 30, tzinfo=UTC)  # 23:30 in London: inside the quiet hours
    core.clock = lambda: late
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=3), actor="cli:desk")
    assert (await clients.send_due(core)).sent == 0
    async with core.store.session() as s:
        notice = await s.scalar(select(ClientNotice))
        assert notice is not None and notice.next_attempt_at == datetime(2031, 5, 6, 7, 0, tzinfo=UTC)
    core.clock = lambda: datetime(2031, 5, 6, 7, 1, tzinfo=UTC)
    monkeypatch.setattr(core.settings.section(type(_smtp_section(core))), "smtp_port", 1)  # nothing listens there
    stats = await clients.send_due(core)
    assert (stats.sent, stats.retried) == (0, 1)
    async with core.store.session() as s:
        notice = await s.scalar(select(ClientNotice))
        assert notice is not None and notice.status == "pending" and "cannot reach" in (notice.last_error or "")
        retry_at = notice.next_attempt_at
    monkeypatch.setattr(core.settings.section(type(_smtp_section(core))), "smtp_port", smtp[1])
    core.clock = lambda: retry_at
    assert (await clients.send_due(core)).sent == 1 and len(smtp[0].messages) == 1


def _smtp_section(core: Core) -> Any:
    return core.settings.section(SmtpSettings)


async def test_an_admin_opts_a_client_out_from_the_cli(core: Core, smtp: tuple[Inbox, int]) -> None:
    if core.settings.database_schema:
        pytest.skip("the CLI reads its database from the environment; the PostgreSQL run uses a schema")
    appt_id = await visit(core)
    env = {"CLINICBOT_DATABASE_URL": core.settings.database_url, "CLINICBOT_SECRET_KEY": TEST_KEY}
    runner = CliRunner()
    done = await asyncio.to_thread(runner.invoke, main, ["clients", "optout", "JANE.ROE@client.example"], env=env)
    assert done.exit_code == 0 and "opted out" in done.output
    bad = await asyncio.to_thread(runner.invoke, main, ["clients", "optout", "not-an-address"], env=env)
    assert bad.exit_code == 1 and "not an email address" in bad.output
    async with core.store.session() as s:
        practice_id = (await s.get(Appointment, appt_id)).practice_id  # type: ignore[union-attr]
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=3), actor="cli:desk")
    await clients.send_due(core)
    assert smtp[0].messages == []
    status = await asyncio.to_thread(runner.invoke, main, ["clients", "status", "--json"], env=env)
    assert status.exit_code == 0 and '"sent": 0' in status.output


async def test_without_details_no_service_and_a_practice_template_is_the_email_text(
    core: Core, smtp: tuple[Inbox, int]
) -> None:
    template = "{client}, {practitioner} now sees you {date} at {time} ({location})."
    appt_id = await visit(core, practice_settings={"client_channels": "both",
                                                   "client_templates": {"moved": template}})
    async with core.store.session() as s:
        appt = await s.get(Appointment, appt_id)
        assert appt is not None
        appt.client_phone, practice_id = "+447700900123", appt.practice_id
    await moves.move(core, practice_id, appt_id, NOW + timedelta(days=3), actor="cli:desk")
    # Texts are on too, but this server has no Twilio: only the email is queued.
    assert (await clients.send_due(core)).sent == 1
    [moved] = smtp[0].messages
    text = body(moved)
    assert text.startswith("Jane, Dr Ann Lee now sees you Thu 08 May at 10:00 (12 High St).")
    assert "Reiki" not in text and "Reiki" not in invitation(moved) and "/unsubscribe?t=" in text
    async with core.store.session() as s:
        assert [n.channel for n in (await s.scalars(select(ClientNotice))).all()] == ["email"]
