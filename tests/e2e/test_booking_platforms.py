"""Booking platforms end to end through the running server, started where a clinic starts.

Square: an admin types `connect square` in Slack and signs in (the fake's consent gives the
browser the code, which it takes back to the server's callback), maps the team member with `staff
map`; a booking made on Square arrives as a signed webhook from the fake, and `/clinic today`
(a signed slash command) shows it; staff reschedule it in the Slack modal (a signed
view_submission); Square holds the new time at version + 1, the practitioner's mirror on a real
Radicale moved, and the audit names the Slack user.

Calendly (connected as `clinicbot connection add calendly` does): a client's reschedule comes as
two deliveries and makes one move: one appointment, audited as a reschedule, with one set of
reminder DMs for the practitioner at the new time (not a cancelled visit plus a new one).

No row is inserted by hand: the practice, practitioner and Radicale mirror are set up as the README's
CLI steps do, the rest through chat, the OAuth callback and webhooks.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.app import build_app
from bot.slack.server import SLACK
from sync.boot import open_core
from sync.notify.reminders.planner import OPEN_STATUSES
from sync.services.connections import add_connection
from sync.store import audit
from sync.store.migrate import upgrade
from sync.store.model import Appointment, AuditEntry, Connection, ReminderLedger
from tests.adapters.caldav.fakes.radicale import RadicaleServer
from tests.adapters.calendly.fakes.calendly import CalendlyFake
from tests.adapters.square.fakes.square import SquareFake
from tests.bot.slack.conftest import SlackClient, signed_headers, slack_settings, submission_payload
from tests.conftest import drop_schema
from tests.e2e.conftest import DAY, Practice, at, connect_practice, e2e_settings, until
from tests.fakes.slack import FakeSlack
from tests.servers import free_port


@dataclass
class Clinic:
    practice: Practice
    slack: SlackClient
    base_url: str

    async def say(self, text: str, rid: str, user: str = "US") -> str:
        """A signed `/clinic` command; its answer through the response_url, as JSON text."""
        assert (await self.slack.command(text, user=user, rid=rid)).status == 200
        await self.slack.fake.wait_for(lambda: self.slack.fake.responses[rid])
        return json.dumps(self.slack.fake.responses[rid][-1])

    async def appointments(self) -> list[Appointment]:
        async with self.practice.core.store.session() as s:
            return list((await s.scalars(select(Appointment).order_by(Appointment.id))).all())

    async def booking_connection(self, provider: str) -> int:
        async with self.practice.core.store.session() as s:
            conn = await s.scalar(select(Connection).where(Connection.provider == provider))
        assert conn is not None
        return conn.id


@pytest.fixture
async def square() -> AsyncIterator[SquareFake]:
    fake = await SquareFake().start()
    fake.add_staff("TM-A", "Alex")
    fake.add_customer("C1", "Jane", "Roe", "jane@example.org")
    fake.add_service("SV1", "Physio")
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def calendly() -> AsyncIterator[CalendlyFake]:
    fake = await CalendlyFake().start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RadicaleServer]:
    with RadicaleServer(tmp_path_factory.mktemp("radicale-booking"), auth="none") as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def clinic(backend: str, tmp_path: Path, fake_slack: FakeSlack, radicale: RadicaleServer,
                 square: SquareFake, calendly: CalendlyFake) -> AsyncIterator[Clinic]:
    """The server on a port known before start (the platforms deliver to it), Slack on the fake."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = e2e_settings(backend, tmp_path, public_url=base_url, square_api_url=square.url,
                            square_oauth_url=square.url, square_client_id=square.client_id,
                            square_client_secret=square.client_secret, calendly_api_url=calendly.url)
    core = open_core(settings)
    await upgrade(core.store)
    practice = await connect_practice(core, radicale)
    app = build_app(slack_settings(settings, fake_slack), core=core)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            slack = SlackClient(base_url, session, fake_slack, app[SLACK], core, practice)  # type: ignore[arg-type]
            yield Clinic(practice, slack, base_url)
    finally:
        await square.drain()
        await calendly.drain()
        await server.close()
        await core.close()
        await drop_schema(settings)


