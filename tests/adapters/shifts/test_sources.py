"""A published schedule from an iCalendar feed and from a signed JSON push, through to the fake Graph.

Each starts where an admin or a scheduler starts (`clinicbot shifts feed URL` reads the feed; a POST
to `/webhooks/shifts/<connection>`), imports a small schedule, then a second one with a shift moved,
one removed and one added: the fake's calendars end up holding exactly the published shifts, and an
event clinicbot did not make is untouched.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from adapters.shifts import sign
from bot.app import build_app
from sync.runtime.core import Core
from sync.services import shift_sources
from sync.services import shifts as service
from sync.services.errors import Invalid
from sync.store.model import AuditEntry, ShiftRow
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.adapters.ics.fakes.ics_feed import FeedServer
from tests.adapters.shifts.conftest import ZONE


def day(offset: int) -> datetime:
    """Midnight `offset` days from now in the practice's zone."""
    now = datetime.now(ZoneInfo(ZONE))
    return datetime(now.year, now.month, now.day, tzinfo=ZoneInfo(ZONE)) + timedelta(days=offset)


def at(offset: int, hour: int) -> datetime:
    return day(offset).replace(hour=hour)


def events(mbx: Mailbox) -> list[Any]:
    return sorted((e for c in mbx.calendars.values() for e in c.events.values()), key=lambda e: e.start)


def calendar_of(mbx: Mailbox) -> list[tuple[str, datetime, datetime]]:
    return [(e.fields["subject"], e.start, e.end) for e in events(mbx)]


def utc(moment: datetime) -> datetime:
    return moment.astimezone(ZoneInfo("UTC"))


def writes(fake: GraphFake, since: int) -> list[str]:
    return sorted(op[0] for op in fake.operations[since:] if op[0] in ("POST", "PATCH", "DELETE") and "/events" in op[1])


def foreign_event(fake: GraphFake, mbx: Mailbox) -> None:
    """The practitioner's own event on a shift day: clinicbot must never touch it."""
    start = utc(at(2, 17))
    fake.put_event(mbx, {
        "subject": "Dentist", "start": {"dateTime": f"{start:%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"},
        "end": {"dateTime": f"{start + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"},
    })


# --- the iCalendar feed -----------------------------------------------------------------------------------


def vevent(uid: str, summary: str, start: datetime, end: datetime, *extra: str) -> str:
    return "\r\n".join([
        "BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{utc(start):%Y%m%dT%H%M%SZ}",
        f"DTSTART;TZID={ZONE}:{start:%Y%m%dT%H%M%S}", f"DTEND;TZID={ZONE}:{end:%Y%m%dT%H%M%S}",
        f"SUMMARY:{summary}", *extra, "END:VEVENT",
    ])


def feed(*events_text: str) -> str:
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Scheduler//EN", *events_text,
                        "END:VCALENDAR", ""])


ANN = "ATTENDEE;CN=Ann Lee:mailto:ann@clinic.example"


@pytest.fixture
def core_overrides() -> dict[str, object]:
    return {"allow_private_urls": True}


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server


async def test_a_feed_is_read_mapped_and_republished_with_only_its_changes(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], feeds: FeedServer
) -> None:
    await service.set_flags(core, None, "Night call", actor="cli:admin", free=True, notes=True)
    first = [
        vevent("s1", "Day clinic", at(2, 8), at(2, 16), ANN),
        vevent("s2", "Night call", at(3, 19), at(4, 7), ANN, "DESCRIPTION:Covers ward B"),
        # Bob named in the summary, his sign-in in the scheduler's own property.
        vevent("s3", "Day clinic - Bob Ng", at(2, 8), at(2, 16), "X-SHIFT-UNIQUEID:bob@clinic.example"),
        vevent("s4", "Day clinic", at(5, 8), at(5, 16), "ATTENDEE;CN=Cy Roe:mailto:"),
        vevent("s5", "Day clinic", at(6, 8), at(6, 16), ANN, "STATUS:TENTATIVE"),
    ]
    feeds.publish("/lb/published.ics", feed(*first))
    summary = await shift_sources.set_feed(core, None, feeds.url("/lb/published.ics"), actor="cli:admin")
    assert (summary.shifts, summary.published, summary.to_create, summary.unmapped) == (5, 4, 3, ["Cy Roe"])
    assert (await service.publish(core, None, actor="cli:admin")).created == 3
    assert calendar_of(people["ann"]) == [("Day clinic", utc(at(2, 8)), utc(at(2, 16))),
                                          ("Night call", utc(at(3, 19)), utc(at(4, 7)))]
    night = events(people["ann"])[1]
    assert night.fields["showAs"] == "free" and "Covers ward B" in night.fields["body"]["content"]
    assert calendar_of(people["bob"]) == [("Day clinic", utc(at(2, 8)), utc(at(2, 16)))]
    foreign_event(fake, people["ann"])

    # The scheduler moves Ann's night call, removes Bob's shift and adds one for Dee.
    feeds.publish("/lb/published.ics", feed(
        first[0],
        vevent("s2", "Night call", at(3, 20), at(4, 8), ANN, "DESCRIPTION:Covers ward B"),
        vevent("s6", "Late clinic", at(4, 12), at(4, 20), "ATTENDEE;CN=Dee Fox:mailto:dee@clinic.example"),
        first[3], first[4],
    ))
    mark = len(fake.operations)
    await shift_sources.pull_feeds_job(core)  # what the leader runs every 5 minutes
    result = await service.publish(core, None, actor="system:shifts")
    assert (result.created, result.updated, result.deleted, result.failed) == (1, 1, 1, 0)
    assert writes(fake, mark) == ["DELETE", "PATCH", "POST"]
    assert calendar_of(people["ann"]) == [("Day clinic", utc(at(2, 8)), utc(at(2, 16))),
                                          ("Dentist", utc(at(2, 17)), utc(at(2, 18))),
                                          ("Night call", utc(at(3, 20)), utc(at(4, 8)))]
    assert calendar_of(people["bob"]) == []
    assert calendar_of(people["dee"]) == [("Late clinic", utc(at(4, 12)), utc(at(4, 20)))]
    async with core.store.session() as s:
        actors = (await s.scalars(select(AuditEntry.actor).where(AuditEntry.action == "shifts.import")
                                  .order_by(AuditEntry.id))).all()
    assert actors == ["cli:admin", "system:shift-feed"]


