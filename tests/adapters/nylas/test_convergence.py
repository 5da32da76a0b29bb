"""The convergence machine (tests/sync/engine/test_convergence_fakes.py) with NylasCalendar on the
mirror, against the loopback fake Nylas: source edits, chat changes, hand edits and deletes in the
work calendar, injected 429/503 and crashes at checkpoints all settle with every appointment on
the mirror exactly once (a retried create finds its copy by metadata_pair)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from adapters.kit.http import RetryPolicy
from adapters.nylas.provider import NylasCalendar
from sync.contract import CalendarProvider, ConnectionInfo
from tests.adapters.nylas.fakes.nylas import Grant, NylasFake
from tests.conftest import settings_with
from tests.sync.engine.test_convergence_fakes import _SETTINGS, FakeMirrorConvergence, ServerThread


class Server:
    fake: NylasFake


@pytest.fixture(scope="module", autouse=True)
def _fake() -> Iterator[None]:
    thread = ServerThread()
    Server.fake = NylasFake()
    thread.call(Server.fake.start())
    try:
        yield
    finally:
        thread.call(Server.fake.close())
        thread.stop()


class NylasMirror(FakeMirrorConvergence):
    def open_mirror(self) -> None:
        fake = Server.fake
        fake.failures.clear()
        self.grant: Grant = fake.add_grant(f"dr.lee{self.n}@work.example", "microsoft")
        self.cal_id = next(iter(self.grant.calendars))
        self.nsettings = settings_with(nylas_api_url=fake.url, nylas_client_id=fake.client_id,
                                       nylas_api_key=fake.api_key)

    def mirror_provider(self) -> CalendarProvider:
        conn = ConnectionInfo(provider="nylas", account=self.grant.email, config={"grant_id": self.grant.id},
                              credentials={"grant_id": self.grant.id})
        # No transport retries: a 429/503 goes back to the outbox, which waits on the machine's clock.
        return NylasCalendar(conn, self.cal_id, self.nsettings, policy=RetryPolicy(attempts=1), page_size=5)

    def mirror_ids(self) -> list[str]:
        return list(Server.fake.live_events(self.grant, self.cal_id))

    def hand_shift(self, rid: str, minutes: int) -> None:
        when = dict(Server.fake.live_events(self.grant, self.cal_id)[rid]["when"])
        if when.get("object") != "timespan":
            return
        delta = int(timedelta(minutes=minutes).total_seconds())
        when["start_time"] += delta
        when["end_time"] += delta
        Server.fake.server_edit(self.grant, self.cal_id, rid, {"when": when})

    def hand_delete(self, rid: str) -> None:
        Server.fake.server_delete(self.grant, self.cal_id, rid)

    def inject(self, status: int, retry_after: float) -> None:
        kind = "rate_limit_error" if status == 429 else "provider_error"
        Server.fake.fail(status, kind, "injected", retry_after=str(int(retry_after)), path=self.grant.id)

    def clear_failures(self) -> None:
        Server.fake.failures.clear()

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            if hasattr(self, "grant"):  # each example's grant goes with it: the fake stays small
                Server.fake.grants.pop(self.grant.id, None)


NylasMirror.TestCase.settings = _SETTINGS
TestNylasMirrorConvergence = NylasMirror.TestCase
