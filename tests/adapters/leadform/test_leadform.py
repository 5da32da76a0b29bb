"""The lead form endpoint over real HTTP: signed forms become leads; unsigned, stale, forged and replayed
ones are refused with nothing stored; the same person within 30 days is merged; free-text preferred
times give slots that fit them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select, text

from adapters.leadform import SIGNATURE_HEADER, sign
from bot.app import build_app
from sync.contract.leads import LeadInput
from sync.notify.leads import card_sender, resend_cards
from sync.runtime.core import Core
from sync.runtime.notifier import Notification, RecordingNotifier
from sync.services import leads
from sync.services.form_connections import add_signed_form
from sync.services.practices import add_practitioner, create_practice
from sync.store.model import Appointment, AuditEntry, Lead, LeadSubmission

TZ = "Europe/London"
ZONE = ZoneInfo(TZ)
#: A Monday morning in the practice's zone: the week ahead is open.
NOW = datetime(2031, 3, 3, 9, 0, tzinfo=ZONE).astimezone(UTC)


@dataclass
class Form:
    core: Core
    url: str
    secret: str
    connection_id: int
    practice_id: int
    lee_id: int
    session: aiohttp.ClientSession
    notifier: RecordingNotifier

    async def post(self, doc: dict[str, object] | bytes, *, secret: str | None = None, at: float | None = None,
                   header: str | None = None, method: str = "POST",
                   content_type: str = "application/json") -> tuple[int, dict[str, object]]:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        signed = header if header is not None else sign(body, secret or self.secret, int(at or time.time()))
        headers = {"content-type": content_type}
        if signed:
            headers[SIGNATURE_HEADER] = signed
        async with self.session.request(method, self.url, data=body, headers=headers) as resp:
            return resp.status, json.loads(await resp.text() or "{}")

    async def count(self, model: type[Lead] | type[LeadSubmission]) -> int:
        async with self.core.store.session() as s:
            return int(await s.scalar(select(func.count()).select_from(model)) or 0)

    async def actions(self, prefix: str = "lead.") -> list[str]:
        async with self.core.store.session() as s:
            return [a for a in (await s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq))).all()
                    if a.startswith(prefix)]


@pytest.fixture
async def form(core: Core) -> AsyncIterator[Form]:
    # The server's clock is real time for signatures; the lead's world (slots) starts at NOW.
    async with core.store.session() as s:
        practice = await create_practice(s, "Northside Clinic", TZ, actor="cli:test")
        lee = await add_practitioner(s, practice, "Dr Lee", email=None, tz=TZ, actor="cli:test")
        practice_id, lee_id = practice.id, lee.id
    made = await add_signed_form(core, "leadform", practice_name="Northside Clinic", actor="cli:test")
    notifier = RecordingNotifier()
    core.services.notifier = notifier
    server = TestServer(build_app(core.settings, core=core), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            base = str(server.make_url("")).rstrip("/")
            path = made.url.split("/webhooks/", 1)[1]
            yield Form(core, f"{base}/webhooks/{path}", made.secret, made.connection_id, practice_id, lee_id,
                       session, notifier)
    finally:
        await server.close()


LEAD = {"submission_id": "web-1001", "name": "Jane Roe", "email": "Jane.Roe@example.org", "phone": "+44 7700 900123",
        "service": "Reiki", "practitioner": "Dr Lee", "preferred_times": ["Tuesday afternoons", "after 5pm"],
        "message": "First visit"}


async def test_a_signed_form_is_one_lead_and_every_refusal_stores_nothing(form: Form) -> None:
    now = time.time()
    assert (await form.post(LEAD, header=""))[0] == 401  # unsigned
    status, why = await form.post(LEAD, at=now - 301)  # signed just over five minutes ago
    assert status == 401 and "five minutes" in str(why["error"])
    assert (await form.post(LEAD, at=now + 360))[0] == 401  # from the future (margin: the request takes time)
    assert (await form.post(LEAD, secret="not-the-secret"))[0] == 401  # forged
    body = json.dumps(LEAD).encode()
    tampered = body.replace(b"Reiki", b"Botox")
    assert (await form.post(tampered, header=sign(body, form.secret, int(now))))[0] == 401
    assert (await form.post(b"{not json"))[0] == 400
    assert (await form.post({**LEAD, "email": "", "phone": ""}))[0] == 422
    status, why = await form.post({"name": "No id"})
    assert status == 400 and "submission_id" in str(why["error"])
    assert (await form.post(LEAD, method="PUT"))[0] == 405
    assert await form.count(Lead) == 0 and await form.count(LeadSubmission) == 0
    assert form.notifier.sent == []

    status, answer = await form.post(LEAD)
    assert status == 202 and answer["status"] == "new"
    # The same delivery again (a replay within the window), and the same submission re-signed later.
    header = sign(body, form.secret, int(time.time()))
    assert (await form.post(body, header=header))[0] == 409
    assert (await form.post(LEAD))[0] == 409
    assert await form.count(Lead) == 1 and await form.count(LeadSubmission) == 1
    assert await form.actions() == ["lead.new"]

    unknown = form.url.rsplit("/", 1)[0] + "/999"
    async with form.session.post(unknown, data=body, headers={SIGNATURE_HEADER: header}) as resp:
        assert resp.status == 404

    await card_sender(form.core).drain()
    [told] = form.notifier.sent
    assert (told.kind, told.audience, told.data["lead_id"]) == ("lead", "staff", int(str(answer["lead"])[2:]))
    async with form.core.store.session() as s:
        lead = await s.scalar(select(Lead))
        assert lead is not None
        assert (lead.name, lead.email, lead.service, lead.practitioner_id, lead.status, lead.card_status) == (
            "Jane Roe", "Jane.Roe@example.org", "Reiki", form.lee_id, "new", "sent")
        # Encrypted at rest: the raw row holds no name or address.
        raw = (await s.execute(text("SELECT name, email FROM lead"))).one()
        assert "Jane" not in str(raw) and "example.org" not in str(raw)
    card = await leads.lead_card(form.core, form.practice_id, lead.id, with_slots=False)
    assert card.headline == "New lead: Reiki, prefers Tue afternoon, after 17:00, Dr Lee"
    assert card.first_name == "Jane"


async def test_the_same_person_within_30_days_is_merged_into_their_open_lead(form: Form) -> None:
    assert (await form.post(LEAD))[1]["status"] == "new"
    # Another form from the same address (any case), with another wish: merged, not a second lead.
    again = {"submission_id": "web-1002", "email": "jane.roe@EXAMPLE.org", "preferred_times": "Saturday mornings",
             "location": "Harbourside"}
    status, answer = await form.post(again)
    assert status == 202 and answer == {"lead": "L-1", "status": "merged"}
    # The same phone number written another way.
    status, answer = await form.post({"submission_id": "web-1003", "phone": "+44 (7700) 900-123"})
    assert answer["status"] == "merged"
    assert await form.count(Lead) == 1 and await form.count(LeadSubmission) == 3
    card = await leads.lead_card(form.core, form.practice_id, 1, with_slots=False)
    assert card.submissions == 3 and card.preference == "Tue afternoon, after 17:00, Sat morning"
    assert card.unmatched == ("location: Harbourside",)  # no such location: kept for staff, narrows nothing

    # Lost leads are closed: the person writing again is a new lead; so is one 31 days later.
    await leads.mark_lost(form.core, form.practice_id, 1, actor="slack:T1/US")
    assert (await form.post({**LEAD, "submission_id": "web-1004"}))[1] == {"lead": "L-2", "status": "new"}
    later = datetime.now(UTC) + timedelta(days=31)
    form.core.clock = lambda: later
    assert (await form.post({**LEAD, "submission_id": "web-1005"}, at=later.timestamp()))[1] == {
        "lead": "L-3", "status": "new"}
    assert await form.actions() == ["lead.new", "lead.merged", "lead.merged", "lead.lost", "lead.new", "lead.new"]


async def test_free_text_preferences_give_slots_that_fit(form: Form) -> None:
    form.core.clock = lambda: NOW
    async with form.core.store.session() as s:  # Dr Lee is busy on Tuesday 12:00-13:00
        tue_noon = datetime(2031, 3, 4, 12, 0, tzinfo=ZONE)
        s.add(Appointment(practice_id=form.practice_id, practitioner_id=form.lee_id, start=tue_noon,
                          end=tue_noon + timedelta(hours=1), tzid=TZ, service="Massage"))
    lead = await leads.intake_lead(form.core, form.connection_id, LeadInput(
        submission_id="t-1", email="a@example.org", preferred_times=("Tuesday afternoons", "when my kids are at school")),
        source="leadform")
    slots = await leads.fitting_slots(form.core, form.practice_id, lead.id)
    local = [(s.start.astimezone(ZONE).strftime("%a %H:%M"), s.practitioner) for s in slots]
    assert local == [("Tue 13:00", "Dr Lee"), ("Tue 14:00", "Dr Lee"), ("Tue 15:00", "Dr Lee")]
    card = await leads.lead_card(form.core, form.practice_id, lead.id)
    assert card.preference == "Tue afternoon, “when my kids are at school”"

    late = await leads.intake_lead(form.core, form.connection_id, LeadInput(
        submission_id="t-2", email="b@example.org", preferred_times=("after 5pm",)), source="leadform")
    # Working hours end at 18:00: the only hour that fits is 17:00, each working day from tomorrow on.
    starts = [s.start.astimezone(ZONE) for s in await leads.fitting_slots(form.core, form.practice_id, late.id)]
    assert [f"{t:%a %H:%M}" for t in starts] == ["Mon 17:00", "Tue 17:00", "Wed 17:00"]


class _SlowChat:
    """A staff channel that takes its time: each post waits until the test lets it through."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self.started = asyncio.Event()
        self.go = asyncio.Event()

    async def notify(self, notification: Notification) -> None:
        self.started.set()
        await self.go.wait()
        self.sent.append(notification)