async def test_a_feed_that_does_not_read_whole_changes_nothing(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], feeds: FeedServer
) -> None:
    feeds.publish("/good.ics", feed(vevent("s1", "Day clinic", at(2, 8), at(2, 16), ANN)))
    await shift_sources.set_feed(core, None, feeds.url("/good.ics"), actor="cli:admin")
    await service.publish(core, None, actor="cli:admin")
    # A shift with no person: the whole feed is refused, naming the line; the stored schedule stays.
    feeds.publish("/good.ics", feed(vevent("s2", "Day clinic", at(3, 8), at(3, 16))))
    with pytest.raises(Invalid, match=r"line \d+: event s2 names no person"):
        await shift_sources.pull_feed(core, None, actor="cli:admin")
    feeds.publish("/bad.ics", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:2026-13-45\r\n"
                  "END:VEVENT\r\nEND:VCALENDAR\r\n")
    with pytest.raises(Invalid, match="line"):
        await shift_sources.set_feed(core, None, feeds.url("/bad.ics"), actor="cli:admin")
    with pytest.raises(Invalid, match="404"):
        await shift_sources.set_feed(core, None, feeds.url("/missing.ics"), actor="cli:admin")
    async with core.store.session() as s:
        assert (await s.scalars(select(ShiftRow.shift_key))).all() == ["s1"]
    # The job notes the failure on the source and goes on.
    await shift_sources.pull_feeds_job(core)
    assert (await service.publish(core, None, actor="cli:admin")).writes == 0
    assert len(events(people["ann"])) == 1


# --- the signed push --------------------------------------------------------------------------------------


@pytest.fixture
async def http(core: Core) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(core.settings, core=core))) as client:
        yield client


def shift(key: str, name: str, upn: str, assignment: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {"id": key, "person": {"name": name, "custom1": upn}, "assignment": assignment,
            "start": start.strftime("%Y-%m-%dT%H:%M"), "end": end.strftime("%Y-%m-%dT%H:%M")}


async def post(http: TestClient, connection_id: int, secret: str, payload: Any, *, when: datetime | None = None,
               body: bytes | None = None, delivery: str = "") -> tuple[int, Any]:
    raw = body if body is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json",
               "X-Clinicbot-Signature": sign(raw, secret, when or datetime.now(ZoneInfo("UTC")))}
    if delivery:
        headers["X-Clinicbot-Delivery"] = delivery
    response = await http.post(f"/webhooks/shifts/{connection_id}", data=raw, headers=headers)
    return response.status, await response.json()


