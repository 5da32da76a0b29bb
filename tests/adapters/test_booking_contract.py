"""The booking-source contract, run over every registered integration with a booking source, each
against its own loopback fake: staff are listed, a booking made on the platform is listed and
fetched with its staff id, a reschedule either moves it (one booking, same id) or is refused in
words, and a cancel leaves it cancelled. A new booking platform must add its driver here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sync.contract import BookingSource, ConnectionInfo, Refused
from sync.contract.items import Window
from sync.integrations import registry
from tests.conftest import settings_with

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
NAMES = [i.name for i in registry.integrations() if i.booking_source is not None]


@dataclass
class Driver:
    source: BookingSource
    staff: str
    book: Callable[[datetime], Awaitable[str]]
    close: Callable[[], Awaitable[None]]


async def _square() -> Driver:
    from tests.adapters.square.fakes.square import SquareFake

    fake = await SquareFake().start()
    fake.grant("sq-token")
    fake.add_staff("TM-A", "Alex")
    fake.add_customer("C1", "Jane", "Roe", "jane@example.org")
    host = settings_with(square_api_url=fake.url)
    source = registry.get("square").booking_source(  # type: ignore[misc]
        ConnectionInfo("square", "M1", {}, {"access_token": "sq-token"}), host)

    async def book(start: datetime) -> str:
        return str((await fake.book("TM-A", start, 30, customer_id="C1"))["id"])

    return Driver(source, "TM-A", book, fake.close)


async def _acuity() -> Driver:
    from tests.adapters.acuity.fakes.acuity import AcuityFake

    fake = await AcuityFake().start()
    fake.add_calendar(1, "Dr Lee")
    host = settings_with(acuity_api_url=fake.url)
    source = registry.get("acuity").booking_source(  # type: ignore[misc]
        ConnectionInfo("acuity", "x", {}, {"username": fake.user_id, "password": fake.api_key}), host)

    async def book(start: datetime) -> str:
        return str((await fake.book(1, start, 30))["id"])

    return Driver(source, "1", book, fake.close)


async def _calendly() -> Driver:
    from tests.adapters.calendly.fakes.calendly import CalendlyFake

    fake = await CalendlyFake().start()
    lee = fake.add_user("Dr Lee")
    host = settings_with(calendly_api_url=fake.url)
    source = registry.get("calendly").booking_source(  # type: ignore[misc]
        ConnectionInfo("calendly", "x", {}, {"password": fake.token}), host)

    async def book(start: datetime) -> str:
        return str((await fake.book(lee, start, 30))["uri"]).rsplit("/", 1)[-1]

    return Driver(source, lee, book, fake.close)


async def _simplybook() -> Driver:
    from tests.adapters.simplybook.fakes.simplybook import SimplyBookFake

    fake = await SimplyBookFake().start()
    fake.add_unit("2", "Dr Lee")
    host = settings_with(simplybook_api_url=fake.url)
    source = registry.get("simplybook").booking_source(  # type: ignore[misc]
        ConnectionInfo("simplybook", "x", {"url": f"https://{fake.company}.simplybook.me"},
                       {"username": fake.user, "password": fake.password}), host)

    async def book(start: datetime) -> str:
        return str((await fake.book("2", start, 30))["id"])

    return Driver(source, "2", book, fake.close)


async def _youcanbookme() -> Driver:
    from tests.adapters.youcanbookme.fakes.youcanbookme import YouCanBookMeFake

    fake = await YouCanBookMeFake().start()
    fake.add_profile("p-lee", "Dr Lee")
    host = settings_with(youcanbookme_api_url=fake.url)
    source = registry.get("youcanbookme").booking_source(  # type: ignore[misc]
        ConnectionInfo("youcanbookme", "x", {"url": f"https://api.youcanbook.me/v1/{fake.account}"},
                       {"username": fake.login, "password": fake.api_key}), host)

    async def book(start: datetime) -> str:
        return str((await fake.book("p-lee", start, 30))["id"])

    return Driver(source, "p-lee", book, fake.close)


async def _setmore() -> Driver:
    from tests.adapters.setmore.fakes.setmore import SetmoreFake

    fake = await SetmoreFake().start()
    fake.add_staff("st-lee", "Dr", "Lee")
    host = settings_with(setmore_api_url=fake.url)
    source = registry.get("setmore").booking_source(  # type: ignore[misc]
        ConnectionInfo("setmore", "x", {"url": "https://developer.setmore.com"},
                       {"username": "clinic", "password": fake.refresh_token}), host)

    async def book(start: datetime) -> str:
        return str(fake.book("st-lee", start, 30)["key"])

    return Driver(source, "st-lee", book, fake.close)


async def _timetap() -> Driver:
    from tests.adapters.timetap.fakes.timetap import TimeTapFake

    fake = await TimeTapFake().start()
    fake.add_staff(71, "Dr Lee")
    host = settings_with(timetap_api_url=fake.url)
    source = registry.get("timetap").booking_source(  # type: ignore[misc]
        ConnectionInfo("timetap", "x", {"url": "https://api.timetap.com"},
                       {"username": fake.api_key, "password": fake.private_key}), host)

    async def book(start: datetime) -> str:
        return str(fake.book(71, start, 30)["calendarId"])

    return Driver(source, "71", book, fake.close)


async def _hubspot() -> Driver:
    from adapters.hubspot.meetings import KEY_PROPERTY, ms
    from tests.adapters.hubspot.fakes.hubspot import HubSpotFake

    fake = await HubSpotFake().start()
    lee = fake.add_owner("Ann", "Lee", "lee@example.org")
    fake.custom["meetings"].add(KEY_PROPERTY)  # made at connect
    jane = fake.add_contact("jane@example.org", "Jane", "Roe")
    host = settings_with(hubspot_api_url=fake.url)
    source = registry.get("hubspot").booking_source(  # type: ignore[misc]
        ConnectionInfo("hubspot", "x", {"portal_id": str(fake.portal_id)}, {"password": fake.token}), host)

    async def book(start: datetime) -> str:
        return fake.add_meeting({"hs_timestamp": ms(start), "hs_meeting_start_time": ms(start),
                                 "hs_meeting_end_time": ms(start + timedelta(minutes=30)),
                                 "hs_meeting_title": "Physio", "hubspot_owner_id": lee}, contact=jane)

    return Driver(source, lee, book, fake.close)


async def _salesforce() -> Driver:
    from adapters.salesforce.events import sf_time
    from tests.adapters.salesforce.fakes.salesforce import SalesforceFake

    fake = await SalesforceFake().start()
    lee = fake.add("User", FirstName="Ann", LastName="Lee", IsActive=True)
    jane = fake.add("Contact", FirstName="Jane", LastName="Roe", Email="jane@example.org")
    host = settings_with()
    source = registry.get("salesforce").booking_source(  # type: ignore[misc]
        ConnectionInfo("salesforce", "x", {"instance_url": fake.url},
                       {"access_token": fake.session(), "instance_url": fake.url}), host)

    async def book(start: datetime) -> str:
        return fake.add("Event", Subject="Physio", StartDateTime=sf_time(start), OwnerId=lee, WhoId=jane,
                        EndDateTime=sf_time(start + timedelta(minutes=30)))

    return Driver(source, lee, book, fake.close)


DRIVERS: dict[str, Callable[[], Awaitable[Driver]]] = {
    "square": _square, "acuity": _acuity, "calendly": _calendly, "simplybook": _simplybook,
    "youcanbookme": _youcanbookme, "setmore": _setmore, "timetap": _timetap, "hubspot": _hubspot,
    "salesforce": _salesforce}


@pytest.fixture(params=NAMES)
async def driver(request: pytest.FixtureRequest) -> AsyncIterator[Driver]:
    name = str(request.param)
    if name not in DRIVERS:
        pytest.fail(f"the booking source {name} has no driver in the booking-source contract test")
    found = await DRIVERS[name]()
    try:
        yield found
    finally:
        await found.source.aclose()
        await found.close()


def test_every_booking_platform_is_registered() -> None:
    assert {"square", "acuity", "calendly", "simplybook", "youcanbookme", "setmore", "timetap"} <= set(NAMES)


async def test_booking_source_contract(driver: Driver) -> None:
    source: Any = driver.source
    assert isinstance(source, BookingSource)
    staff = await source.staff()
    assert driver.staff in [c.remote_id for c in staff]
    booking_id = await driver.book(START)
    window = Window(START - timedelta(days=1), START + timedelta(days=2))
    listed = await source.changes(None, window, staff=driver.staff)
    assert listed.full and [i.remote_id for i in listed.items] == [booking_id]
    item = listed.items[0]
    assert item.event.start == START and item.event.staff_ref == driver.staff and item.event.client_name
    fetched = await source.fetch(booking_id)
    assert fetched.remote_id == booking_id and fetched.event.content_hash() == item.event.content_hash()
    if source.capabilities.reschedule:
        moved = await source.reschedule(booking_id, START + timedelta(hours=1), START + timedelta(hours=2), item.etag)
        assert moved.remote_id == booking_id and moved.event.start == START + timedelta(hours=1)
        assert moved.etag != item.etag
        item = moved
    else:
        with pytest.raises(Refused):
            await source.reschedule(booking_id, START + timedelta(hours=1), START + timedelta(hours=2), item.etag)
    assert source.capabilities.cancel
    cancelled = await source.cancel(booking_id, "contract test", item.etag)
    assert cancelled.remote_id == booking_id and cancelled.event.status == "cancelled"
    again = await source.changes(None, window, staff=driver.staff)
    assert [(i.remote_id, i.event.status) for i in again.items] in ([(booking_id, "cancelled")], [])
