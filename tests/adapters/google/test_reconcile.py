"""reconcile_mirror against the Google fake: a crash-retried create and a hand-deleted copy converge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.google.provider import GoogleCalendar
from sync.engine.plan import CalendarView, Canonical, LinkView, Policy
from sync.engine.reconcile import reconcile_mirror
from tests.adapters.google.conftest import PRIMARY
from tests.adapters.google.fakes.google import GoogleFake

START = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)
APPT = Canonical(id=41, practitioner_id=1, start=START, end=START + timedelta(minutes=45), title="Reiki",
                 client_name="Jo Doe", service="Reiki")
MIRROR = CalendarView(id=7, role="mirror", practitioner_id=1, practice_id=1)


def _live(fake: GoogleFake) -> list[dict[str, object]]:
    return [e.resource for e in fake.calendar(PRIMARY).events.values() if e.resource["status"] != "cancelled"]


async def test_a_create_retried_after_a_crash_links_the_copy_google_already_has(
    fake: GoogleFake, calendar: GoogleCalendar
) -> None:
    first = await reconcile_mirror(calendar, APPT, MIRROR, None, Policy())
    assert first.result == "linked" and first.item is not None
    retried = await reconcile_mirror(calendar, APPT, MIRROR, None, Policy())  # the link was never stored
    assert retried.result == "linked" and retried.item is not None
    assert retried.item.remote_id == first.item.remote_id and len(_live(fake)) == 1


async def test_a_copy_deleted_by_hand_is_recreated_when_the_practice_says_so(
    fake: GoogleFake, calendar: GoogleCalendar
) -> None:
    first = await reconcile_mirror(calendar, APPT, MIRROR, None, Policy())
    assert first.item is not None
    fake.server_delete(PRIMARY, first.item.remote_id)
    link = LinkView(id=1, appointment_id=APPT.id, calendar_id=MIRROR.id, remote_id=first.item.remote_id,
                    etag=first.item.etag, content_hash="stale")
    again = await reconcile_mirror(calendar, APPT, MIRROR, link, Policy(deleted_mirror="recreate"))
    assert again.result == "linked" and again.item is not None
    assert again.item.remote_id != first.item.remote_id and len(_live(fake)) == 1
