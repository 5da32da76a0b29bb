"""A lead's life through the service and the card's buttons: proposed (one live confirm link at a
time, three days), booked by the client or directly by staff, lost; every step audited; a slot
taken meanwhile books nothing; only staff may press."""

from __future__ import annotations

import asyncio
import email
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from bot.commands.actions import BookLead, MarkLeadLost, ProposeLead, decode, encode
from bot.commands.errors import ParseError
from bot.commands.grammar import GRAMMAR, ShowLeads, parse
from bot.commands.handlers import handle
from bot.commands.leads import lead_view
from bot.slack.render import message
from bot.teams.cards import render_parts
from bot.views import Error, LeadCardView, LeadList
from sync.boot import open_core
from sync.contract.leads import LeadInput
from sync.notify import clients
from sync.notify.leads import card_sender, resend_cards, take_lead
from sync.runtime.core import Core
from sync.runtime.notifier import DeliveryError, Notification
from sync.services import leads
from sync.services.errors import Conflict
from sync.services.form_connections import add_signed_form
from sync.services.identities import Actor
from sync.services.practices import add_practitioner, create_practice
from sync.store.migrate import upgrade
from sync.store.model import Appointment, AuditEntry, ClientNotice, Practice
from sync.store.model import Lead as LeadRow
from tests.conftest import drop_schema, make_settings

TZ = "America/New_York"
ZONE = ZoneInfo(TZ)
NOW = datetime(2031, 6, 2, 8, 0, tzinfo=ZONE).astimezone(UTC)  # a Monday morning
TUE_2PM = datetime(2031, 6, 3, 14, 0, tzinfo=ZONE)
TUE_3PM = datetime(2031, 6, 3, 15, 0, tzinfo=ZONE)


async def _clinic(core: Core) -> tuple[int, int]:
    core.clock = lambda: NOW
    async with core.store.session() as s:
        practice = await create_practice(s, "Harbour Clinic", TZ, actor="cli:test")
        kim = await add_practitioner(s, practice, "Dr Kim", email=None, tz=TZ, actor="cli:test")
        return practice.id, kim.id


def _staff(practice_id: int, roles: frozenset[str] = frozenset({"staff"})) -> Actor:
    return Actor(practice_id, 1, "slack", "Sam", roles, "T1", "US")


async def _lead(core: Core, practice_id: int, n: int = 1, email: str = "ann@example.org") -> int:
    made = await leads.intake_lead(core, None, LeadInput(submission_id=f"s-{n}", name="Ann Lake", email=email,
                                                         service="Reiki", preferred_times=("Tuesday afternoons",)),
                                   source="leadform", practice_id=practice_id)
    return made.id


async def _actions(core: Core) -> list[tuple[str, str, str | None]]:
    async with core.store.session() as s:
        rows = (await s.scalars(select(AuditEntry).where(AuditEntry.action.like("lead.%")).order_by(AuditEntry.seq)))
        return [(e.action, e.actor, (e.details or {}).get("to")) for e in rows.all()]


async def test_one_live_confirm_link_that_books_once_and_expires(core: Core) -> None:
    practice_id, kim = await _clinic(core)
    lead_id = await _lead(core, practice_id)
    first = await leads.propose(core, practice_id, lead_id, kim, TUE_2PM, actor="slack:T1/US")
    async with core.store.session() as s:
        [notice] = (await s.scalars(select(ClientNotice))).all()
        row = await s.get(LeadRow, lead_id)
        assert row is not None and row.proposal_nonce is not None
        old = leads.confirm_token(lead_id, row.proposal_nonce)
    assert (notice.kind, notice.recipient, notice.payload["practitioner"]) == ("proposed", "ann@example.org", "Dr Kim")
    assert first.end - first.start == timedelta(minutes=60)
    # A second proposal: the first link no longer works, the new one does.
    await leads.propose(core, practice_id, lead_id, kim, TUE_3PM, actor="slack:T1/US")
    async with core.store.session() as s:
        row = await s.get(LeadRow, lead_id)
        assert row is not None and row.proposal_nonce is not None
        new = leads.confirm_token(lead_id, row.proposal_nonce)
    assert await leads.proposal_by_token(core, old) is None
    assert await leads.proposal_by_token(core, new[:-1] + ("0" if new[-1] != "0" else "1")) is None  # forged
    assert await leads.proposal_by_token(core, "x" * 400) is None
    later = NOW + timedelta(days=3, minutes=1)
    core.clock = lambda: later
    assert await leads.proposal_by_token(core, new) is None  # three days old
    core.clock = lambda: NOW
    booked = await leads.confirm_by_token(core, new)
    assert booked is not None and booked.start == TUE_3PM
    assert await leads.confirm_by_token(core, new) is None  # once
    async with core.store.session() as s:
        [appt] = (await s.scalars(select(Appointment))).all()
    assert (appt.start, appt.practitioner_id, appt.client_name, appt.service) == (TUE_3PM, kim, "Ann Lake", "Reiki")
    assert await _actions(core) == [("lead.new", "lead:leadform", "new"), ("lead.proposed", "slack:T1/US", "proposed"),
                                    ("lead.proposed", "slack:T1/US", "proposed"),
                                    ("lead.booked", "client:link", "booked")]


