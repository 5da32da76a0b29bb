"""Salesforce's adapter against the fake org: its error list and limits, an expired session refreshed,
visits upserted as Events by external id on a Contact or a new Lead (a retry never makes a second
Event), SOQL values escaped, Events polled on SystemModstamp with nextRecordsUrl batches, and the
OAuth connect at the production or sandbox login host."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from adapters.salesforce import open_client
from adapters.salesforce.bookings import SalesforceEvents
from adapters.salesforce.events import SalesforceLog, sf_time
from adapters.salesforce.oauth import SalesforceOAuth, refresh
from sync.contract import AuthExpired, ConnectionInfo, NotFound, RateLimited, Refused
from sync.contract.booking import BookingCalendar
from sync.contract.crm import CrmVisit
from sync.contract.items import Window
from tests.adapters.salesforce.conftest import EXT, client_for
from tests.adapters.salesforce.fakes.salesforce import SalesforceFake
from tests.conftest import settings_with

START = datetime(2031, 5, 7, 9, 0, tzinfo=UTC)


def visit(**changes: object) -> CrmVisit:
    base: dict[str, Any] = dict(key="clinicbot-1-7", stage="booked", start=START, end=START + timedelta(minutes=45),
                                tzid="Europe/London", title="Reiki with Dr Ann Lee", practice="Northside Clinic",
                                practitioner="Dr Ann Lee", client_name="Jane Roe",
                                client_email="jane.roe@client.example", location="12 High St")
    return CrmVisit(**{**base, **changes})


def host(fake: SalesforceFake) -> Any:
    return settings_with(salesforce_login_url=fake.url, salesforce_sandbox_url=fake.url + "/sandbox",
                         salesforce_client_id=fake.client_id, salesforce_client_secret=fake.client_secret,
                         allow_private_urls=True)


async def test_salesforce_errors_map_to_the_contract_and_the_limit_waits(fake: SalesforceFake) -> None:
    client = client_for(fake, token="00D!not-a-session")
    try:
        with pytest.raises(AuthExpired, match="INVALID_SESSION_ID"):
            await client.request("GET", "/query", params={"q": "SELECT Id FROM User"})
    finally:
        await client.aclose()
    client = client_for(fake)
    try:
        with pytest.raises(Refused, match=r"INVALID_FIELD.*No such column 'Bogus'"):
            await client.request("POST", "/sobjects/Lead", json={"LastName": "Roe", "Company": "x", "Bogus": 1})
        with pytest.raises(Refused, match="REQUIRED_FIELD_MISSING"):
            await client.request("POST", "/sobjects/Lead", json={"LastName": "Roe"})
        with pytest.raises(NotFound):
            await client.request("PATCH", "/sobjects/Event/00U000000000999AAA", json={"Subject": "x"})
        fake.limit_exceeded = 1
        with pytest.raises(RateLimited) as limit:
            await client.request("GET", "/query", params={"q": "SELECT Id FROM User"})
        assert limit.value.retry_after == 600.0
    finally:
        await client.aclose()


async def test_an_expired_session_is_refreshed_once_and_the_call_goes_through(fake: SalesforceFake) -> None:
    refresh_token = "rt-1"
    fake.refresh_tokens.add(refresh_token)
    saved: list[dict[str, Any]] = []

    async def save(document: dict[str, Any]) -> None:
        saved.append(document)

    conn = ConnectionInfo("salesforce", "org", {}, {
        "access_token": fake.session(), "refresh_token": refresh_token, "instance_url": fake.url,
        "login_url": fake.url, "expires_at": datetime.now(UTC).timestamp() + 3600}, save_credentials=save)
    fake.add("User", FirstName="Ann", LastName="Lee", IsActive=True)
    fake.expire_sessions()
    client = open_client(conn, host(fake))
    try:
        _, body = await client.request("GET", "/query", params={"q": "SELECT Id, Name FROM User"})
    finally:
        await client.aclose()
    assert body["records"][0]["Name"] == "Ann Lee"
    assert fake.count("POST", "/services/oauth2/token") == 1
    assert saved and saved[-1]["refresh_token"] == refresh_token and saved[-1]["instance_url"] == fake.url


async def test_a_visit_is_upserted_as_one_event_on_a_new_lead_or_the_clients_contact(fake: SalesforceFake) -> None:
    log = SalesforceLog(client_for(fake), EXT)
    try:
        first = await log.record(visit(), None)
        [lead] = fake.live("Lead")
        assert (lead["Email"], lead["LastName"], lead["FirstName"], lead["Company"]) == (
            "jane.roe@client.example", "Roe", "Jane", "Jane Roe")
        [event] = fake.live("Event")
        assert event["Id"] == first.remote_id and event[EXT] == "clinicbot-1-7" and event["WhoId"] == lead["Id"]
        assert event["StartDateTime"] == "2031-05-07T09:00:00.000Z" and event["Subject"] == "Reiki with Dr Ann Lee"
        # A retry that never heard the answer (known is None) lands on the same Event.
        again = await log.record(visit(start=START + timedelta(days=1), end=START + timedelta(days=1, hours=1),
                                       moved=True), None)
        assert again.remote_id == first.remote_id and len(fake.live("Event")) == 1 and len(fake.live("Lead")) == 1
        assert fake.live("Event")[0]["EndDateTime"] == "2031-05-08T10:00:00.000Z"
        await log.record(visit(stage="cancelled"), first)
        cancelled = fake.live("Event")[0]
        assert cancelled["Subject"] == "Cancelled: Reiki with Dr Ann Lee" and cancelled["ShowAs"] == "Free"
        # A client who is a Contact is linked to the Contact; an email with a quote cannot break the query.
        contact = fake.add("Contact", FirstName="Seán", LastName="O'Brien", Email="sean.o'brien@client.example")
        other = await log.record(visit(key="clinicbot-1-8", client_email="Sean.O'Brien@client.example",
                                       client_name="Seán O'Brien", stage="no_show"), None)
        assert other.person_id == contact and len(fake.live("Lead")) == 1
        assert fake.records["Event"][other.remote_id]["Subject"].startswith("No-show: ")
    finally:
        await log.aclose()


async def test_events_are_polled_on_systemmodstamp_in_batches_and_deletions_come_back(
        fake: SalesforceFake) -> None:
    lee = fake.add("User", FirstName="Ann", LastName="Lee", IsActive=True)
    ng = fake.add("User", FirstName="Bo", LastName="Ng", IsActive=True)
    jane = fake.add("Contact", FirstName="Jane", LastName="Roe", Email="jane@client.example")
    ids = [fake.add("Event", Subject=f"Physio {h}", StartDateTime=sf_time(START + timedelta(hours=h)),
                    EndDateTime=sf_time(START + timedelta(hours=h, minutes=30)), OwnerId=lee, WhoId=jane)
           for h in range(3)]
    fake.add("Event", Subject="Other", StartDateTime=sf_time(START), EndDateTime=sf_time(START), OwnerId=ng)
    fake.add("Event", Subject="Logged", StartDateTime=sf_time(START), EndDateTime=sf_time(START), OwnerId=lee,
             **{EXT: "clinicbot-1-1"})
    source = SalesforceEvents(client_for(fake), EXT)
    calendar = BookingCalendar(source, lee)
    window = Window(START - timedelta(days=1), START + timedelta(days=30))
    try:
        assert [s.name for s in await source.staff()] == ["Ann Lee", "Bo Ng"]
        fake.requests.clear()
        first = await calendar.changes(None, window)
        assert [i.remote_id for i in first.items] == ids and first.full and first.cursor
        assert (first.items[0].event.client_email, first.items[0].event.client_name) == ("jane@client.example",
                                                                                         "Jane Roe")
        assert fake.count("GET", "/services/data/v60.0/query") == 2  # three Events, two a batch
        fake.requests.clear()
        quiet = await calendar.changes(first.cursor, window)
        assert quiet.items == [] and quiet.deleted_ids == [] and not quiet.full
        assert len(fake.requests) == 1  # a poll that finds nothing: one request
        moved = await calendar.update(ids[0], first.items[0].event.with_changes(
            start=START + timedelta(days=1), end=START + timedelta(days=1, minutes=30)), first.items[0].etag)
        assert moved.event.start == START + timedelta(days=1)
        fake.records["Event"][ids[1]].update(IsDeleted=True, SystemModstamp=fake.tick())
        later = await calendar.changes(quiet.cursor, window)
        assert [i.remote_id for i in later.items] == [ids[0]] and later.deleted_ids == [ids[1]]
        assert later.cursor and later.cursor > (quiet.cursor or "")
        cancelled = await calendar.update(ids[2], first.items[2].event.with_changes(status="cancelled"), None)
        assert cancelled.event.status == "cancelled" and cancelled.event.summary == "Physio 2"
        assert fake.records["Event"][ids[2]]["Subject"] == "Cancelled: Physio 2"
        with pytest.raises(NotFound):
            await calendar.get("'; DROP")
    finally:
        await calendar.aclose()


async def test_oauth_connect_reads_the_instance_url_and_uses_the_sandbox_host_when_asked(
        fake: SalesforceFake) -> None:
    fake.add("User", FirstName="Ann", LastName="Lee", IsActive=True)
    settings = host(fake)
    flow = SalesforceOAuth()
    start = await flow.begin(settings, redirect_uri="https://bot.example/oauth/salesforce/callback",
                             options={"environment": "sandbox"})
    link = urlsplit(start.url)
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{fake.url}/sandbox/services/oauth2/authorize"
    assert parse_qs(link.query)["scope"] == ["api refresh_token"]
    production = await flow.begin(settings, redirect_uri="https://bot.example/cb", options={})
    connected = await flow.finish(settings, secret=production.secret,
                                  query={"code": fake.issue_code(), "state": production.state})
    assert connected.credentials is not None and connected.credentials["instance_url"] == fake.url
    assert [c.name for c in connected.calendars] == ["Ann Lee"] and connected.config["instance_url"] == fake.url
    with pytest.raises(AuthExpired):
        await refresh(settings, {"refresh_token": "spent", "login_url": fake.url})
    with pytest.raises(Refused):
        await flow.begin(settings, redirect_uri="https://bot.example/cb", options={"environment": "staging"})


def test_an_insecure_instance_url_from_a_token_answer_is_refused() -> None:
    from adapters.salesforce.oauth import token_document
    from sync.contract import BadPayload

    settings = settings_with(allow_private_urls=False)
    with pytest.raises(BadPayload, match="instance_url"):
        token_document({"access_token": "a", "refresh_token": "r", "instance_url": "http://evil.example"},
                       settings, "https://login.salesforce.com")




async def test_a_spent_allowance_stops_the_client_before_it_sends(fake: SalesforceFake) -> None:
    fake.allowance = 2
    client = client_for(fake)
    try:
        await client.request("GET", "/query", params={"q": "SELECT Id FROM User"})
        await client.request("GET", "/query", params={"q": "SELECT Id FROM User"})
        assert client.usage == (2, 2)
        sent = len(fake.requests)
        with pytest.raises(RateLimited) as spent:
            await client.request("GET", "/query", params={"q": "SELECT Id FROM User"})
        assert spent.value.retry_after == 600.0 and len(fake.requests) == sent
    finally:
        await client.aclose()
