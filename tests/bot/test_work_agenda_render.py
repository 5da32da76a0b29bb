"""Work-calendar events beside the agenda render in both front ends: valid Block Kit (slack_sdk's
models parse it back unchanged) and a valid Adaptive Card 1.5, apart from the appointments."""

from __future__ import annotations

from datetime import date

from bot.commands.actions import TrackEvent, UntrackEvent
from bot.slack import render
from bot.teams import cards
from bot.views import Agenda
from bot.views.models import WorkItem
from tests.bot.teams.test_schemas import CARD_SCHEMA
from tests.fakes.slack import check_blocks

DAY = Agenda("Today, Thu 5 Mar", date(2026, 3, 5), "Europe/London", (),
             work=(WorkItem("09:00–10:30", "Board <meeting> & *budget*", "Dr Lee", "W3-1a2b3c4d",
                            actions=(TrackEvent("W3-1a2b3c4d", date(2026, 3, 5)),)),
                   WorkItem("all day", "Conference", "Dr Ash", "W4-00ff00ff", "A-12",
                            actions=(UntrackEvent("W4-00ff00ff"),))),
             work_unavailable=("Outreach team",))


def test_slack_shows_work_events_in_their_own_section() -> None:
    _, blocks = render.message(DAY)
    check_blocks(blocks)
    [head] = [b for b in blocks if b.get("block_id") == "work"]
    assert head["text"]["text"] == "*Work calendars* (not appointments)"
    first, second = (b for b in blocks if str(b.get("block_id", "")).startswith("work:"))
    assert "Board &lt;meeting&gt; &amp;" in first["text"]["text"] and "`W3-1a2b3c4d`" in first["text"]["text"]
    assert first["accessory"]["action_id"] == "clinic.track" and first["accessory"]["text"]["text"] == "Track"
    assert second["text"]["text"].startswith("*all day*") and "tracked as `A-12`" in second["text"]["text"]
    assert second["accessory"]["text"]["text"] == "Untrack"
    [down] = [b for b in blocks if b.get("block_id") == "work_unavailable"]
    assert down["text"]["text"] == "_Outreach team could not be read just now_"
    assert blocks.index(head) > 1  # after the appointments


def test_teams_shows_work_events_apart_in_a_valid_card() -> None:
    card = cards.render(DAY)
    assert [f"{e.json_path}: {e.message[:200]}" for e in CARD_SCHEMA.iter_errors(card)] == []
    texts = [b.get("text", "") for b in card["body"]]
    assert "Work calendars (not appointments)" in texts and any("could not be read" in t for t in texts)
    work = [b for b in card["body"] if b.get("type") == "Container" and "Dr Ash" in str(b)]
    assert "Conference · Dr Ash  (W4-00ff00ff) · tracked as A-12" in work[0]["items"][0]["text"]
    [buttons] = [i for i in work[0]["items"] if i["type"] == "ActionSet"]
    assert buttons["actions"][0]["title"] == "Untrack" and buttons["actions"][0]["verb"] == "untrack"
