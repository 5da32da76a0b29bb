"""The convergence property with a real provider on the mirror: GraphCalendar against the loopback
fake Graph, GoogleCalendar against the loopback fake Google. The source stays a MemoryCalendar.

Rules: source create/edit/cancel, chat reschedule/cancel, hand edits and deletes made directly in the
fake's store (a person in Outlook / Google Calendar), injected 429/503 from the fake, syncs and outbox
runs with crashes at checkpoints. Settling checks every active appointment is on the mirror exactly
once with its projected content (read back through the provider's changes(None)) and the audit chain
verifies. Each fake runs once per module on its own thread and loop; every example gets a fresh
mailbox / calendar, so the store is empty per example.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from adapters.google.provider import GoogleCalendar
from adapters.graph import GraphTransports, open_calendar
from adapters.kit.http import RetryPolicy
from sync.contract import CalendarProvider, ConnectionInfo
from sync.contract.items import Window
from sync.engine.plan import Policy
from sync.store.model import Calendar, Connection
from tests.adapters.google.fakes.google import GoogleFake
from tests.adapters.google.fakes.google_store import parse_rfc3339, rfc3339
from tests.adapters.graph.conftest import CLIENT_ID, CLIENT_SECRET, TENANT, sign_in
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import GraphError, format_time
from tests.conftest import settings_with
from tests.sync.engine.convergence import CalendarSourceMachine
from tests.sync.helpers import NOW, Clinic, make_clinic

CHECK_WINDOW = Window(NOW - timedelta(days=60), NOW + timedelta(days=120))


class FailingGraph(GraphFake):
    """The fake Graph with queued failures: the next mailbox operations answer 429/503."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[tuple[int, float]] = []

    async def _route(self, req: Any) -> Any:
        if self.failures and req.path.strip("/").split("/")[:1] != ["subscriptions"]:
            status, retry_after = self.failures.pop(0)
            code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
            raise GraphError(status, code, "injected", {"Retry-After": str(int(retry_after))})
        return await super()._route(req)


