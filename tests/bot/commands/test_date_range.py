"""Dates a person can type but the calendar cannot hold (year 9999, year 1): a clear error, not silence."""

from __future__ import annotations

import pytest

from bot.commands import actions, handle, parse
from bot.views import Error
from sync.runtime.core import Core
from tests.bot.clinic import make_actor, seed


@pytest.mark.parametrize(
    "text",
    [
        "31 Dec 9999",
        "9999-12-31",
        "1 Jan 0001",
        "0001-01-01",
        "1 Jan 2040",  # within what date() holds, beyond five years ahead
        "1 Jan 2020",  # more than a year back
    ],
)
async def test_an_agenda_for_a_day_out_of_range_says_so(core: Core, text: str) -> None:
    await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    try:
        command = parse(text)
    except Exception as exc:  # the grammar may refuse it outright: it must be its own error
        assert type(exc).__name__ == "ParseError", exc
        return
    view = await handle(core, staff, command)
    assert isinstance(view, Error) and view.kind == "input"
    assert "between" in view.message


@pytest.mark.parametrize(
    "when",
    ["9999-12-31 23:00", "9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+05:00", "31 Dec 9999 10:00", "1 Jan 1 9am"],
)
async def test_a_reschedule_to_an_impossible_year_says_so(core: Core, when: str) -> None:
    clinic = await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    try:
        command = parse(f"reschedule A-{clinic.a_lee_11} {when}")
    except Exception as exc:
        assert type(exc).__name__ == "ParseError", exc
        return
    view = await handle(core, staff, command)
    assert isinstance(view, Error) and view.kind == "input", view


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
async def test_the_reschedule_modal_with_an_impossible_year_says_so(core: Core, day: str) -> None:
    clinic = await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    submit = actions.decode("reschedule_submit", {"a": clinic.a_lee_11, "v": 1, "d": day, "t": "23:00"})
    view = await handle(core, staff, submit)
    assert not isinstance(view, Error) or view.kind == "input"
    assert "between" in str(getattr(view, "errors", {})) or (isinstance(view, Error) and "between" in view.message)


async def test_a_slot_button_for_year_9999_says_so(core: Core) -> None:
    clinic = await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    pick = actions.decode("pick_slot", {"a": clinic.a_lee_11, "v": 1, "s": "9999-12-31T23:30:00+00:00"})
    view = await handle(core, staff, pick)
    assert isinstance(view, Error) and "between" in view.message


async def test_an_unexpected_failure_still_answers(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a handler raises, the person gets an error view that says something."""
    from bot.commands import appointments

    await seed(core)
    staff = await make_actor(core, "US", ("staff",))

    async def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(appointments, "agenda", broken)
    view = await handle(core, staff, parse("today"))
    assert isinstance(view, Error) and "went wrong" in view.message
