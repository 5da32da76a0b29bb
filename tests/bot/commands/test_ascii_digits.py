"""Only 0-9 are digits (issue 21): `\\d`, `isdigit()` and `int()` also take other scripts' digits
("١٠٤٢", "٣pm") and `isdigit()` takes superscripts ("²", which int() then refuses). A number typed,
posted or read with any of those is refused with the parser's own message, never read as a number
and never an unexpected exception.

Hypothesis takes a well-formed input and swaps one of its digits for another script's digit.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.kit.http import parse_retry_after
from bot.commands import ParseError, handle, parse
from bot.commands.when import parse_when
from bot.teams.transport import MAX_RETRY_AFTER, _retry_after
from bot.views import Error
from sync.engine.series import rule_problem
from sync.notify.reminders.commands import RemindError, parse_reminder_command
from sync.runtime.core import Core
from sync.services.appointments import InvalidAppointmentInput, parse_ref
from sync.store.model import Calendar, Connection
from tests.bot.clinic import make_actor, seed

#: Digits that are not 0-9: other scripts' decimal digits (Nd) and superscripts and the like (No).
OTHER_DIGIT = st.characters(categories=("Nd", "No")).filter(lambda c: c.isdigit() and not c.isascii())
FAST = settings(max_examples=60, deadline=None, database=None)


@st.composite
def with_other_digit(draw: st.DrawFn, template: str) -> str:
    """`template` with one of its ASCII digits replaced by a digit of another script."""
    places = [i for i, c in enumerate(template) if c.isascii() and c.isdigit()]
    i = draw(st.sampled_from(places))
    return template[:i] + draw(OTHER_DIGIT) + template[i + 1 :]


WHEN = ["tomorrow 3pm", "tomorrow 3:30pm", "mon 14:30", "4 mar", "mar 4 2027", "2027-03-04", "2027-03-04T14:30",
        "friday 9.15", "4th march 10:00"]  # fmt: skip
REMIND = ["24h 1h before", "90m", "1d", "agenda 07:30", "quiet 20:00-07:00"]
REFS = ["A-1042", "a1042", "1042"]
RULES = ["FREQ=DAILY;INTERVAL=2", "FREQ=WEEKLY;BYDAY=1MO;INTERVAL=3", "FREQ=DAILY;UNTIL=20270101"]
RETRY_AFTER = ["5", "120", "1.5"]


def test_the_templates_are_read_with_ascii_digits() -> None:
    for text in WHEN:
        parse_when(text)
    for text in REMIND:
        parse_reminder_command(text)
    assert [parse_ref(r) for r in REFS] == [1042, 1042, 1042]
    assert [rule_problem(r) for r in RULES] == [None, None, None]
    assert [parse_retry_after(v) for v in RETRY_AFTER] == [5.0, 120.0, 1.5]
    assert [_retry_after(v, 0) for v in RETRY_AFTER] == [5.0, MAX_RETRY_AFTER, 1.5]


@FAST
@given(st.sampled_from(WHEN).flatmap(with_other_digit))
def test_a_day_or_time_with_another_scripts_digit_is_refused(text: str) -> None:
    with pytest.raises(ParseError):
        parse_when(text)


def test_the_refusal_says_which_digits_to_use() -> None:
    with pytest.raises(ParseError, match="digits 0-9"):
        parse_when("tomorrow ٣pm")
    with pytest.raises(ParseError):
        parse("reschedule A-1042 tomorrow ١٤:٣٠")


@FAST
@given(st.sampled_from(REMIND).flatmap(with_other_digit))
def test_reminder_offsets_and_times_with_another_scripts_digit_are_refused(text: str) -> None:
    with pytest.raises(RemindError):
        parse_reminder_command(text)
    with pytest.raises(ParseError):
        parse(f"remind {text}")


@FAST
@given(st.sampled_from(REFS).flatmap(with_other_digit))
def test_appointment_references_with_another_scripts_digit_are_refused(text: str) -> None:
    with pytest.raises(InvalidAppointmentInput):
        parse_ref(text)
    with pytest.raises(ParseError, match="not an appointment id"):
        parse(f"cancel {text}")


@FAST
@given(st.sampled_from(RULES).flatmap(with_other_digit))
def test_a_recurrence_rule_with_another_scripts_digit_is_refused(rrule: str) -> None:
    assert rule_problem(rrule) is not None


@pytest.mark.parametrize("interval", ["1_0", "+2", "9" * 5000])
def test_an_interval_int_would_stretch_to_read_is_refused(interval: str) -> None:
    assert rule_problem(f"FREQ=DAILY;INTERVAL={interval}") == "INTERVAL is not a number"


@FAST
@given(st.sampled_from(RETRY_AFTER).flatmap(with_other_digit) | st.sampled_from(["nan", "inf", "1_0", "-inf"]))
def test_a_retry_after_that_is_not_ascii_seconds_is_not_a_number_of_seconds(value: str) -> None:
    assert parse_retry_after(value) is None  # not seconds, and not an HTTP date either
    assert 0 <= _retry_after(value, 1) <= MAX_RETRY_AFTER and _retry_after(value, 1) == 0.5  # the backoff


@pytest.mark.parametrize("ref", ["²", "١"])
async def test_a_connection_or_calendar_named_by_an_odd_number_is_not_found(core: Core, ref: str) -> None:
    """isdigit() took "²" and int() then raised; 5,000 digits raised too: both now find nothing."""
    clinic = await seed(core)
    admin = await make_actor(core, "UA", ("admin",))
    async with core.store.session() as s:
        conn = Connection(practice_id=clinic.practice_id, practitioner_id=clinic.lee, provider="ics",
                          account="feed.example", config={}, status="active")
        s.add(conn)
        await s.flush()
        s.add(Calendar(connection_id=conn.id, practitioner_id=clinic.lee, remote_id="c1", name="Lee", role="source"))
    window = await handle(core, admin, parse(f"window {ref} 30 180"))
    assert isinstance(window, Error) and "no connection is called" in window.message
    look = await handle(core, admin, parse(f"calendar {ref} projection busy"))
    assert isinstance(look, Error) and "no calendar is called" in look.message