async def test_a_slot_taken_before_the_client_confirms_books_nothing(core: Core) -> None:
    practice_id, kim = await _clinic(core)
    lead_id = await _lead(core, practice_id)
    await leads.propose(core, practice_id, lead_id, kim, TUE_2PM, actor="slack:T1/US")
    async with core.store.session() as s:
        row = await s.get(LeadRow, lead_id)
        assert row is not None and row.proposal_nonce
        token = leads.confirm_token(lead_id, row.proposal_nonce)
        s.add(Appointment(practice_id=practice_id, practitioner_id=kim, start=TUE_2PM - timedelta(minutes=30),
                          end=TUE_2PM + timedelta(minutes=30), tzid=TZ, service="Massage"))
    with pytest.raises(Conflict):
        await leads.confirm_by_token(core, token)
    async with core.store.session() as s:
        assert len((await s.scalars(select(Appointment))).all()) == 1
        row = await s.get(LeadRow, lead_id)
        assert row is not None and row.status == "proposed"


async def test_the_card_buttons_book_and_lose_and_only_staff_press_them(core: Core) -> None:
    practice_id, kim = await _clinic(core)
    lead_id = await _lead(core, practice_id)
    card = await handle(core, _staff(practice_id), decode("lead_propose", encode(ProposeLead(lead_id, kim, TUE_2PM))[1]))
    assert isinstance(card, LeadCardView) and "Proposed Tue 3 Jun 14:00 with Dr Kim" in card.outcome
    assert "no mail server set up yet" in card.outcome  # this server has none: the email waits, queued

    # Someone without a role cannot press; a slot in the past is refused; nothing changes.
    refused = await handle(core, _staff(practice_id, frozenset()), BookLead(lead_id, kim, TUE_3PM))
    assert isinstance(refused, Error) and refused.kind == "forbidden"
    past = await handle(core, _staff(practice_id), BookLead(lead_id, kim, NOW - timedelta(hours=1)))
    assert isinstance(past, Error) and "passed" in past.message

    booked = await handle(core, _staff(practice_id), BookLead(lead_id, kim, TUE_3PM))
    assert isinstance(booked, LeadCardView) and booked.outcome.startswith("Booked A-")
    assert booked.slots == () and booked.actions == ()  # a booked lead has no buttons left
    again = await handle(core, _staff(practice_id), MarkLeadLost(lead_id))
    assert isinstance(again, Error) and "booked" in again.message

    other = await _lead(core, practice_id, 3, email="bo@example.org")
    lost = await handle(core, _staff(practice_id), MarkLeadLost(other))
    assert isinstance(lost, LeadCardView) and lost.outcome == "Marked lost."
    assert [a for a, _, _ in await _actions(core)] == ["lead.new", "lead.proposed", "lead.booked", "lead.new",
                                                      "lead.lost"]
    # Both front ends draw the same open card: its slots with Propose and Book, and Mark lost.
    fresh = await _lead(core, practice_id, 4, email="cy@example.org")
    view = await lead_view(core, practice_id, fresh)
    assert view.headline == "New lead: Reiki, prefers Tue afternoon" and len(view.slots) == 3
    text, blocks = message(view)
    ids = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert text.startswith("New lead") and ids.count("clinic.lead_propose") == 3 and ids[-1] == "clinic.lead_lost"
    body, actions = render_parts(view)
    verbs = [a["verb"] for c in body if c.get("type") == "Container" for i in c["items"] if i["type"] == "ActionSet"
             for a in i["actions"]]
    assert verbs.count("lead_book") == 3 and [a["verb"] for a in actions] == ["lead_lost"]


async def test_forms_from_one_person_at_the_same_moment_make_one_lead(core: Core) -> None:
    practice_id, _ = await _clinic(core)
    made = await asyncio.gather(*(leads.intake_lead(core, None, LeadInput(
        submission_id=f"burst-{n}", email="ann@example.org", preferred_times=("after 5pm",)),
        source="leadform", practice_id=practice_id) for n in range(6)))
    assert sorted(m.outcome for m in made) == ["merged"] * 5 + ["new"] and len({m.id for m in made}) == 1
    async with core.store.session() as s:
        [row] = (await s.scalars(select(LeadRow))).all()
    assert row.submissions == 6


