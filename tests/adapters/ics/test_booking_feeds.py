"""Booking systems' feeds (synthetic Jane-like and SimplePractice-like fixtures): client and service
come from the SUMMARY pattern, ATTENDEE and CATEGORIES; the SUMMARY stays the title."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.ics.bookings import split_summary
from adapters.ics.feed import parse_feed

FIXTURES = Path(__file__).parent / "fixtures"


def _by_uid(name: str, pattern: str = "auto") -> dict[str, tuple[str | None, str | None, str | None, str]]:
    events, _, _ = parse_feed((FIXTURES / name).read_bytes(), pattern=pattern)
    return {e.uid: (e.client_name, e.client_email, e.service, e.summary) for e in events}


def test_a_jane_like_feed_names_service_then_client() -> None:
    found = _by_uid("jane_like.ics")
    assert found["jane-appt-1001@booking.example"] == (
        "Jane Roe", None, "Physiotherapy Follow-Up", "Physiotherapy Follow-Up - Jane Roe")
    assert found["jane-appt-1002@booking.example"][:3] == ("John Doe", None, "Massage Therapy")
    assert found["jane-break-1@booking.example"][:3] == (None, None, None)  # "Lunch": a title only


def test_a_simplepractice_like_feed_names_the_client_attendee_and_the_category() -> None:
    found = _by_uid("simplepractice_like.ics")
    # The attendee who is not the organizer (the chair) is the client; the parenthesis is the service.
    assert found["sp-2001@ehr.example"][:3] == ("Ann Other", "ann.other@client.example", "Intake Session")
    # A bare "Appointment": client from the attendee, service from the first category.
    assert found["sp-2002@ehr.example"] == ("Max Example", "max@client.example", "Couples Therapy", "Appointment")


def test_the_pattern_is_chosen_per_feed() -> None:
    found = _by_uid("jane_like.ics", pattern="client-service")
    assert found["jane-appt-1001@booking.example"][:3] == ("Physiotherapy Follow-Up", None, "Jane Roe")
    assert _by_uid("jane_like.ics", pattern="title")["jane-appt-1001@booking.example"][:3] == (None, None, None)


@pytest.mark.parametrize(("summary", "pattern", "expected"), [
    ("Physio - Jane Roe", "auto", ("Jane Roe", "Physio")),
    ("Physio – Jane Roe", "service-client", ("Jane Roe", "Physio")),
    ("Jane Roe (Physio)", "auto", ("Jane Roe", "Physio")),
    ("Jane Roe (Physio)", "service-client", (None, None)),
    ("Jane Roe - Physio", "client-service", ("Jane Roe", "Physio")),
    ("Anne-Marie Smith", "auto", (None, None)),  # a hyphen inside a name is not a separator
    ("Physio - Jane - Roe", "auto", (None, None)),  # ambiguous: left as a title
    ("", "auto", (None, None)),
])
def test_summary_shapes(summary: str, pattern: str, expected: tuple[str | None, str | None]) -> None:
    assert split_summary(summary, pattern) == expected


def test_clinicbots_own_properties_still_win() -> None:
    body = (FIXTURES / "jane_like.ics").read_bytes().replace(
        b"SUMMARY:Massage Therapy: John Doe\r\n",
        b"SUMMARY:Massage Therapy: John Doe\r\nX-CLINICBOT-CLIENT-NAME:J. Doe\r\nX-CLINICBOT-SERVICE:Massage\r\n")
    events, _, _ = parse_feed(body)
    [event] = [e for e in events if e.uid == "jane-appt-1002@booking.example"]
    assert (event.client_name, event.service) == ("J. Doe", "Massage")
