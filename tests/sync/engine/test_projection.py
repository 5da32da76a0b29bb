"""Privacy projection of mirror copies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sync.engine.plan import CalendarView, Canonical, Policy
from sync.engine.projection import initials, mirror_uid, project

APPT = Canonical(id=42, practitioner_id=1, start=datetime(2026, 3, 2, 9, tzinfo=UTC),
                 end=datetime(2026, 3, 2, 9, 30, tzinfo=UTC), title="Jane van Roe - knee", client_name="Jane van Roe",
                 client_email="jane@example.org", notes="left knee pain", service="Physio", location_text="Room 2")


def view(projection: str, **kw: object) -> CalendarView:
    return CalendarView(5, "mirror", projection=projection, **kw)  # type: ignore[arg-type]


def test_busy_shows_nothing_but_the_practice_word() -> None:
    e = project(APPT, view("busy"), Policy(busy_word="Unavailable"), mirror_uid(42, 5))
    assert (e.summary, e.description, e.location, e.client_name, e.service) == ("Unavailable", "", "", None, None)
    assert e.clinicbot_id == "A-42" and e.uid == "cb42c5"


def test_initials_is_the_default_and_hides_the_name() -> None:
    e = project(APPT, view("unknown"), Policy(), "u")
    assert e.summary == "Physio (J.V.R.)"
    text = " ".join(str(v) for v in (e.summary, e.description, e.location, e.client_name, e.client_email))
    assert "Jane" not in text and "knee" not in text


def test_full_carries_details() -> None:
    e = project(APPT, view("full"), Policy(), "u")
    assert (e.summary, e.description, e.location, e.client_name) == (
        "Jane van Roe - knee", "left knee pain", "Room 2", "Jane van Roe")


def test_cancelled_and_show_as_free() -> None:
    from dataclasses import replace
    e = project(replace(APPT, status="cancelled"), view("busy", show_as_free=True), Policy(), "u")
    assert e.status == "cancelled" and e.summary == "Cancelled: Busy" and e.transparent
    assert project(replace(APPT, status="no_show"), view("busy"), Policy(), "u").status == "confirmed"


def test_initials_helper() -> None:
    assert initials("Mary-Ann O'Neil") == "M.A.O."
    assert initials(None) == "" and initials("  ") == ""
    assert project(Canonical(1, None, APPT.start, APPT.start + timedelta(hours=1)), view("initials"), Policy(),
                   "u").summary == "Appointment"
