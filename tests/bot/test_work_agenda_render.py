"""Work-calendar events beside the agenda render in both front ends: valid Block Kit (slack_sdk's
models parse it back unchanged) and a valid Adaptive Card 1.5, apart from the appointments."""

from __future__ import annotations

from datetime import date

from bot.slack import render
from bot.teams import cards
from bot.views import Agenda
from bot.views.models import WorkItem
from tests.bot.teams.test_schemas import CARD_SCHEMA
from tests.fakes.slack import check_blocks

DAY = Agenda("Today, Thu 5 Mar", date(2026, 3, 5), "Europe/London", (),
             work=(WorkItem("09:00–10:30", "Board <meeting> & *budget*", "Dr Lee"),
                   WorkItem("all day", "Conference", "Dr Ash")),
             work_unavailable=("Outreach team",))


def test_slack_shows_work_events_in_their_own_section() -> None:
    _, blocks = render.message(DAY)
    check_blocks(blocks)
    [work] = [b for b in blocks if b.get("block_id") == "work"]
    lines = work["text"]["text"].split("\n")
    assert lines[0] == "*Work calendars* (not appointments)"
    assert "Board &lt;meeting&gt; &amp;" in lines[1] and lines[2].startswith("*all day*")
    assert lines[3] == "_Outreach team could not be read just now_"
    assert blocks.index(work) > 1  # after the appointments


def test_teams_shows_work_events_apart_in_a_valid_card() -> None:
    card = cards.render(DAY)
    assert [f"{e.json_path}: {e.message[:200]}" for e in CARD_SCHEMA.iter_errors(card)] == []
    texts = [b.get("text", "") for b in card["body"]]
    assert "Work calendars (not appointments)" in texts
    assert any("Conference · Dr Ash" in t for t in texts) and any("could not be read" in t for t in texts)
