"""An error's example uses the appointment id the person typed, not the placeholder A-1042."""

from __future__ import annotations

import pytest

from bot.commands import ParseError, actions, handle, parse
from bot.views import Error
from sync.runtime.core import Core
from tests.bot.clinic import at, make_actor, seed


@pytest.mark.parametrize(
    "typed",
    [
        "reschedule A-55 frobday",
        "reschedule A-55",
        "reschedule a55 tomorrow 3pm 4pm",
        "cancel A-55 " + "x" * 600,
        "appointment A-55 extra",
    ],
)
def test_a_parse_error_shows_the_typed_id(typed: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(typed)
    assert "A-55" in caught.value.example and "1042" not in caught.value.example, caught.value.example


async def test_an_error_found_after_parsing_shows_the_typed_id(core: Core) -> None:
    c = await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    view = await handle(core, staff, actions.PickSlot(c.a_lee_10, 1, at(16), 9999))
    assert isinstance(view, Error) and "not in this practice" in view.message, view
    assert f"A-{c.a_lee_10} " in view.example and "1042" not in view.example, view.example


def test_without_an_id_the_placeholder_stays() -> None:
    with pytest.raises(ParseError) as caught:
        parse("reschedule")
    assert "A-1042" in caught.value.example
