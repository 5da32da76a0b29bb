"""A website lead becomes a booked visit from one Slack card.

The admin connects the form from Slack (`connect leadform`: its address and secret, once); the
website posts a signed lead over HTTP; the staff get the card with slots that fit "Tuesday
afternoons"; staff press Propose; the client's email (through a real SMTP server, aiosmtpd) carries
the confirm link; the client opens it and confirms on the bot's page; the visit exists, shows in
`/clinic today`, and its copy is written to Dr Lee's Radicale calendar.
"""

from __future__ import annotations

import email
import json
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from adapters.leadform import SIGNATURE_HEADER, sign
from sync.boot import open_core
from sync.notify import clients
from sync.runtime.core import Core
from sync.store.migrate import upgrade
from sync.store.model import Appointment, Lead
from tests.adapters.caldav.fakes.radicale import RadicaleServer
from tests.bot.slack.conftest import SlackClient
from tests.conftest import drop_schema
from tests.e2e.conftest import DAY, NOW, Practice, at, connect_practice, e2e_settings
from tests.e2e.test_settings_slack import say


@dataclass
class Inbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
async def mail_core(backend: str, tmp_path: Path, smtp: tuple[Inbox, int]) -> AsyncIterator[Core]:
    settings = e2e_settings(backend, tmp_path, smtp_host="127.0.0.1", smtp_port=smtp[1], smtp_security="none",
                            smtp_from="Lee Clinic <desk@lee-clinic.example>")
    core = open_core(settings)
    await upgrade(core.store)
    try:
        yield core
    finally:
        await core.close()
        await drop_schema(settings)


@pytest.fixture
async def clinic(mail_core: Core, radicale: RadicaleServer) -> Practice:
    return await connect_practice(mail_core, radicale)


def _buttons(blocks: list[dict[str, Any]], action_id: str) -> list[str]:
    return [e["value"] for b in blocks if b.get("type") == "actions" for e in b["elements"]
            if e.get("action_id") == action_id]


async def test_a_website_lead_is_proposed_in_slack_confirmed_by_link_and_booked(
    slack: SlackClient, clinic: Practice, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    answer = await say(slack, "connect leadform")
    connection_id = re.search(r"/webhooks/leadform/(\d+)", answer)
    secret = re.search(r"like a password, on the website's server only\): ([A-Za-z0-9_-]{40,})", answer)
    assert connection_id and secret, answer
    form_url = f"{slack.url}/webhooks/leadform/{connection_id.group(1)}"

    lead = {"submission_id": "site-77", "name": "Jane Roe", "email": "jane@example.org", "service": "Physio",
            "practitioner": "Dr Lee", "preferred_times": "Tuesday afternoons"}
    body = json.dumps(lead).encode()
    stale = sign(body, secret.group(1), int(NOW.timestamp()) - 400)
    async with slack.session.post(form_url, data=body, headers={SIGNATURE_HEADER: stale,
                                                                 "content-type": "application/json"}) as resp:
        assert resp.status == 401
    headers = {SIGNATURE_HEADER: sign(body, secret.group(1), int(NOW.timestamp())), "content-type": "application/json"}
    async with slack.session.post(form_url, data=body, headers=headers) as resp:
        assert resp.status == 202, await resp.text()

    # The staff's card: the headline, and slots on Tuesday afternoon (the clinic's DAY) that fit.
    def card() -> dict[str, Any] | None:
        return next((m for m in slack.fake.messages.values() if "New lead" in str(m.get("text"))), None)

    await slack.fake.wait_for(lambda: card() is not None)
    posted = card()
    assert posted is not None
    assert posted["text"].startswith("New lead: Physio, prefers Tue afternoon, Dr Lee"), posted["text"]
    shown = json.dumps(posted["blocks"], ensure_ascii=False)
    assert f"{DAY:%a} {DAY.day} {DAY:%b} 12:00 · Dr Lee" in shown, shown
    assert "jane@example.org" not in shown and "Roe" not in shown  # first name only on a shared card
    proposals = _buttons(posted["blocks"], "clinic.lead_propose")
    assert len(proposals) == 3 and len(_buttons(posted["blocks"], "clinic.lead_lost")) == 1

    # Staff propose the first slot (12:00); the card answers in place.
    await slack.interact(slack.action_payload("clinic.lead_propose", proposals[0], rid="propose"))
    await slack.fake.wait_for(lambda: slack.fake.responses["propose"])
    updated = json.dumps(slack.fake.responses["propose"][-1])
    assert "Proposed" in updated and "the client is emailed a link to confirm" in updated, updated

    # The leader's job sends the email; it carries the confirm link (and no invitation yet).
    sent = await clients.send_due(clinic.core)
    assert sent.sent == 1
    [message] = inbox.messages
    assert message["To"] == "Jane Roe <jane@example.org>"
    assert "Dr Lee" in message["Subject"]
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    assert not any(p.get_content_type() == "text/calendar" for p in message.walk())
    link = re.search(r"https?://\S+/leads/confirm\?t=\S+", text)
    assert link, text
    confirm = slack.url + link.group(0)[link.group(0).index("/leads/confirm"):]

    # The client opens the link (a page, nothing booked yet), then confirms.
    async with slack.session.get(confirm) as resp:
        page = await resp.text()
        assert resp.status == 200 and "Confirm" in page and "Dr Lee" in page and "12:00" in page
    async with clinic.core.store.session() as s:
        assert (await s.scalars(select(Appointment))).all() == []
    async with slack.session.post(confirm) as resp:
        assert resp.status == 200 and "is booked" in await resp.text()
    async with slack.session.post(confirm) as resp:  # the link works once
        assert resp.status == 404

    async with clinic.core.store.session() as s:
        [visit] = (await s.scalars(select(Appointment))).all()
        stored = await s.scalar(select(Lead))
        assert stored is not None and (stored.status, stored.appointment_id) == ("booked", visit.id)
    assert (visit.start, visit.service, visit.practitioner_id, visit.client_name, visit.client_email) == (
        at(12), "Physio", clinic.practitioner_id, "Jane Roe", "jane@example.org")
    agenda = await say(slack, "today")
    assert "Jane Roe" in agenda and "12:00" in agenda, agenda
    await clinic.outbox_settled()
    copies = [c.event for c in await clinic.events(clinic.mirror_url)]
    assert [(c.summary, c.start) for c in copies] == [("Physio (J.R.)", at(12))]
    trail = [e.actor for e in await clinic.audit("lead.booked")]
    assert trail == ["client:link"]
    assert [e.action for e in await clinic.audit("lead.proposed")] == ["lead.proposed"]
