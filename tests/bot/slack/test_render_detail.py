"""An appointment's card and the cancel confirmation, built as plain JSON (like the agenda): slack_sdk's
models must parse each block back to exactly the same JSON, with every optional part and with text
past Slack's caps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.commands.actions import AskCancel, CancelConfirmed, OpenReschedule
from bot.slack import render
from bot.views import AgendaItem
from bot.views.models import AppointmentDetail, ConfirmCancel
from tests.fakes.slack import check_blocks

START = datetime(2026, 11, 21, 9, tzinfo=UTC)


def _item(client: str = "Jane <Roe> & Co", actions: bool = True) -> AgendaItem:
    return AgendaItem(
        appointment_id=7, ref="A-7", version=2, start=START, end=START + timedelta(minutes=30),
        time_label="09:00–09:30", practitioner="Dr Lee", client=client, service="Physio",
        status="no_show", actions=(OpenReschedule(7, 2), AskCancel(7, 2)) if actions else (),
    )  # fmt: skip


def test_a_full_card_parses_back_unchanged_and_says_everything() -> None:
    card = AppointmentDetail(item=_item(), date_label="Sat 21 Nov", location="Room 2", notes="knee <left>",
                             calendars=(("Front desk (primary)", "ok"), ("Dr Lee (mirror)", "pending")),
                             notice="Moved A-7 from Fri 20 Nov 09:00 to Sat 21 Nov 09:00.",
                             note="Repeats every week.", phone="+44 20 7946 0000")  # fmt: skip
    text, blocks = render.message(card)
    check_blocks(blocks)
    assert text.startswith("Moved A-7")
    assert [b["type"] for b in blocks] == ["section", "section", "context", "section", "context", "actions"]
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields[2] == "*Client*\nJane &lt;Roe&gt; &amp; Co" and fields[3] == "*Status*\nno show"
    assert any(f.startswith("*Phone*") for f in fields) and any(f == "*Where*\nRoom 2" for f in fields)
    assert "pending" in blocks[4]["elements"][0]["text"]
    assert [e["action_id"] for e in blocks[5]["elements"]] == ["clinic.reschedule", "clinic.cancel"]
    assert blocks[5]["elements"][1]["style"] == "danger"


def test_a_bare_card_and_text_past_the_caps() -> None:
    text, blocks = render.message(AppointmentDetail(item=_item(actions=False), date_label="Sat 21 Nov"))
    check_blocks(blocks)
    assert text == "A-7 Sat 21 Nov 09:00–09:30" and len(blocks) == 1
    _, long = render.message(AppointmentDetail(item=_item(client="X" * 5000), date_label="Sat 21 Nov",
                                               notes="N" * 5000, note="n" * 5000))  # fmt: skip
    check_blocks(long)
    assert all(len(f["text"]) <= 2000 for f in long[0]["fields"])
    assert len(long[1]["elements"][0]["text"]) <= 3000 and len(long[2]["text"]["text"]) <= 3000


def test_the_cancel_confirmation_parses_back_unchanged() -> None:
    ask = ConfirmCancel(appointment_id=7, ref="A-7", version=2, summary="A-7 · Sat 21 Nov 09:00 · Jane",
                        confirm=CancelConfirmed(7, 2, "ill"), reason="ill")  # fmt: skip
    text, blocks = render.message(ask)
    check_blocks(blocks)
    assert text == "Cancel A-7?" and "Reason: ill" in blocks[0]["text"]["text"]
    buttons = blocks[1]["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Yes, cancel it", "Keep it"] and buttons[0]["style"] == "danger"
    assert buttons[1]["action_id"] == "clinic.details"
