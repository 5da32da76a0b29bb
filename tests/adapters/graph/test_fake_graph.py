"""The fake Graph's documented behaviours, driven with plain httpx (no adapter code in between)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.adapters.graph.conftest import CLIENT_ID, TENANT
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.adapters.graph.fakes.graph_throttle import ThrottlePolicy


def event(day: int, subject: str = "Busy", **extra: Any) -> dict[str, Any]:
    return {
        "subject": subject,
        "start": {"dateTime": f"2030-01-{day:02d}T10:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": f"2030-01-{day:02d}T11:00:00", "timeZone": "W. Europe Standard Time"},
        **extra,
    }


def user_client(fake: GraphFake, mbx: Mailbox, **headers: str) -> httpx.AsyncClient:
    token = fake.login.issue_user_token(CLIENT_ID, mbx.user.upn)
    return httpx.AsyncClient(base_url=f"{fake.url}/v1.0", headers={"Authorization": f"Bearer {token}", **headers})


WINDOW = "startDateTime=2030-01-01T00:00:00Z&endDateTime=2030-02-01T00:00:00Z"


async def test_missing_or_expired_token_is_401_with_graph_error_shape(fake: GraphFake, mailbox: Mailbox) -> None:
    async with httpx.AsyncClient(base_url=f"{fake.url}/v1.0") as anonymous:
        r = await anonymous.get("/me/calendars")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert set(r.json()["error"]["innerError"]) == {"date", "request-id", "client-request-id"}
    async with user_client(fake, mailbox) as c:
        assert (await c.get("/me/calendars")).status_code == 200
        fake.login.expire_access_tokens()
        assert (await c.get("/me/calendars")).status_code == 401


async def test_application_token_needs_admin_consent_and_same_tenant(fake: GraphFake, mailbox: Mailbox) -> None:
    other = fake.add_user("someone@elsewhere.example")
    for consented, ref, expected in [
        (False, mailbox.user.upn, 403),
        (True, mailbox.user.oid, 200),
        (True, other.user.upn, 403),
    ]:
        if consented:
            fake.login.grant_admin_consent(TENANT)
        token = fake.login.issue_app_token(CLIENT_ID, TENANT)
        async with httpx.AsyncClient(base_url=f"{fake.url}/v1.0", headers={"Authorization": f"Bearer {token}"}) as c:
            r = await c.get(f"/users/{ref}/calendars")
            assert r.status_code == expected, r.text
            if expected == 200:
                assert (await c.get("/me/calendars")).status_code == 400  # /me needs a delegated token


async def test_prefer_timezone_is_applied_and_echoed(fake: GraphFake, mailbox: Mailbox) -> None:
    async with user_client(fake, mailbox, Prefer='outlook.timezone="UTC"') as c:
        r = await c.post("/me/events", json=event(5))
        assert r.status_code == 201
        assert r.json()["start"] == {"dateTime": "2030-01-05T09:00:00.0000000", "timeZone": "UTC"}
        assert r.json()["originalStartTimeZone"] == "W. Europe Standard Time"
        assert 'outlook.timezone="UTC"' in r.headers["Preference-Applied"]


async def test_delta_pages_end_in_delta_link_and_report_removals(fake: GraphFake, mailbox: Mailbox) -> None:
    async with user_client(fake, mailbox, Prefer="odata.maxpagesize=2") as c:
        ids = [(await c.post("/me/events", json=event(d))).json()["id"] for d in range(1, 6)]
        link, seen, pages = f"/me/calendarView/delta?{WINDOW}", [], 0
        while True:
            body = (await c.get(link)).json()
            pages += 1
            seen += [e["id"] for e in body["value"]]
            assert not ("@odata.nextLink" in body and "@odata.deltaLink" in body)
            if "@odata.nextLink" in body:
                assert "$skiptoken=" in body["@odata.nextLink"]
                link = body["@odata.nextLink"]
                continue
            assert "$deltatoken=" in body["@odata.deltaLink"]
            delta = body["@odata.deltaLink"]
            break
        assert sorted(seen) == sorted(ids) and pages == 3
        assert (await c.delete(f"/me/events/{ids[0]}")).status_code == 204
        await c.patch(f"/me/events/{ids[1]}", json={"subject": "Moved"})
        body = (await c.get(delta)).json()
        removed = [e for e in body["value"] if "@removed" in e]
        changed = [e for e in body["value"] if "@removed" not in e]
        assert removed == [{"@odata.type": "#microsoft.graph.event", "id": ids[0], "@removed": {"reason": "deleted"}}]
        assert [e["subject"] for e in changed] == ["Moved"]


async def test_delta_needs_a_window_and_expired_tokens_answer_410(fake: GraphFake, mailbox: Mailbox) -> None:
    async with user_client(fake, mailbox) as c:
        assert (await c.get("/me/calendarView/delta")).status_code == 400
        delta = (await c.get(f"/me/calendarView/delta?{WINDOW}")).json()["@odata.deltaLink"]
        fake.expire_delta_tokens()
        r = await c.get(delta)
        assert r.status_code == 410
        assert r.json()["error"]["code"] == "SyncStateNotFound"


async def test_if_match_with_a_stale_change_key_is_412(fake: GraphFake, mailbox: Mailbox) -> None:
    async with user_client(fake, mailbox) as c:
        created = (await c.post("/me/events", json=event(3))).json()
        first = await c.patch(
            f"/me/events/{created['id']}", json={"subject": "A"}, headers={"If-Match": created["@odata.etag"]}
        )
        assert first.status_code == 200 and first.json()["@odata.etag"] != created["@odata.etag"]
        stale = await c.patch(
            f"/me/events/{created['id']}", json={"subject": "B"}, headers={"If-Match": created["@odata.etag"]}
        )
        assert stale.status_code == 412
        assert stale.json()["error"]["code"] == "ErrorIrresolvableConflict"
        assert (
            await c.delete(f"/me/events/{created['id']}", headers={"If-Match": created["@odata.etag"]})
        ).status_code == 412
        assert (await c.get(f"/me/events/{created['id']}")).json()["subject"] == "A"


async def test_transaction_id_makes_create_idempotent(fake: GraphFake, mailbox: Mailbox) -> None:
    async with user_client(fake, mailbox) as c:
        a = (await c.post("/me/events", json=event(4, transactionId="7e1b..."))).json()
        b = (await c.post("/me/events", json=event(4, "Other", transactionId="7e1b..."))).json()
        assert a["id"] == b["id"] and b["subject"] == "Busy"
        assert len(mailbox.default_calendar.events) == 1


async def test_unknown_property_and_bad_time_zone_are_400(fake: GraphFake, mailbox: Mailbox) -> None:
    async with user_client(fake, mailbox) as c:
        assert (await c.post("/me/events", json=event(2, colour="red"))).json()["error"]["code"] == "RequestBodyRead"
        bad = event(2)
        bad["start"]["timeZone"] = "Mars Standard Time"
        assert (await c.post("/me/events", json=bad)).status_code == 400
        assert mailbox.default_calendar.events == {}


async def test_batch_limits_dependencies_and_id_matching(fake: GraphFake, mailbox: Mailbox) -> None:
    async with user_client(fake, mailbox) as c:
        too_many = {"requests": [{"id": str(i), "method": "GET", "url": "/me/calendars"} for i in range(21)]}
        assert (await c.post("/$batch", json=too_many)).status_code == 400
        dup = {
            "requests": [
                {"id": "1", "method": "GET", "url": "/me"},
                {"id": "1", "method": "GET", "url": "/me"},
            ]
        }
        assert (await c.post("/$batch", json=dup)).status_code == 400
        no_type = {"requests": [{"id": "1", "method": "POST", "url": "/me/events", "body": event(1)}]}
        assert (await c.post("/$batch", json=no_type)).status_code == 400
        chained = {
            "requests": [
                {
                    "id": "a",
                    "method": "PATCH",
                    "url": "/me/events/missing",
                    "body": {"subject": "x"},
                    "headers": {"Content-Type": "application/json"},
                },
                {
                    "id": "b",
                    "method": "POST",
                    "url": "/me/events",
                    "body": event(1),
                    "dependsOn": ["a"],
                    "headers": {"Content-Type": "application/json"},
                },
            ]
        }
        answers = {a["id"]: a for a in (await c.post("/$batch", json=chained)).json()["responses"]}
        assert answers["a"]["status"] == 404 and answers["b"]["status"] == 424
        assert mailbox.default_calendar.events == {}
    assert fake.http_requests.count(("POST", "/$batch")) == 4


async def test_concurrency_over_four_per_mailbox_is_429_with_retry_after() -> None:
    fake = GraphFake(throttle=ThrottlePolicy(op_latency=0.05))
    await fake.start()
    try:
        mbx = fake.add_user("busy@clinic.example")
        async with user_client(fake, mbx) as c:
            answers = await asyncio.gather(*(c.get("/me/calendars") for _ in range(6)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200, 200, 200, 200, 429, 429]
        throttled = next(r for r in answers if r.status_code == 429)
        assert throttled.headers["Retry-After"] == "1"
        assert throttled.json()["error"]["code"] == "ApplicationThrottled"
        assert fake.throttle.stats[mbx.user.oid].max_in_flight == 4
    finally:
        await fake.stop()


async def test_request_budget_per_window_counts_batched_requests() -> None:
    fake = GraphFake(throttle=ThrottlePolicy.scaled(window=60.0, budget=5))
    await fake.start()
    try:
        mbx = fake.add_user("budget@clinic.example")
        async with user_client(fake, mbx) as c:
            batch = {"requests": [{"id": str(i), "method": "GET", "url": "/me/calendars"} for i in range(7)]}
            answers = (await c.post("/$batch", json=batch)).json()["responses"]
            assert sorted(a["status"] for a in answers) == [200] * 5 + [429] * 2
            throttled = next(a for a in answers if a["status"] == 429)
            assert 0 < float(throttled["headers"]["Retry-After"]) <= 60.0
            assert (await c.get("/me/calendars")).status_code == 429
            assert (await c.get("/me")).status_code == 200  # the user resource is not a mailbox request
    finally:
        await fake.stop()


async def test_get_schedule_reports_busy_items(fake: GraphFake, mailbox: Mailbox) -> None:
    fake.put_event(mailbox, event(6, "Clinic"))
    fake.put_event(
        mailbox,
        event(6, "Lunch", showAs="free")
        | {
            "start": {"dateTime": "2030-01-06T12:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-01-06T13:00:00", "timeZone": "UTC"},
        },
    )
    async with user_client(fake, mailbox) as c:
        body = {
            "schedules": [mailbox.user.upn, "nobody@clinic.example"],
            "startTime": {"dateTime": "2030-01-06T08:00:00", "timeZone": "UTC"},
            "endTime": {"dateTime": "2030-01-06T12:00:00", "timeZone": "UTC"},
            "availabilityViewInterval": 60,
        }
        value = (await c.post("/me/calendar/getSchedule", json=body)).json()["value"]
    assert value[0]["availabilityView"] == "0200"
    assert [i["subject"] for i in value[0]["scheduleItems"]] == ["Clinic"]
    assert value[1]["error"]["responseCode"] == "ErrorMailRecipientNotFound"