async def _answer(clinic: Clinic, text: str, rid: str) -> dict[str, Any]:
    """A signed slash command's answer: in the ack itself (the agenda, when it is at hand) or later
    through the response_url."""
    body = clinic.slack.command_body(text, rid=rid)
    async with clinic.slack.session.post(clinic.base_url + "/slack/events", data=body,
                                         headers=signed_headers(body)) as response:
        assert response.status == 200
        inline = await response.text()
    if inline.startswith("{"):
        return dict(json.loads(inline))
    await clinic.slack.fake.wait_for(lambda: clinic.slack.fake.responses[rid])
    return dict(clinic.slack.fake.responses[rid][-1])


def _buttons(blocks: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    found = []
    for block in blocks:
        for element in block.get("elements", []) if block["type"] == "actions" else [block.get("accessory") or {}]:
            if element.get("type") == "button" and element.get("action_id") == action:
                found.append(element)
    return found


async def test_square_booking_by_webhook_to_today_and_a_slack_reschedule(
    clinic: Clinic, square: SquareFake
) -> None:
    core = clinic.practice.core
    # The admin (first to use /clinic in this workspace) connects Square and signs in.
    answer = await clinic.say("connect square", "connect")
    link = re.search(re.escape(f"{square.url}/oauth2/authorize?") + r'[^"\s]+', answer)
    assert link is not None, answer
    query = parse_qs(urlsplit(link.group(0)).query)
    assert query["redirect_uri"] == [f"{clinic.base_url}/oauth/square/callback"]
    # Square's consent page sends the browser back to the callback with a one-time code.
    async with aiohttp.ClientSession() as browser, browser.get(
            f"{clinic.base_url}/oauth/square/callback",
            params={"code": square.authorize(), "state": query["state"][0]}) as page:
        text = await page.text()
    assert page.status == 200 and "Square" in text and "connected" in text, text
    conn_id = await clinic.booking_connection("square")

    mapped = await clinic.say("staff map square TM-A @dr-lee", "map")
    assert "is now @dr-lee" in mapped, mapped
    # The first sync of the new connection subscribes to Square's webhooks at this server's address.
    clinic.practice.core.services.sync_queue.request(conn_id, reason="e2e")
    await clinic.practice.core.services.sync_queue.drain()
    (sub,) = square.subscriptions.values()
    assert sub.notification_url == f"{clinic.base_url}/webhooks/square/{conn_id}"

    # A client books on Square: the signed webhook reaches the server, which reads the booking.
    booking = await square.book("TM-A", at(10), 60, customer_id="C1", service="SV1")
    await square.drain()
    assert square.delivered == [200]

    async def imported() -> bool:
        return len(await clinic.appointments()) == 1

    await until(imported)
    await clinic.practice.outbox_settled()
    (appt,) = await clinic.appointments()
    assert appt.practitioner_id == clinic.practice.practitioner_id and appt.client_name == "Jane Roe"
    assert [c.event.start for c in await clinic.practice.events(clinic.practice.mirror_url)] == [at(10)]

    # /clinic today shows it, with its buttons.
    agenda = await _answer(clinic, "today", "agenda")
    shown = json.dumps(agenda["blocks"])
    assert appt.ref in shown and "Jane Roe" in shown and "10:00" in shown, shown
    (reschedule,) = [b for b in _buttons(agenda["blocks"], "clinic.reschedule")
                     if f'"a":{appt.id}' in b["value"].replace(" ", "")]

    # Staff reschedule it in the modal (a signed view_submission).
    click = clinic.slack.action_payload("clinic.reschedule", reschedule["value"], rid="click", ephemeral=True)
    assert (await clinic.slack.interact(click)).status == 200
    await clinic.slack.fake.wait_for(lambda: clinic.slack.fake.calls_to("views.open"))
    [opened] = clinic.slack.fake.calls_to("views.open")
    meta = opened.args["view"]["private_metadata"]
    status, done = await clinic.slack.interact_json(
        submission_payload(meta, DAY.isoformat(), "16:00", clinic.practice.practitioner_id))
    assert status == 200 and done == {"response_action": "clear"}, done
    await clinic.slack.settle()
    await clinic.practice.outbox_settled()

    # Square holds the new time at version + 1; the Radicale mirror moved; the audit names the Slack user.
    held = square.bookings[booking["id"]]
    assert held["version"] == 1
    assert held["start_at"] == _utc(at(16))
    assert [c.event.start for c in await clinic.practice.events(clinic.practice.mirror_url)] == [at(16)]
    async with core.store.session() as s:
        moved = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "appointment.rescheduled"))).all()
        assert [m.actor for m in moved] == ["slack:T1/US"]
        assert (await audit.verify(s))[1] is None
    # Square's own booking.updated for our write comes back: read, and nothing moves again.
    await square.drain()
    clinic.practice.core.services.sync_queue.request(conn_id, reason="e2e")
    await clinic.practice.core.services.sync_queue.drain()
    (after,) = await clinic.appointments()
    assert after.start == at(16) and after.version == appt.version + 1


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_calendly_reschedule_by_the_client_is_one_move_and_one_set_of_reminder_dms(
    clinic: Clinic, calendly: CalendlyFake
) -> None:
    core = clinic.practice.core
    # Calendly signs with the current time and clinicbot refuses one 3 minutes off: the server's
    # clock must be the real one here, not the frozen clinic morning.
    core.clock = lambda: datetime.now(UTC)
    user = calendly.add_user("Dr Lee")
    # As `clinicbot connection add calendly --password <token>` does.
    added = await add_connection(core, "calendly", "https://api.calendly.com", username="lee@clinic.example",
                                 password=calendly.token, actor="cli:e2e")
    granted = await clinic.say("role grant practitioner <@UP|pat> @dr-lee", "grant")
    assert "practitioner role" in granted, granted
    mapped = await clinic.say(f"staff map calendly {user} @dr-lee", "map")
    assert "is now @dr-lee" in mapped, mapped
    core.services.sync_queue.request(added.connection_id, reason="e2e")
    await core.services.sync_queue.drain()
    assert len(calendly.subscriptions) == 1

    event = await calendly.book(user, at(11), 30)
    await calendly.drain()

    async def count(n: int) -> bool:
        return len(await clinic.appointments()) == n

    assert calendly.delivered == [200], calendly.delivered
    await until(lambda: count(1))
    await clinic.practice.outbox_settled()
    dms_before = len(_dms(clinic))
    await calendly.reschedule_by_invitee(event["uri"].rsplit("/", 1)[-1], at(15))
    await calendly.drain()
    assert calendly.delivered[-2:] == [200, 200]

    async def moved() -> bool:
        (appt,) = await clinic.appointments()
        return appt.start == at(15)

    await until(moved)
    await clinic.practice.outbox_settled()
    await clinic.slack.settle()
    (appt,) = await clinic.appointments()
    assert appt.status == "confirmed"
    async with core.store.session() as s:
        actions = [a for (a,) in (await s.execute(select(AuditEntry.action).where(
            AuditEntry.appointment_id == appt.id).order_by(AuditEntry.seq))).all()]
    assert actions == ["appointment.created", "appointment.rescheduled"]
    # One visit, so one set of reminder DMs for the practitioner, at the new time: a cancel plus a new
    # booking would have left a second appointment with reminders of its own. (clinicbot sends no
    # "moved" DM of its own yet; the reminders are the DMs a reschedule changes.)
    async with core.store.session() as s:
        planned = (await s.scalars(select(ReminderLedger).where(
            ReminderLedger.appointment_id != 0, ReminderLedger.status.in_(OPEN_STATUSES)))).all()
    assert planned and {r.appointment_id for r in planned} == {appt.id}
    kinds = [r.kind for r in planned]
    assert len(kinds) == len(set(kinds))
    reminders = [r for r in planned if r.kind.startswith("reminder:")]
    assert reminders, kinds
    for r in reminders:
        assert r.fire_at == at(15) - timedelta(minutes=int(r.kind.split(":")[1])), (r.kind, r.fire_at)
    assert _dms(clinic)[dms_before:] == []  # and no chat message about it twice (or at all) meanwhile
    assert [c.event.start for c in await clinic.practice.events(clinic.practice.mirror_url)] == [at(15)]


def _dms(clinic: Clinic) -> list[str]:
    """Messages the bot posted to the practitioner (UP) about appointments."""
    return [json.dumps(c.args) for c in clinic.slack.fake.calls_to("chat.postMessage")
            if c.args.get("channel") not in (None, "C1")]