async def test_the_leads_command_lists_open_leads_and_shows_one_with_its_slots(core: Core) -> None:
    practice_id, _ = await _clinic(core)
    assert parse("leads") == ShowLeads() and parse("lead L-3") == ShowLeads(3)
    with pytest.raises(ParseError, match="lead ids look like L-12"):
        parse("leads A-3")
    names = [spec.name for spec in GRAMMAR]
    assert names.index("leads") > 11  # new commands go last: the Teams manifest lists the first 12
    empty = await handle(core, _staff(practice_id), ShowLeads())
    assert isinstance(empty, LeadList) and empty.cards == () and "connect leadform" in empty.empty_text
    first, second = await _lead(core, practice_id), await _lead(core, practice_id, 2, email="bo@example.org")
    await leads.mark_lost(core, practice_id, first, actor="slack:T1/US")
    listed = await handle(core, _staff(practice_id), ShowLeads())
    assert isinstance(listed, LeadList) and [c.ref for c in listed.cards] == [f"L-{second}"]
    one = await handle(core, _staff(practice_id), ShowLeads(second))
    assert isinstance(one, LeadCardView) and len(one.slots) == 3
    nobody = await handle(core, _staff(practice_id, frozenset()), ShowLeads())
    assert isinstance(nobody, Error) and nobody.kind == "forbidden"
    missing = await handle(core, _staff(practice_id), ShowLeads(999))
    assert isinstance(missing, Error) and missing.kind == "not_found"


class _DownThenUp:
    """A chat platform that refuses the first card, then takes them."""

    def __init__(self) -> None:
        self.down = True
        self.sent: list[Notification] = []

    async def notify(self, notification: Notification) -> None:
        if self.down:
            raise DeliveryError("Slack unreachable: ConnectError")
        self.sent.append(notification)


async def test_a_card_that_reached_nobody_is_sent_again_once(core: Core) -> None:
    practice_id, _ = await _clinic(core)
    chat = _DownThenUp()
    core.services.notifier = chat
    form = await add_signed_form(core, "leadform", practice_id=practice_id, actor="cli:test")
    made = await take_lead(core, form.connection_id, "leadform", LeadInput(submission_id="s-9", email="a@example.org"))
    await card_sender(core).drain()
    async with core.store.session() as s:
        row = await s.get(LeadRow, made.lead_id)
        assert row is not None and row.card_status == "failed"
    await resend_cards(core)  # too soon: the intake's own try was just now
    assert chat.sent == []
    chat.down = False
    later = NOW + timedelta(minutes=5)
    core.clock = lambda: later
    await resend_cards(core)
    await resend_cards(core)
    assert [n.data["lead_id"] for n in chat.sent] == [made.lead_id]



class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
async def mail_core(backend: str, tmp_path: Path) -> AsyncIterator[tuple[Core, _Inbox]]:
    """A core whose client emails go to a real SMTP server (aiosmtpd) on loopback."""
    inbox = _Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings = make_settings(backend, tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
                             smtp_from="Harbour Clinic <desk@harbour.example>")
    c = open_core(settings)
    await upgrade(c.store)
    try:
        yield c, inbox
    finally:
        await c.close()
        await drop_schema(settings)
        controller.stop()


async def test_a_proposal_waits_out_the_client_quiet_hours_and_only_the_live_one_goes(
    mail_core: tuple[Core, _Inbox],
) -> None:
    core, inbox = mail_core
    practice_id, kim = await _clinic(core)  # 08:00 in New York
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id)
        assert practice is not None
        practice.settings = {**(practice.settings or {}), "client_quiet": "21:00-09:00"}
    lead_id = await _lead(core, practice_id)
    await leads.propose(core, practice_id, lead_id, kim, TUE_2PM, actor="slack:T1/US")
    await leads.propose(core, practice_id, lead_id, kim, TUE_3PM, actor="slack:T1/US")  # replaces the first
    async with core.store.session() as s:
        first, second = (await s.scalars(select(ClientNotice).order_by(ClientNotice.id))).all()
    nine = datetime(2031, 6, 2, 9, 0, tzinfo=ZONE)
    assert first.next_attempt_at == nine and second.next_attempt_at == nine  # like every client message
    assert (await clients.send_due(core)).sent == 0 and inbox.messages == []  # still quiet
    core.clock = lambda: nine.astimezone(UTC)
    stats = await clients.send_due(core)
    assert (stats.sent, stats.skipped) == (1, 1)
    [sent] = inbox.messages
    assert "15:00" in str(sent["Subject"])  # the live proposal (3 pm), never the one it replaced
    async with core.store.session() as s:
        gone = await s.get(ClientNotice, first.id)
        assert gone is not None and gone.status == "skipped" and "replaced" in (gone.last_error or "")
