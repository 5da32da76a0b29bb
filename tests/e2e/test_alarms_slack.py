"""An expired Google sign-in, as a clinic on Slack lives it: the practitioner connects Google from chat,
Google later refuses the token, and the admin (Slack has no staff channel here, so by DM) gets one
reconnect card within one sync interval; after the practitioner signs in again, one recovery notice,
and the same connection syncs again. Nothing is set up by hand: connect, sync and alarms run in the
server as they would for a clinic.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from sync.notify.alarms import AlarmWorker
from sync.store.model import Alarm, AuditEntry, Connection
from tests.adapters.google.fakes.google import GoogleFake
from tests.e2e.conftest import NOW, at
from tests.e2e.test_oauth_connect import (  # noqa: F401 - fixtures
    Clinic,
    google,
    run_clinic,
    sign_in_link,
)
from tests.fakes.slack import FakeSlack

POLL = 2  # CLINICBOT_SYNC_POLL_SECONDS in this test


class Clock:
    """The clinic's clock, moved by the test only."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def clinic(backend: str, tmp_path: Path, fake_slack: FakeSlack, google: GoogleFake) -> AsyncIterator[Clinic]:  # noqa: F811
    async for running in run_clinic(
        backend, tmp_path, fake_slack, sync_poll_seconds=POLL,
        google_api_url=google.url, google_oauth_url=google.url, google_auth_url=f"{google.url}/o/oauth2/v2/auth",
        google_client_id=google.oauth.client_id, google_client_secret=google.oauth.client_secret,
    ):
        yield running


def _dms(fake: FakeSlack, word: str) -> list[str]:
    """Messages posted to the admin's DM (US) that contain `word`."""
    return [json.dumps(c.args) for c in fake.calls_to("chat.postMessage")
            if c.args.get("channel") == "DUS" and word in json.dumps(c.args)]


async def _sign_in(clinic: Clinic, google: GoogleFake, rid: str) -> None:  # noqa: F811
    answer = await clinic.say("connect google", "UP", rid)
    async with clinic.browser.get(sign_in_link(answer, f"{google.url}/o/oauth2/v2/auth?")) as page:
        assert page.status == 200, await page.text()


async def test_an_expired_google_sign_in_is_told_once_and_its_recovery_once(
    clinic: Clinic, google: GoogleFake  # noqa: F811
) -> None:
    clock = Clock(NOW)
    clinic.core.clock = clock
    fake = clinic.slack.fake
    granted = await clinic.say("role grant practitioner <@UP|pat> @dr-lee", "US", "grant")
    assert "now has the practitioner role" in granted, granted
    await _sign_in(clinic, google, "connect-1")
    conn = await clinic.connection()
    await clinic.sync(conn.id)
    async with clinic.core.store.session() as s:
        synced = await s.get(Connection, conn.id)
        assert synced is not None and synced.status == "active" and synced.last_success_at == NOW

    # Google refuses the token (revoked, or expired after months unused): every later call gets 401
    # and the refresh gets invalid_grant.
    for token in list(google.oauth.refresh_tokens):
        google.oauth.revoke(token)
    clock.now = NOW + timedelta(seconds=POLL + 1)  # one poll interval later the poll loop syncs it
    await fake.wait_for(lambda: _dms(fake, "Reconnect"), within=POLL + 10)
    [card] = _dms(fake, "Reconnect")
    assert "Google" in card and "connect google" in card, card
    async with clinic.core.store.session() as s:
        stored = await s.get(Connection, conn.id)
        assert stored is not None and stored.status == "auth_expired"

    # More polls and sweeps: still one card.
    worker = clinic.core.services.alarm_worker
    assert isinstance(worker, AlarmWorker)
    clock.now += timedelta(minutes=90)  # past the "failing for long" threshold too: no second alarm for it
    await worker.settled()
    await worker.settled()
    assert len(_dms(fake, "Reconnect")) == 1
    assert not _dms(fake, "keeps failing")

    # The practitioner signs in again: the same connection is active again, and one recovery notice.
    await _sign_in(clinic, google, "connect-2")
    async with clinic.core.store.session() as s:
        conns = (await s.scalars(select(Connection))).all()
        assert [c.id for c in conns] == [conn.id] and conns[0].status == "active"
    google.server_insert(conn.account, {
        "summary": "Physio: Jane Roe",
        "start": {"dateTime": at(10).isoformat()}, "end": {"dateTime": at(10, 30).isoformat()},
    })
    await worker.settled()
    await fake.wait_for(lambda: _dms(fake, "Resolved"))
    [resolved] = _dms(fake, "Resolved")
    assert "signed in again" in resolved
    await clinic.sync(conn.id)
    assert "Jane Roe" in await clinic.say("today", "US", "agenda")
    await worker.settled()
    assert len(_dms(fake, "Resolved")) == 1 and len(_dms(fake, "Reconnect")) == 1
    async with clinic.core.store.session() as s:
        [alarm] = (await s.scalars(select(Alarm))).all()
        assert (alarm.kind, alarm.notice_status, alarm.recovery_status) == ("auth_expired", "sent", "sent")
        assert alarm.open_key is None and alarm.cleared_at is not None
        entries = (await s.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all()
    actions = [e.action for e in entries]
    assert {"connection.auth_expired", "alarm.opened", "alarm.cleared"} <= set(actions)
    # Both sign-ins are audited as the Slack person who asked for the link.
    signed_in = [(e.action, e.actor) for e in entries if e.action in ("connection.add", "connection.reconnect")]
    assert signed_in == [("connection.add", "slack:T1/UP"), ("connection.reconnect", "slack:T1/UP")]
