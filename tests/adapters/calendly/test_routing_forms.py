"""Calendly routing form submissions become leads: an organization subscription for the owner's calendar
(when the connection asks for routing forms and the token may), signed deliveries read into a lead,
replays and forgeries refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from adapters.calendly.bookings import CalendlyBookings
from adapters.calendly.routing_forms import lead_from_submission
from adapters.calendly.webhooks import CalendlySubscriptions, CalendlyWebhooks
from sync.contract.booking import BookingCalendar
from sync.contract.integration import Channel, WebhookRequest
from sync.contract.leads import LeadInput, LeadOutcome
from tests.adapters.calendly.conftest import source_for
from tests.adapters.calendly.fakes.calendly import CalendlyFake

ANSWERS = [("First and last name", "Ann Lake"), ("Email address", "ann@example.org"),
           ("Which treatment are you interested in?", "Reiki"), ("Preferred practitioner", "Dr Lee"),
           ("When suits you best?", "Tuesday afternoons"), ("Anything else?", "Mild back pain")]


@dataclass
class Desk:
    """The core's side of one connection: its channels (signing keys), replay memory and the lead intake."""

    channels_: list[Channel]
    seen: set[str] = field(default_factory=set)
    leads: list[LeadInput] = field(default_factory=list)
    synced: list[str] = field(default_factory=list)
    connection_id: int = 4

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def channel(self, channel_id: str) -> Channel | None:
        return None

    async def channels(self) -> list[Channel]:
        return self.channels_

    async def sync(self, channel: Channel, reason: str) -> None:
        self.synced.append(reason)

    async def renew_soon(self, channel: Channel) -> None: ...

    async def forget(self, channel: Channel) -> None: ...

    async def first_delivery(self, key: str) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    async def intake_lead(self, lead: LeadInput) -> LeadOutcome:
        self.leads.append(lead)
        return LeadOutcome(len(self.leads), "new")


def _request(body: bytes, headers: dict[str, str]) -> WebhookRequest:
    return WebhookRequest("POST", {k.lower(): v for k, v in headers.items()}, {}, body)


async def test_an_owner_with_routing_forms_on_gets_submissions_as_leads(fake: CalendlyFake) -> None:
    owner = fake.add_user("Dr Lee")
    fake.add_user("Dr Kim")
    fake.deliver = False
    client = source_for(fake).client
    try:
        calendar = BookingCalendar(CalendlyBookings(client, routing_forms=True), owner)
        opened = await CalendlySubscriptions().open(calendar, "https://bot.example/webhooks/calendly/4", None)
        [sub] = fake.subscriptions.values()
        assert (sub["scope"], sorted(sub["events"])) == ("organization", [
            "invitee.canceled", "invitee.created", "routing_form_submission.created"])
        uri = await fake.submit_routing_form(ANSWERS)
        [(_, body, headers)] = fake.held
        desk = Desk([opened.channel])
        hooks = CalendlyWebhooks()
        assert (await hooks.handle(_request(body, {}), desk)).status == 401  # unsigned
        assert (await hooks.handle(_request(body.replace(b"Reiki", b"Botox"), headers), desk)).status == 401
        assert (await hooks.handle(_request(body, headers), desk)).status == 200
        assert (await hooks.handle(_request(body, headers), desk)).status == 401  # replayed
        [lead] = desk.leads
        assert lead == LeadInput(submission_id=uri.rsplit("/", 1)[-1], name="Ann Lake", email="ann@example.org",
                                 service="Reiki", practitioner="Dr Lee", preferred_times=("Tuesday afternoons",),
                                 message="Anything else?: Mild back pain")
        assert desk.synced == []  # a lead asks for no booking sync
    finally:
        await client.aclose()


async def test_a_member_token_or_routing_forms_off_keeps_the_user_subscription(fake: CalendlyFake) -> None:
    owner = fake.add_user("Dr Lee")
    fake.owner_role = "user"
    client = source_for(fake).client
    try:
        calendar = BookingCalendar(CalendlyBookings(client, routing_forms=True), owner)
        await CalendlySubscriptions().open(calendar, "https://bot.example/webhooks/calendly/4", None)
        off = BookingCalendar(CalendlyBookings(client), owner)
        await CalendlySubscriptions().open(off, "https://bot.example/webhooks/calendly/5", None)
        assert [(s["scope"], s["events"]) for s in fake.subscriptions.values()] == [
            ("user", ["invitee.created", "invitee.canceled"])] * 2
    finally:
        await client.aclose()


def test_answers_go_to_the_lead_fields_their_questions_name() -> None:
    lead = lead_from_submission({"uri": "https://api.calendly.com/routing_form_submissions/R1",
                                 "questions_and_answers": [
                                     {"question": "Your name", "answer": "Bo Ek"},
                                     {"question": "Mobile phone", "answer": "+46 70 123 45 67"},
                                     {"question": "Which clinic?", "answer": "Northside"},
                                     {"question": "Preferred days", "answer": ["Monday", "Friday"]},
                                     {"question": "Practitioner name", "answer": "Dr Kim"},
                                 ]})
    assert (lead.submission_id, lead.name, lead.phone, lead.location, lead.preferred_times, lead.practitioner) == (
        "R1", "Bo Ek", "+46 70 123 45 67", "Northside", ("Monday, Friday",), "Dr Kim")
    assert json.dumps(lead.message) == '""'
