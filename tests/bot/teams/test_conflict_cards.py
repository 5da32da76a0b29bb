"""Conflicts in Teams: the card validates as Adaptive Card 1.5, reaches the staff channel once
through the connector, and a staff member's Action.Execute decides it in place."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.commands.actions import AcceptCalendar, KeepBooking, OpenReschedule, ShowDetails
from bot.teams import cards
from bot.views import AgendaItem, ConflictCard, ConflictList, DoubleBookingCard
from sync.store.model import Link
from tests.bot.clinic import seed
from tests.bot.conflict_setup import hand_edited
from tests.bot.teams.conftest import Teams, activity, card_nodes
from tests.bot.teams.test_schemas import CARD_SCHEMA

START = datetime(2026, 3, 5, 14, 0, tzinfo=UTC)
OPEN = ConflictCard(7, 12, "A-12", "Dr Lee", "Physio", "Lee's Outlook", "Thu 5 Mar 14:00–14:30",
                    "Thu 5 Mar 15:00–15:30", actions=(KeepBooking(7), AcceptCalendar(7), ShowDetails(12)))
ITEM = AgendaItem(12, "A-12", 1, START, START, "14:00–14:30", "Dr Lee", "", "Physio", "confirmed",
                  (ShowDetails(12), OpenReschedule(12, 1)))
DOUBLE = DoubleBookingCard(8, "Dr Lee", ((ITEM, "booked on Calendly"),
                                         (ITEM.__class__(**{**{f: getattr(ITEM, f) for f in ITEM.__slots__},
                                                            "appointment_id": 13, "ref": "A-13"}), "booked on Jane")))


def _valid(card: dict[str, Any]) -> None:
    assert [f"{e.json_path}: {e.message[:200]}" for e in CARD_SCHEMA.iter_errors(card)] == []


def _verbs(card: dict[str, Any]) -> list[str]:
    return [node["verb"] for node in card_nodes(card, "Action.Execute")]


def test_conflict_cards_validate_and_carry_universal_actions() -> None:
    decided = ConflictCard(**{**{f: getattr(OPEN, f) for f in OPEN.__slots__},
                              "outcome": "Ann kept the booking", "actions": (ShowDetails(12),)})
    for view in (OPEN, decided, DOUBLE, ConflictList(()), ConflictList((OPEN, DOUBLE))):
        _valid(cards.render(view))
    assert _verbs(cards.render(OPEN)) == ["conflict_keep", "conflict_accept", "details"]
    assert _verbs(cards.render(decided)) == ["details"]
    assert _verbs(cards.render(DOUBLE)) == ["details", "reschedule"] * 2
    text = json.dumps(cards.render(OPEN))
    assert "Thu 5 Mar 14:00" in text and "Thu 5 Mar 15:00" in text and "Lee's Outlook" in text


async def test_conflict_reaches_the_staff_channel_once_and_is_decided_in_place(teams: Teams) -> None:
    clinic = await seed(teams.core)
    install = activity(teams.connector.service_url, type="installationUpdate", action="add", kind="channel")
    status, _ = await teams.post(install)  # the installer is the first admin; the channel is the staff channel
    assert status in (200, 201)
    channel = install["conversation"]["id"].split(";")[0]
    before = len(teams.connector.recorded.activities(channel))
    edit = await hand_edited(teams.core, clinic)
    await teams.core.services.conflict_notice_worker.settled()
    sent = teams.connector.recorded.activities(channel)[before:]
    assert len(sent) == 1
    card = sent[0]["attachments"][0]["content"]
    _valid(card)
    assert f"A-{edit.appointment_id}" in json.dumps(card) and "Jane" not in json.dumps(card)
    keep = next(b for b in card["actions"] if b["verb"] == "conflict_keep")

    def invoke(sender: int) -> dict[str, Any]:
        return activity(teams.connector.service_url, type="invoke", name="adaptiveCard/action", kind="channel",
                        sender=sender, value={"action": {"type": "Action.Execute", "verb": keep["verb"],
                                                         "data": keep["data"]}, "trigger": "manual"})

    status, body = await teams.post(invoke(2))  # someone without a role
    assert status == 200 and "no role" in json.dumps(body["value"])
    async with teams.core.store.session() as s:
        link = await s.get(Link, edit.link_id)
        assert link is not None and link.state == "conflict"
    status, body = await teams.post(invoke(1))
    assert status == 200
    _valid(body["value"])
    assert "kept the booking" in json.dumps(body["value"]) and "conflict_keep" not in _verbs(body["value"])
    status, body = await teams.post(invoke(1))
    assert "Already decided" in json.dumps(body["value"])