async def test_the_form_is_answered_before_the_staff_card_goes_out_and_the_card_goes_once(form: Form) -> None:
    chat = _SlowChat()
    form.core.services.notifier = chat
    status, answer = await form.post(LEAD)
    assert status == 202 and answer["status"] == "new"  # answered while the card still waits for chat
    await chat.started.wait()
    assert chat.sent == []
    async with form.core.store.session() as s:
        lead = await s.scalar(select(Lead))
        assert lead is not None and lead.card_status == "sending"  # claimed: the resend job leaves it alone
    # The resend job, run meanwhile (even after its quiet time), does not post it a second time.
    form.core.clock = lambda: datetime.now(UTC) + timedelta(minutes=3)
    await resend_cards(form.core)
    chat.go.set()
    await card_sender(form.core).drain()
    await resend_cards(form.core)
    assert [n.data["lead_id"] for n in chat.sent] == [lead.id]
    async with form.core.store.session() as s:
        lead = await s.scalar(select(Lead))
        assert lead is not None and lead.card_status == "sent"


async def test_a_card_whose_sender_died_mid_send_is_taken_up_after_its_lease(form: Form) -> None:
    chat = _SlowChat()
    form.core.services.notifier = chat
    assert (await form.post(LEAD))[0] == 202
    await chat.started.wait()
    sender = card_sender(form.core)
    sender.grace = 0  # no waiting for chat: the post is cut off
    await sender.stop()  # the process stops before chat answered: the card stays claimed ("sending")
    form.core.services.lead_cards = None
    chat.go.set()
    later = datetime.now(UTC)
    form.core.clock = lambda: later + timedelta(minutes=5)
    await resend_cards(form.core)  # within the lease: it may still be on its way
    assert chat.sent == []
    form.core.clock = lambda: later + timedelta(minutes=11)
    await resend_cards(form.core)
    assert len(chat.sent) == 1