class ServerThread:
    """An event loop on its own thread, running one fake for the whole module."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Servers:
    graph: FailingGraph
    google: GoogleFake


@pytest.fixture(scope="module", autouse=True)
def _fakes() -> Iterator[None]:
    thread = ServerThread()
    graph = FailingGraph()
    thread.call(graph.start())
    graph.login.register_app(CLIENT_ID, CLIENT_SECRET)
    google = GoogleFake()
    thread.call(google.start())
    Servers.graph, Servers.google = graph, google
    try:
        yield
    finally:
        thread.call(graph.stop())
        thread.call(google.close())
        thread.stop()


class Saved:
    def __init__(self, holder: dict[str, Any]) -> None:
        self.holder = holder

    async def __call__(self, document: dict[str, Any]) -> None:
        self.holder["creds"] = document


class FakeMirrorConvergence(CalendarSourceMachine):
    """One source (memory) and one mirror on a real provider; subclasses choose the provider."""

    prefix = "cb-convf-"
    counter = 0

    def __init__(self) -> None:
        super().__init__()
        type(self).counter += 1
        self.n = type(self).counter

    # ---- the mirror, per provider -------------------------------------------------------------
    def open_mirror(self) -> None:
        raise NotImplementedError

    def mirror_provider(self) -> CalendarProvider:
        raise NotImplementedError

    def mirror_ids(self) -> list[str]:
        raise NotImplementedError

    def hand_shift(self, rid: str, minutes: int) -> None:
        raise NotImplementedError

    def hand_delete(self, rid: str) -> None:
        raise NotImplementedError

    def inject(self, status: int, retry_after: float) -> None:
        raise NotImplementedError

    def clear_failures(self) -> None:
        raise NotImplementedError

    def factory(self, conn: Connection, cal: Calendar) -> CalendarProvider:
        if cal.remote_id == "mirror0":
            return self.mirror_provider()
        return Clinic.factory(self.clinic, conn, cal)

    def provider_factory(self) -> Callable[[Connection, Calendar], CalendarProvider]:
        return self.factory

    @initialize(cancel_mode=st.sampled_from(["cancel", "delete"]), deleted=st.sampled_from(["recreate", "leave"]))
    def setup(self, cancel_mode: str, deleted: str) -> None:
        practice = {"cancel_mode": cancel_mode, "deleted_mirror": deleted}
        self.clinic = self.run(make_clinic(self.core, practice, mirrors=1, projection="full"))
        self.open_mirror()
        self.core.services.provider_factory = self.factory
        self.policy = Policy.from_settings(practice)

    # ---- the world changes ------------------------------------------------------------------------
    @rule(data=st.data(), delete=st.booleans())
    def mirror_hand_edit(self, data: st.DataObject, delete: bool) -> None:
        ids = self.mirror_ids()
        if not ids:
            return
        rid = data.draw(st.sampled_from(sorted(ids)))
        if delete:
            self.hand_delete(rid)
        else:
            self.hand_shift(rid, 30)

    # ---- faults -------------------------------------------------------------------------------------
    @precondition(lambda self: self.injected < 6)
    @rule(status=st.sampled_from([429, 503]), retry_after=st.sampled_from([0, 120, 600]))
    def mirror_error(self, status: int, retry_after: float) -> None:
        self.injected += 1
        self.inject(status, retry_after)

    # ---- settle and check ---------------------------------------------------------------------------
    async def _settle(self) -> None:
        self.clear_failures()
        self.clinic.servers["source"].failures.clear()
        await self.settle_rounds(5)

    async def _check(self) -> None:
        appts = await self.check_source()
        provider = self.mirror_provider()
        try:
            listing = await provider.changes(None, CHECK_WINDOW)
        finally:
            await provider.aclose()
        items = [i for i in listing.items if i.event is not None and i.event.status != "cancelled"]
        # The provider's read-back differs in uid / zone naming, so compare what a person sees.
        self.check_copies("mirror0", items, appts.values(), await self.view("mirror0"), self.policy, seen=_seen)


def _seen(ev: Any) -> tuple[Any, ...]:
    return (ev.start.astimezone(UTC), ev.end.astimezone(UTC), ev.summary, ev.status)


class GraphMirror(FakeMirrorConvergence):
    def open_mirror(self) -> None:
        fake = Servers.graph
        fake.failures.clear()
        self.mbx = fake.add_user(f"dr.lee{self.n}@clinic.example", tenant_id=TENANT)
        self.gsettings = settings_with(graph_url=fake.url, graph_client_id=CLIENT_ID,
                                       graph_client_secret=CLIENT_SECRET)
        self.creds: dict[str, Any] = {"creds": self.run(sign_in(fake, self.gsettings, self.mbx.user.upn))}

    def mirror_provider(self) -> CalendarProvider:
        fake = Servers.graph
        conn = ConnectionInfo(provider="graph", account=self.mbx.user.upn, config={},
                              credentials=self.creds["creds"], save_credentials=Saved(self.creds),
                              transport=GraphTransports(login=fake.login.http_client(fake.url)))
        return open_calendar(conn, "me/calendar", self.gsettings)

    def mirror_ids(self) -> list[str]:
        return list(self.mbx.default_calendar.events)

    def hand_shift(self, rid: str, minutes: int) -> None:
        ev = self.mbx.default_calendar.events[rid]
        delta = timedelta(minutes=minutes)
        Servers.graph.edit_event(self.mbx, rid, {"start": format_time(ev.start + delta, ev.start_zone),
                                                 "end": format_time(ev.end + delta, ev.end_zone)})

    def hand_delete(self, rid: str) -> None:
        Servers.graph.remove_event(self.mbx, rid)

    def inject(self, status: int, retry_after: float) -> None:
        Servers.graph.failures.append((status, retry_after))

    def clear_failures(self) -> None:
        Servers.graph.failures.clear()


class GoogleMirror(FakeMirrorConvergence):
    def open_mirror(self) -> None:
        fake = Servers.google
        fake.throttles.clear()
        self.cal_id = f"mirror{self.n}@group.calendar.example"
        fake.add_calendar(self.cal_id, "Mirror", time_zone="Europe/London")
        self.gsettings = settings_with(
            google_api_url=fake.url, google_oauth_url=fake.url,
            google_auth_url=f"{fake.url}/o/oauth2/v2/auth", google_client_id=fake.oauth.client_id,
            google_client_secret=fake.oauth.client_secret, public_url="https://clinic.example.org")
        self.creds = {"creds": fake.oauth.grant()}

    def mirror_provider(self) -> CalendarProvider:
        conn = ConnectionInfo(provider="google", account="primary-owner@example.org", config={},
                              credentials=self.creds["creds"], save_credentials=Saved(self.creds))

        async def no_sleep(seconds: float) -> None:
            return None
        return GoogleCalendar(conn, self.cal_id, self.gsettings, policy=RetryPolicy(attempts=3, backoff=0.0),
                              sleep=no_sleep, page_size=5)

    def _live(self) -> dict[str, Any]:
        cal = Servers.google.calendar(self.cal_id)
        return {k: v.resource for k, v in cal.events.items() if v.resource.get("status") != "cancelled"}

    def mirror_ids(self) -> list[str]:
        return list(self._live())

    def hand_shift(self, rid: str, minutes: int) -> None:
        res = self._live()[rid]
        delta = timedelta(minutes=minutes)
        changes = {}
        for key in ("start", "end"):
            value = dict(res[key])
            if "dateTime" not in value:
                return
            value["dateTime"] = rfc3339(parse_rfc3339(value["dateTime"], key) + delta)
            changes[key] = value
        Servers.google.server_patch(self.cal_id, rid, changes)

    def hand_delete(self, rid: str) -> None:
        Servers.google.server_delete(self.cal_id, rid)

    def inject(self, status: int, retry_after: float) -> None:
        reason = "rateLimitExceeded" if status == 429 else "backendError"
        Servers.google.throttle(1, status=status, reason=reason, retry_after=str(int(retry_after)),
                                path=f"/calendars/{self.cal_id}")

    def clear_failures(self) -> None:
        Servers.google.throttles.clear()


_SETTINGS = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_CONVERGENCE_FAKE_EXAMPLES", "8")), stateful_step_count=10,
    deadline=None, derandomize=os.environ.get("CI", "").lower() in ("1", "true", "yes"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
GraphMirror.TestCase.settings = _SETTINGS
GoogleMirror.TestCase.settings = _SETTINGS
TestGraphMirrorConvergence = GraphMirror.TestCase
TestGoogleMirrorConvergence = GoogleMirror.TestCase
