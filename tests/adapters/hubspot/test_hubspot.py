"""HubSpot's adapter against the fake: its error body and limits, paging, the visit log's contact and
meeting (no duplicate after a lost answer), meetings made in HubSpot read as bookings, and the v3
webhook signature (forged, stale, replayed and other-account deliveries change nothing)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from adapters.hubspot.bookings import HubSpotMeetings
from adapters.hubspot.meetings import KEY_PROPERTY, HubSpotLog, ensure_key_property, ms
from adapters.hubspot.webhooks import HubSpotChannels, HubSpotWebhooks
from sync.contract import AuthExpired, NotFound, RateLimited, Unavailable
from sync.contract.booking import BookingCalendar
from sync.contract.crm import CrmVisit
from sync.contract.integration import Channel, WebhookRequest
from sync.contract.items import Window
from tests.adapters.hubspot.conftest import client_for
from tests.adapters.hubspot.fakes.hubspot import HubSpotFake

START = datetime(2031, 5, 7, 9, 0, tzinfo=UTC)


def visit(**changes: object) -> CrmVisit:
    base = CrmVisit(key="clinicbot-1-7", stage="booked", start=START, end=START + timedelta(minutes=45),
                    tzid="Europe/London", title="Reiki with Dr Ann Lee", practice="Northside Clinic",
                    practitioner="Dr Ann Lee", client_name="Jane Roe", client_email="Jane.Roe@client.example",
                    client_phone="+447700900123", location="12 High St")
    return CrmVisit(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, **changes})  # type: ignore[arg-type]


async def test_hubspot_errors_keep_their_category_and_correlation_id_and_429_waits_the_window(
        fake: HubSpotFake) -> None:
    client = client_for(fake, token="not-a-token")
    try:
        with pytest.raises(AuthExpired, match=r"INVALID_AUTHENTICATION.*correlationId"):
            await client.request("GET", "/crm/v3/owners")
    finally:
        await client.aclose()
    client = client_for(fake)
    try:
        with pytest.raises(NotFound, match="OBJECT_NOT_FOUND"):
            await client.request("PATCH", "/crm/v3/objects/meetings/999", json={"properties": {}})
        fake.throttle = 1
        with pytest.raises(RateLimited) as rolling:
            await client.request("GET", "/crm/v3/owners")
        assert rolling.value.retry_after == 10.0  # X-HubSpot-RateLimit-Interval-Milliseconds
        fake.throttle, fake.daily = 1, True
        with pytest.raises(RateLimited) as daily:
            await client.request("GET", "/crm/v3/owners")
        assert daily.value.retry_after == 3600.0
    finally:
        await client.aclose()


async def test_owners_are_read_page_by_page(fake: HubSpotFake) -> None:
    for n in range(5):
        fake.add_owner(f"Doc{n}", "Lee", f"doc{n}@northside.example")
    source = HubSpotMeetings(client_for(fake))
    try:
        staff = await source.staff()
    finally:
        await source.aclose()
    assert [s.name for s in staff] == [f"Doc{n} Lee" for n in range(5)]
    assert fake.count("GET", "/crm/v3/owners") == 3  # two a page


async def test_a_visit_becomes_a_meeting_on_the_clients_contact_then_moves_and_gets_its_outcome(
        fake: HubSpotFake) -> None:
    client = client_for(fake)
    log = HubSpotLog(client)
    try:
        # A private-app connection never signed in, so the key property is missing: it is added once.
        first = await log.record(visit(), None)
        assert KEY_PROPERTY in fake.custom["meetings"]
        await ensure_key_property(client)  # 409 the second time: fine
        [contact] = fake.contacts.values()
        assert contact["email"] == "jane.roe@client.example" and contact["firstname"] == "Jane"
        meeting = fake.meetings[first.remote_id]
        assert meeting["hs_meeting_start_time"] == ms(START) and meeting["hs_timestamp"] == ms(START)
        assert meeting["hs_meeting_outcome"] == "SCHEDULED" and meeting[KEY_PROPERTY] == "clinicbot-1-7"
        assert fake.links[first.remote_id] == [first.person_id]
        moved = await log.record(visit(start=START + timedelta(days=1), end=START + timedelta(days=1, hours=1),
                                       moved=True), first)
        assert moved == first and len(fake.meetings) == 1
        assert fake.meetings[first.remote_id]["hs_meeting_end_time"] == ms(START + timedelta(days=1, hours=1))
        assert fake.meetings[first.remote_id]["hs_meeting_outcome"] == "RESCHEDULED"
        await log.record(visit(stage="no_show"), first)
        assert fake.meetings[first.remote_id]["hs_meeting_outcome"] == "NO_SHOW"
        # Another visit of the same client reuses the contact found by email.
        second = await log.record(visit(key="clinicbot-1-8"), None)
        assert second.person_id == first.person_id and len(fake.contacts) == 1 and len(fake.meetings) == 2
    finally:
        await log.aclose()


async def test_a_create_whose_answer_was_lost_is_found_by_its_key_not_made_twice(fake: HubSpotFake) -> None:
    client = client_for(fake)
    log = HubSpotLog(client)
    try:
        await ensure_key_property(client)
        fake.lose_next_create = True
        with pytest.raises(Unavailable):
            await log.record(visit(), None)
        assert len(fake.meetings) == 1  # HubSpot made it; we never heard
        again = await log.record(visit(stage="cancelled"), None)
        assert len(fake.meetings) == 1
        assert fake.meetings[again.remote_id]["hs_meeting_outcome"] == "CANCELED"
    finally:
        await log.aclose()


async def test_meetings_made_in_hubspot_for_an_owner_are_bookings_and_logged_visits_are_not(
        fake: HubSpotFake) -> None:
    lee, ng = fake.add_owner("Ann", "Lee", "lee@x.example"), fake.add_owner("Bo", "Ng", "ng@x.example")
    client = client_for(fake)
    await ensure_key_property(client)
    jane = fake.add_contact("jane@client.example", "Jane", "Roe", "+447700900123")
    ids = [fake.add_meeting({"hs_timestamp": ms(START + timedelta(hours=h)),
                             "hs_meeting_start_time": ms(START + timedelta(hours=h)),
                             "hs_meeting_end_time": ms(START + timedelta(hours=h, minutes=30)),
                             "hs_meeting_title": f"Physio {h}", "hubspot_owner_id": lee,
                             "hs_meeting_outcome": "SCHEDULED"}, contact=jane) for h in range(3)]
    fake.add_meeting({"hs_timestamp": ms(START), "hs_meeting_start_time": ms(START), "hubspot_owner_id": ng,
                      "hs_meeting_end_time": ms(START + timedelta(hours=1)), "hs_meeting_title": "Other owner"})
    fake.add_meeting({"hs_timestamp": ms(START), "hs_meeting_start_time": ms(START), "hubspot_owner_id": lee,
                      "hs_meeting_end_time": ms(START + timedelta(hours=1)), KEY_PROPERTY: "clinicbot-1-1"})
    fake.add_meeting({"hs_timestamp": ms(START + timedelta(days=400)), "hubspot_owner_id": lee,
                      "hs_meeting_start_time": ms(START + timedelta(days=400)),
                      "hs_meeting_end_time": ms(START + timedelta(days=400, hours=1))})
    calendar = BookingCalendar(HubSpotMeetings(client), lee)
    try:
        fake.requests.clear()
        found = await calendar.changes(None, Window(START - timedelta(days=1), START + timedelta(days=30)))
        assert [i.remote_id for i in found.items] == ids and found.full
        first = found.items[0].event
        assert (first.client_email, first.client_name, first.client_phone) == (
            "jane@client.example", "Jane Roe", "+447700900123")
        assert first.start == START and first.end == START + timedelta(minutes=30) and first.staff_ref == lee
        # Two pages of meetings; each page costs one association read and one contact read, not one per meeting.
        assert fake.count("POST", "/crm/v3/objects/meetings/search") == 2
        assert fake.count("POST", "/crm/v4/associations") == 2 and fake.count("POST", "/crm/v3/objects/contacts") == 2
        moved = await calendar.update(ids[1], first.with_changes(start=START + timedelta(days=2),
                                                                 end=START + timedelta(days=2, minutes=30)),
                                      found.items[1].etag)
        assert moved.event.start == START + timedelta(days=2)
        assert fake.meetings[ids[1]]["hs_meeting_outcome"] == "RESCHEDULED"
        cancelled = await calendar.update(ids[2], first.with_changes(status="cancelled"), found.items[2].etag)
        assert cancelled.event.status == "cancelled" and fake.meetings[ids[2]]["hs_meeting_outcome"] == "CANCELED"
        with pytest.raises(NotFound):
            await calendar.get(next(m for m, p in fake.meetings.items() if p.get(KEY_PROPERTY)))
    finally:
        await calendar.aclose()


@dataclass
class Desk:
    """What the core gives a webhook handler, recording what it was asked."""

    channels_: list[Channel]
    at: datetime
    connection_id: int = 1
    synced: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def now(self) -> datetime:
        return self.at

    async def channels(self) -> list[Channel]:
        return self.channels_

    async def channel(self, channel_id: str) -> Channel | None:
        return None

    async def sync(self, channel: Channel, reason: str) -> None:
        self.synced.append(reason)

    async def renew_soon(self, channel: Channel) -> None: ...

    async def forget(self, channel: Channel) -> None: ...

    async def first_delivery(self, key: str) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


URL = "https://bot.northside.example/webhooks/hubspot/1"


def request(fake: HubSpotFake, body: bytes, **kw: object) -> WebhookRequest:
    headers = {k.lower(): v for k, v in fake.signed(URL, body, **kw).items()}  # type: ignore[arg-type]
    return WebhookRequest("POST", headers, {}, body)


async def test_v3_signed_deliveries_ask_for_a_sync_and_forged_stale_replayed_or_foreign_ones_do_not(
        fake: HubSpotFake) -> None:
    lee = fake.add_owner("Ann", "Lee", "lee@x.example")
    source = HubSpotMeetings(client_for(fake), portal_id=str(fake.portal_id), app_secret=fake.client_secret)
    calendar = BookingCalendar(source, lee)
    try:
        opened = await HubSpotChannels().open(calendar, URL, None)
    finally:
        await calendar.aclose()
    now = datetime.now(UTC)
    desk = Desk([opened.channel], now)
    hooks = HubSpotWebhooks()
    body = json.dumps([{"eventId": 11, "portalId": fake.portal_id, "subscriptionType": "object.propertyChange",
                        "objectTypeId": "0-47", "objectId": 5}]).encode()
    forged = request(fake, body, secret="not-the-secret")
    assert (await hooks.handle(forged, desk)).status == 401
    tampered = request(fake, body)
    tampered = WebhookRequest("POST", tampered.headers, {}, body.replace(b"5}", b"6}"))
    assert (await hooks.handle(tampered, desk)).status == 401
    stale = request(fake, body, at_ms=int((now - timedelta(minutes=6)).timestamp() * 1000))
    assert (await hooks.handle(stale, desk)).status == 401
    assert desk.synced == [] and desk.seen == set()
    good = request(fake, body, at_ms=int(now.timestamp() * 1000))
    assert (await hooks.handle(good, desk)).status == 200 and desk.synced == ["object.propertyChange"]
    assert (await hooks.handle(good, desk)).status == 401  # the same event again: a replay
    foreign = json.dumps([{"eventId": 12, "portalId": 999, "subscriptionType": "object.creation"}]).encode()
    assert (await hooks.handle(request(fake, foreign, at_ms=int(time.time() * 1000)), desk)).status == 200
    assert desk.synced == ["object.propertyChange"]
    not_a_list = b'{"eventId": 13}'
    assert (await hooks.handle(request(fake, not_a_list, at_ms=int(time.time() * 1000)), desk)).status == 400


def test_the_signature_matches_the_reference_vector() -> None:
    """platform-apis.md's self-computed vector for the v3 scheme."""
    from adapters.hubspot.webhooks import sign

    assert sign("POST", "https://example.com/hook", b'[{"objectId":1}]', "1700000000000",
                "client_secret_test") == "EspNny5QB5fuk5xbLpxJcwZm5mHjo0xJdJYUYc7G5rQ="


async def test_the_client_waits_out_a_spent_window_instead_of_drawing_429s_and_stops_at_the_daily_limit(
        fake: HubSpotFake) -> None:
    fake.window, fake.window_ms = 3, 150
    fake.add_owner("Ann", "Lee", "lee@x.example")
    client = client_for(fake)
    try:
        for _ in range(7):
            await client.request("GET", "/crm/v3/owners")
        assert fake.throttled == 0 and client.paced > 0  # two waits of about one window each
        fake.window, fake.daily_left = None, 2
        await client.request("GET", "/crm/v3/owners")
        await client.request("GET", "/crm/v3/owners")  # the day's last request: "remaining 0"
        sent = len(fake.requests)
        with pytest.raises(RateLimited) as daily:
            await client.request("GET", "/crm/v3/owners")
        assert daily.value.retry_after == 3600.0 and len(fake.requests) == sent  # not even sent
    finally:
        await client.aclose()
