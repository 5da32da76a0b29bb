"""A booking from a read-only ICS feed, through the running server (issue 22, item 3): a reschedule
typed in Slack is refused with the reason and changes nothing; when the feed later moves the booking,
the server's own sync follows it and the appointment's card says the feed moved it, and from when."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.app import build_app
from bot.commands.present import moment_label
from bot.slack.server import SLACK
from sync.runtime.core import Core
from sync.services.connections import add_connection
from sync.services.practices import add_practitioner, create_practice
from sync.store.model import Appointment, AuditEntry, OutboxOp
from tests.adapters.ics.fakes.ics_feed import FeedServer
from tests.bot.slack.conftest import SlackClient, slack_settings
from tests.e2e.conftest import NOW, TZ, at
from tests.fakes.slack import FakeSlack


def _feed(start: datetime) -> str:
    utc = start.astimezone(UTC)
    end = utc + timedelta(minutes=30)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example Booking//EN\r\nBEGIN:VEVENT\r\nUID:booking-77\r\n"
        f"DTSTAMP:20260301T000000Z\r\nDTSTART:{utc:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
        "SUMMARY:Check-up\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server


@pytest.fixture
async def connected(e2e_core: Core, feeds: FeedServer) -> tuple[Core, int]:
    """Lee Clinic with Dr Lee's bookings published as a feed, connected as `connection add ics` does."""
    core = e2e_core
    core.clock = lambda: NOW
    async with core.store.session() as s:
        practice = await create_practice(s, "Lee Clinic", TZ, actor="cli:e2e")
        await add_practitioner(s, practice, "Dr Lee", email=None, tz=None, actor="cli:e2e")
    feeds.publish("/lee.ics", _feed(at(10)))
    added = await add_connection(core, "ics", feeds.url("/lee.ics"), practitioner="dr-lee", actor="cli:e2e")
    return core, added.connection_id


@pytest.fixture
async def slack(connected: tuple[Core, int], fake_slack: FakeSlack) -> AsyncIterator[SlackClient]:
    core = connected[0]
    app = build_app(slack_settings(core.settings, fake_slack), core=core)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            url = str(server.make_url("")).rstrip("/")
            yield SlackClient(url, session, fake_slack, app[SLACK], core, None)  # type: ignore[arg-type]
    finally:
        await server.close()


async def _sync(core: Core, connection_id: int) -> None:
    queue = core.services.sync_queue
    queue.request(connection_id, reason="e2e")
    await queue.drain()


async def _answer(slack: SlackClient, text: str, rid: str) -> str:
    assert (await slack.command(text, rid=rid)).status == 200
    await slack.fake.wait_for(lambda: slack.fake.responses[rid])
    return json.dumps(slack.fake.responses[rid])


async def _booking(core: Core) -> Appointment:
    async with core.store.session() as s:
        appt = await s.scalar(select(Appointment).where(Appointment.source_uid == "booking-77"))
    assert appt is not None
    return appt


async def test_a_feed_booking_is_refused_in_chat_and_its_feed_moves_are_told(
    slack: SlackClient, connected: tuple[Core, int], feeds: FeedServer
) -> None:
    core, connection_id = connected
    await _sync(core, connection_id)
    booked = await _booking(core)

    refused = await _answer(slack, f"reschedule {booked.ref} {at(15):%Y-%m-%d} 3pm", "move")
    assert "read-only calendar feed" in refused and "booking system that publishes the feed" in refused
    assert (await _booking(core)).start == at(10)
    async with core.store.session() as s:
        assert (await s.scalars(select(OutboxOp))).all() == []
        assert "appointment.rescheduled" not in (await s.scalars(select(AuditEntry.action))).all()

    detail = await _answer(slack, f"appointment {booked.ref}", "before")
    assert "Moved by" not in detail

    feeds.publish("/lee.ics", _feed(at(12)))  # the booking system moves it
    await _sync(core, connection_id)
    assert (await _booking(core)).start == at(12)
    detail = await _answer(slack, f"appointment {booked.ref}", "after")
    told = f"Moved by its read-only feed lee.ics on {moment_label(NOW, TZ)} (was {moment_label(at(10), TZ)})."
    assert told in detail, detail
