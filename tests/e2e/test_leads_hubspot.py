"""A HubSpot form submission becomes a booked visit, logged back to HubSpot as a meeting on the contact.

HubSpot is connected with a private-app token and a form named (`forms` option, through the same
service the CLI's `connection add` uses); a visitor submits the form in (fake) HubSpot; the leader's
form poll turns it into a lead and the staff's Slack card; staff press Propose in Slack; the client's
email (real SMTP, aiosmtpd) carries the confirm link; the client confirms over HTTP on the bot's page;
the visit exists and shows in `/clinic today`; the leader's CRM log writes the meeting to HubSpot,
associated with the contact it made for the client's email.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adapters.hubspot.meetings import KEY_PROPERTY, ms
from sync.boot import open_core
from sync.notify import clients, crm
from sync.notify.lead_forms import poll_forms
from sync.runtime.core import Core
from sync.services.connections import add_connection
from sync.store.migrate import upgrade
from sync.store.model import Appointment, Lead
from tests.adapters.caldav.fakes.radicale import RadicaleServer
from tests.adapters.hubspot.fakes.hubspot import HubSpotFake
from tests.bot.slack.conftest import SlackClient
from tests.conftest import drop_schema
from tests.e2e.conftest import DAY, Practice, at, connect_practice, e2e_settings, until
from tests.e2e.test_leads_slack import Inbox, _buttons, smtp  # noqa: F401 - fixtures
from tests.e2e.test_settings_slack import say


@pytest.fixture
async def hubspot() -> AsyncIterator[HubSpotFake]:
    server = await HubSpotFake().start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def mail_core(backend: str, tmp_path: Path, smtp: tuple[Inbox, int],  # noqa: F811
                    hubspot: HubSpotFake) -> AsyncIterator[Core]:
    settings = e2e_settings(backend, tmp_path, smtp_host="127.0.0.1", smtp_port=smtp[1], smtp_security="none",
                            smtp_from="Lee Clinic <desk@lee-clinic.example>", hubspot_api_url=hubspot.url)
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


async def test_a_hubspot_form_lead_is_proposed_in_slack_confirmed_booked_and_logged_to_hubspot(
    slack: SlackClient, clinic: Practice, smtp: tuple[Inbox, int], hubspot: HubSpotFake  # noqa: F811
) -> None:
    inbox, _ = smtp
    core = clinic.core
    # The staff use clinicbot in Slack (their channel is where lead cards go): no open leads yet.
    assert "no open leads" in (await say(slack, "leads")).lower()
    hubspot.add_owner("Front", "Desk", "desk@lee-clinic.example")
    form = hubspot.add_form()
    added = await add_connection(core, "hubspot", hubspot.url, username="lee-clinic", password=hubspot.token,
                                 options={"forms": form, "form_service_field": "treatment"}, actor="cli:admin")

    # Nothing submitted yet: the poll asks HubSpot once, and nothing happens.
    assert (await poll_forms(core)).taken == 0
    assert hubspot.count("GET", "/form-integrations/") == 1

    conversion = hubspot.submit(form, {"firstname": "Jane", "lastname": "Roe", "email": "jane@example.org",
                                       "treatment": "Physio", "preferred_practitioner": "Dr Lee",
                                       "preferred_times": "Tuesday afternoons"})
    stats = await poll_forms(core)
    assert (stats.taken, stats.refused, stats.failed) == (1, 0, 0)
    assert (await poll_forms(core)).taken == 0  # taken once

    def card() -> dict[str, Any] | None:
        return next((m for m in slack.fake.messages.values() if "New lead" in str(m.get("text"))), None)

    await slack.fake.wait_for(lambda: card() is not None)
    posted = card()
    assert posted is not None
    assert posted["text"].startswith("New lead: Physio, prefers Tue afternoon, Dr Lee"), posted["text"]
    shown = json.dumps(posted["blocks"], ensure_ascii=False)
    assert f"{DAY:%a} {DAY.day} {DAY:%b} 12:00 · Dr Lee" in shown, shown
    proposals = _buttons(posted["blocks"], "clinic.lead_propose")
    assert len(proposals) == 3

    await slack.interact(slack.action_payload("clinic.lead_propose", proposals[0], rid="propose"))
    await slack.fake.wait_for(lambda: slack.fake.responses["propose"])
    assert "Proposed" in json.dumps(slack.fake.responses["propose"][-1])

    sent = await clients.send_due(core)
    assert sent.sent == 1
    [message] = inbox.messages
    assert message["To"] == "Jane Roe <jane@example.org>"
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    link = re.search(r"https?://\S+/leads/confirm\?t=\S+", text)
    assert link, text
    confirm = slack.url + link.group(0)[link.group(0).index("/leads/confirm"):]
    async with slack.session.get(confirm) as resp:
        assert resp.status == 200 and "Dr Lee" in await resp.text()
    async with slack.session.post(confirm) as resp:
        assert resp.status == 200 and "is booked" in await resp.text()

    async with core.store.session() as s:
        [visit] = (await s.scalars(select(Appointment))).all()
        lead = await s.scalar(select(Lead))
        assert lead is not None
        assert (lead.source, lead.connection_id, lead.status, lead.appointment_id) == \
            ("hubspot", added.connection_id, "booked", visit.id)
    assert (visit.start, visit.service, visit.practitioner_id, visit.client_email) == (
        at(12), "Physio", clinic.practitioner_id, "jane@example.org")
    agenda = await say(slack, "today")
    assert "Jane Roe" in agenda and "12:00" in agenda, agenda

    # The leader's CRM log: HubSpot holds the meeting, on the contact made for the client's email.
    # The server's own sync may hold the connection's lock at that moment (a busy connection waits for
    # the next run, counted as waiting, not failed): run the job until it has written, as the leader would.
    written = 0

    async def logged() -> bool:
        nonlocal written
        stats = await crm.log_due(core)
        assert stats.failed == 0
        written += stats.logged
        return written >= 1

    await until(logged)
    assert written == 1
    [(mid, meeting)] = list(hubspot.meetings.items())
    [(cid, contact)] = list(hubspot.contacts.items())
    assert contact["email"] == "jane@example.org"
    assert hubspot.links[mid] == [cid]
    assert meeting["hs_meeting_start_time"] == ms(at(12))
    assert meeting[KEY_PROPERTY].startswith("clinicbot-")
    assert [e.action for e in await clinic.audit("crm.logged")] == ["crm.logged"]
    assert conversion  # the submission's id was the replay key
