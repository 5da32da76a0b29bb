"""The agenda's Block Kit, built as plain JSON: slack_sdk's models must parse each block back to
exactly the same JSON, for every shape a day can take."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot.commands.actions import AskCancel, OpenReschedule, ShowDetails
from bot.slack import render
from bot.views import Agenda, AgendaItem
from tests.fakes.slack import check_blocks

START = datetime(2026, 11, 21, 9, tzinfo=UTC)


def _item(i: int, *, client: str = "Jane Roe", status: str = "confirmed", actions: bool = True) -> AgendaItem:
    start = START + timedelta(minutes=45 * i)
    buttons = (OpenReschedule(i, 3), AskCancel(i, 3), ShowDetails(i)) if actions else (ShowDetails(i),)
    return AgendaItem(
        appointment_id=i, ref=f"A-{i}", version=3, start=start, end=start + timedelta(minutes=30),
        time_label="09:00–09:30", practitioner="Dr <Lee> & Co", client=client, service="Physio & *massage*",
        status=status, actions=buttons,
    )  # fmt: skip


def _agenda(items: tuple[AgendaItem, ...], title: str = "Today, Sat 21 Nov") -> Agenda:
    return Agenda(title=title, day=date(2026, 11, 21), timezone="Europe/London", items=items)


def test_a_busy_day_parses_back_unchanged() -> None:
    day = _agenda(tuple(_item(i, status="tentative" if i % 2 else "confirmed", actions=i % 3 != 0) for i in range(8)))
    text, blocks = render.message(day)
    check_blocks(blocks)
    assert text == "Today, Sat 21 Nov" and len(blocks) == 1 + 8 * 2 + 1
    assert "&lt;Lee&gt; &amp; Co" in blocks[1]["text"]["text"] and "_tentative_" in blocks[3]["text"]["text"]
    assert [e["action_id"] for e in blocks[4]["elements"]] == ["clinic.reschedule", "clinic.cancel", "clinic.details"]
    assert blocks[4]["elements"][1]["style"] == "danger" and "style" not in blocks[4]["elements"][2]


def test_an_empty_day_a_long_title_and_a_day_over_the_block_cap() -> None:
    _, empty = render.message(_agenda((), title="T" * 400))
    check_blocks(empty)
    assert len(empty[0]["text"]["text"]) == 150 and empty[1]["text"]["text"] == "No appointments."
    _, full = render.message(_agenda(tuple(_item(i, client="X" * 5000) for i in range(30))))
    check_blocks(full)
    assert len(full) <= 50 and "8 more not shown" in full[-1]["elements"][0]["text"]
    assert all(len(b["text"]["text"]) <= 3000 for b in full if b["type"] == "section")
