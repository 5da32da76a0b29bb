"""The fake Google Calendar behaves as the API reference documents, errors included."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.adapters.google.conftest import PRIMARY
from tests.adapters.google.fakes.google import GoogleFake

EVENTS = f"/calendar/v3/calendars/{PRIMARY}/events"


def timed(summary: str, day: int, hour: int = 9, **extra: object) -> dict[str, object]:
    return {
        "summary": summary,
        "start": {"dateTime": f"2030-05-{day:02d}T{hour:02d}:00:00+01:00", "timeZone": "Europe/London"},
        "end": {"dateTime": f"2030-05-{day:02d}T{hour:02d}:30:00+01:00", "timeZone": "Europe/London"},
        **extra,
    }


@pytest.fixture
async def api(fake: GoogleFake) -> AsyncIterator[httpx.AsyncClient]:
    token = fake.oauth.grant()["access_token"]
    async with httpx.AsyncClient(base_url=fake.url, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def reason(response: httpx.Response) -> str:
    return str(response.json()["error"]["errors"][0]["reason"])


async def test_requests_without_a_valid_token_get_401(fake: GoogleFake, api: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=fake.url) as anonymous:
        assert (await anonymous.get(EVENTS)).status_code == 401
    assert (await api.get(EVENTS)).status_code == 200
    fake.oauth.expire_access_tokens()
    response = await api.get(EVENTS)
    assert response.status_code == 401 and reason(response) == "authError"


async def test_client_ids_must_be_base32hex_and_unique(api: httpx.AsyncClient) -> None:
    bad = await api.post(EVENTS, json={"id": "Not_Base32!", **timed("a", 1)})
    assert bad.status_code == 400
    short = await api.post(EVENTS, json={"id": "abcd", **timed("a", 1)})
    assert short.status_code == 400
    first = await api.post(EVENTS, json={"id": "abcdev0123", **timed("a", 1)})
    assert first.status_code == 200 and first.json()["id"] == "abcdev0123"
    again = await api.post(EVENTS, json={"id": "abcdev0123", **timed("b", 2)})
    assert again.status_code == 409 and reason(again) == "duplicate"
    assert again.json()["error"]["message"] == "The requested identifier already exists."
    # A deleted event keeps its id taken.
    assert (await api.delete(f"{EVENTS}/abcdev0123")).status_code == 204
    assert (await api.post(EVENTS, json={"id": "abcdev0123", **timed("c", 3)})).status_code == 409


async def test_paging_and_sync_token_on_the_last_page_only(fake: GoogleFake, api: httpx.AsyncClient) -> None:
    for day in range(1, 6):
        fake.server_insert(PRIMARY, timed(f"e{day}", day))
    pages, page_token = [], None
    while True:
        params = {"maxResults": "2", **({"pageToken": page_token} if page_token else {})}
        body = (await api.get(EVENTS, params=params)).json()
        pages.append(body)
        page_token = body.get("nextPageToken")
        if not page_token:
            break
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert all("nextSyncToken" not in p for p in pages[:-1]) and "nextSyncToken" in pages[-1]
    token = pages[-1]["nextSyncToken"]
    nothing = (await api.get(EVENTS, params={"syncToken": token})).json()
    assert nothing["items"] == []
    changed = (await api.get(EVENTS, params={"syncToken": token})).json()["nextSyncToken"]
    fake.server_patch(PRIMARY, pages[0]["items"][0]["id"], {"summary": "moved"})
    delta = (await api.get(EVENTS, params={"syncToken": changed})).json()
    assert [i["summary"] for i in delta["items"]] == ["moved"]


async def test_sync_token_rejects_time_bounds_and_expires_with_410(fake: GoogleFake, api: httpx.AsyncClient) -> None:
    token = (await api.get(EVENTS)).json()["nextSyncToken"]
    mixed = await api.get(EVENTS, params={"syncToken": token, "timeMin": "2030-01-01T00:00:00Z"})
    assert mixed.status_code == 400
    fake.calendar(PRIMARY).invalidate_sync_tokens()
    gone = await api.get(EVENTS, params={"syncToken": token})
    assert gone.status_code == 410
    assert gone.json()["error"]["errors"][0] == {
        "domain": "global",
        "reason": "fullSyncRequired",
        "message": "Sync token is no longer valid, a full sync is required.",
    }
    assert (await api.get(EVENTS, params={"syncToken": "garbage"})).status_code == 410


async def test_deleted_events_show_as_cancelled(fake: GoogleFake, api: httpx.AsyncClient) -> None:
    created = (await api.post(EVENTS, json=timed("bye", 4))).json()
    token = (await api.get(EVENTS)).json()["nextSyncToken"]
    assert (await api.delete(f"{EVENTS}/{created['id']}")).status_code == 204
    full = (await api.get(EVENTS)).json()
    assert full["items"] == []
    with_deleted = (await api.get(EVENTS, params={"showDeleted": "true"})).json()
    assert [i["status"] for i in with_deleted["items"]] == ["cancelled"]
    delta = (await api.get(EVENTS, params={"syncToken": token})).json()["items"]
    assert delta == [{"kind": "calendar#event", "etag": delta[0]["etag"], "id": created["id"], "status": "cancelled"}]
    got = await api.get(f"{EVENTS}/{created['id']}")
    assert got.status_code == 200 and got.json()["status"] == "cancelled"
    twice = await api.delete(f"{EVENTS}/{created['id']}")
    assert twice.status_code == 410 and reason(twice) == "deleted"


async def test_if_match_and_send_updates(fake: GoogleFake, api: httpx.AsyncClient) -> None:
    created = (await api.post(EVENTS, params={"sendUpdates": "all"}, json=timed("x", 5))).json()
    url = f"{EVENTS}/{created['id']}"
    ok = await api.patch(url, json={"summary": "y"}, headers={"If-Match": created["etag"]})
    assert ok.status_code == 200 and ok.json()["etag"] != created["etag"]
    stale = await api.patch(url, json={"summary": "z"}, headers={"If-Match": created["etag"]})
    assert stale.status_code == 412 and reason(stale) == "conditionNotMet"
    assert (await api.get(url)).json()["summary"] == "y"
    assert (await api.delete(url, headers={"If-Match": created["etag"]})).status_code == 412
    assert ("insert", "", "all") in fake.send_updates


async def test_recurring_instances_and_exceptions(fake: GoogleFake, api: httpx.AsyncClient) -> None:
    series = (await api.post(EVENTS, json=timed("weekly", 6, recurrence=["RRULE:FREQ=WEEKLY;COUNT=4"]))).json()
    instance = f"{series['id']}_20300513T080000Z"
    moved = await api.patch(
        f"{EVENTS}/{instance}",
        json={
            "start": {"dateTime": "2030-05-13T11:00:00+01:00"},
            "end": {"dateTime": "2030-05-13T11:30:00+01:00"},
        },
    )
    assert moved.status_code == 200
    assert moved.json()["recurringEventId"] == series["id"]
    assert moved.json()["originalStartTime"]["dateTime"].startswith("2030-05-13T09:00:00")
    assert (await api.delete(f"{EVENTS}/{series['id']}_20300520T080000Z")).status_code == 204
    assert (await api.get(f"{EVENTS}/{series['id']}_20300514T080000Z")).status_code == 404
    listed = (await api.get(EVENTS)).json()["items"]
    assert sorted((i["id"], i["status"]) for i in listed) == sorted(
        [
            (series["id"], "confirmed"),
            (instance, "confirmed"),
            (f"{series['id']}_20300520T080000Z", "cancelled"),
        ]
    )
    busy = (
        await api.post(
            "/calendar/v3/freeBusy",
            json={
                "timeMin": "2030-05-01T00:00:00Z",
                "timeMax": "2030-06-01T00:00:00Z",
                "items": [{"id": PRIMARY}],
            },
        )
    ).json()
    starts = [b["start"] for b in busy["calendars"][PRIMARY]["busy"]]
    assert starts == ["2030-05-06T08:00:00Z", "2030-05-13T10:00:00Z", "2030-05-27T08:00:00Z"]


async def test_throttles_are_served_in_order(fake: GoogleFake, api: httpx.AsyncClient) -> None:
    fake.throttle(1, status=403, reason="userRateLimitExceeded")
    fake.throttle(1, status=429, retry_after="7")
    first, second, third = [await api.get(EVENTS) for _ in range(3)]
    assert (first.status_code, reason(first)) == (403, "userRateLimitExceeded")
    assert (second.status_code, second.headers["Retry-After"]) == (429, "7")
    assert third.status_code == 200


async def test_free_busy_names_unknown_calendars(api: httpx.AsyncClient) -> None:
    body = (
        await api.post(
            "/calendar/v3/freeBusy",
            json={
                "timeMin": "2030-05-01T00:00:00Z",
                "timeMax": "2030-05-02T00:00:00Z",
                "items": [{"id": "nobody@x"}],
            },
        )
    ).json()
    assert body["calendars"]["nobody@x"]["errors"][0]["reason"] == "notFound"


async def test_stopping_an_unknown_channel_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post("/calendar/v3/channels/stop", json={"id": "nope", "resourceId": "r"})
    assert response.status_code == 404