async def test_a_signed_push_is_imported_and_published_and_a_republish_writes_only_changes(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], http: TestClient
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    connection_id, secret = await shift_sources.push_secret(core, None, actor="cli:admin")
    first = [
        shift("A-1", "Ann Lee", "ann@clinic.example", "Day clinic", at(2, 8), at(2, 16)),
        shift("A-2", "Ann Lee", "ann@clinic.example", "Day clinic", at(3, 8), at(3, 16)),
        shift("B-1", "Bob Ng", "bob@clinic.example", "Day clinic", at(2, 8), at(2, 16)),
    ]
    status, answer = await post(http, connection_id, secret, {"origin": "QGenda nightly", "shifts": first})
    assert status == 200, answer
    assert answer["create"] == 3 and answer["published"]["created"] == 3
    foreign_event(fake, people["ann"])

    window = {"start": day(2).strftime("%Y-%m-%d"), "end": day(5).strftime("%Y-%m-%d")}
    second = [first[0], {**first[1], "start": at(3, 10).strftime("%Y-%m-%dT%H:%M"),
                         "end": at(3, 18).strftime("%Y-%m-%dT%H:%M")},
              shift("D-1", "Dee Fox", "dee@clinic.example", "Late clinic", at(4, 12), at(4, 20))]
    mark = len(fake.operations)
    status, answer = await post(http, connection_id, secret, {"window": window, "shifts": second}, delivery="run-2")
    assert status == 200, answer
    assert answer["published"] == {"created": 1, "updated": 1, "deleted": 1, "failed": 0}
    assert writes(fake, mark) == ["DELETE", "PATCH", "POST"]
    assert calendar_of(people["ann"]) == [("Day clinic", utc(at(2, 8)), utc(at(2, 16))),
                                          ("Dentist", utc(at(2, 17)), utc(at(2, 18))),
                                          ("Day clinic", utc(at(3, 10)), utc(at(3, 18)))]
    assert calendar_of(people["bob"]) == []
    assert calendar_of(people["dee"]) == [("Late clinic", utc(at(4, 12)), utc(at(4, 20)))]
    async with core.store.session() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "shifts.publish")
                               .order_by(AuditEntry.id.desc()).limit(1))
        assert entry is not None and entry.actor == f"push:shifts:{connection_id}"


async def test_a_push_is_refused_unless_signed_fresh_and_new_and_a_bad_one_changes_nothing(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], http: TestClient
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    connection_id, secret = await shift_sources.push_secret(core, None, actor="cli:admin")
    payload = {"shifts": [shift("A-1", "Ann Lee", "ann@clinic.example", "Day clinic", at(2, 8), at(2, 16))]}
    raw = json.dumps(payload).encode()
    assert (await post(http, connection_id, "not-the-secret", payload))[0] == 401
    stale = datetime.now(ZoneInfo("UTC")) - timedelta(minutes=6)
    assert (await post(http, connection_id, secret, payload, when=stale))[0] == 401
    unsigned = await http.post(f"/webhooks/shifts/{connection_id}", data=raw)
    assert unsigned.status == 401
    # A signature over other bytes: checked on the raw body, before any JSON is read.
    tampered = raw.replace(b"Day clinic", b"Day clinix")
    headers = {"X-Clinicbot-Signature": sign(raw, secret, datetime.now(ZoneInfo("UTC")))}
    assert (await http.post(f"/webhooks/shifts/{connection_id}", data=tampered, headers=headers)).status == 401
    assert (await post(http, 999999, secret, payload))[0] == 404
    assert fake.operations == [] or all("/events" not in op[1] for op in fake.operations)

    # The same signed request twice: the second is a replay. Signed anew (a sender's retry), it is taken.
    signed = {"X-Clinicbot-Signature": sign(raw, secret, datetime.now(ZoneInfo("UTC")) - timedelta(seconds=30))}
    assert (await http.post(f"/webhooks/shifts/{connection_id}", data=raw, headers=signed)).status == 200
    replay = await http.post(f"/webhooks/shifts/{connection_id}", data=raw, headers=signed)
    assert replay.status == 409 and "replay" in (await replay.json())["error"]
    assert (await post(http, connection_id, secret, payload))[0] == 200  # nothing to change: answered 200
    status, answer = await post(http, connection_id, secret, payload, delivery="run-7")
    assert status == 200
    status, answer = await post(http, connection_id, secret, payload, delivery="run-7")
    assert status == 409 and "replay" in answer["error"]
    # A bad shift fails the whole push, naming it; nothing stored changes.
    bad = {"shifts": [payload["shifts"][0], {**payload["shifts"][0], "id": "A-2", "start": "tomorrow"}]}
    status, answer = await post(http, connection_id, secret, bad)
    assert status == 400 and "shift 1" in answer["error"] and "start" in answer["error"]
    formula = {"shifts": [{**payload["shifts"][0], "notes": "=HYPERLINK(\"x\")"}]}
    status, answer = await post(http, connection_id, secret, formula)
    assert status == 400 and "formula" in answer["error"]
    status, _ = await post(http, connection_id, secret, None, body=b"{not json")
    assert status == 400
    async with core.store.session() as s:
        assert await s.scalar(select(func.count()).select_from(ShiftRow)) == 1
    assert len(events(people["ann"])) == 1
    # A new secret: the old one stops working.
    _same, fresh = await shift_sources.push_secret(core, None, actor="cli:admin")
    later = {"shifts": payload["shifts"], "origin": "rotated"}
    assert (await post(http, connection_id, secret, later))[0] == 401
    assert (await post(http, connection_id, fresh, later))[0] == 200
