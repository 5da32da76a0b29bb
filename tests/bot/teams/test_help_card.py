"""The help card as Teams shows it: placeholders survive Teams' markup, the wording is Teams' own,
and a `/clinic` typed out of Slack habit still works."""

from __future__ import annotations

from typing import Any

from bot.commands import parse
from bot.commands.admin import help_view
from bot.commands.grammar import ShowHelp
from bot.slack import render as slack_render
from bot.teams import cards
from tests.bot.teams.conftest import Teams, activity, card_nodes, mention_text


def _texts(card: dict[str, Any]) -> list[str]:
    return [node["text"] for node in card_nodes(card, "TextBlock")]


def test_placeholders_are_escaped_so_teams_does_not_read_them_as_html() -> None:
    texts = _texts(cards.render(help_view(ShowHelp())))
    assert not [t for t in texts if "<" in t or ">" in t], "Teams drops anything that looks like an HTML tag"
    assert any("reschedule &lt;id&gt;" in t for t in texts), texts


def test_each_platform_is_told_its_own_way_to_type_a_command() -> None:
    view = help_view(ShowHelp())
    teams_intro = " ".join(_texts(cards.render(view))[:3])
    assert "/clinic" not in teams_intro and "@mention" in teams_intro
    _, blocks = slack_render.message(view)
    assert "/clinic &lt;command&gt;" in str(blocks)


async def test_a_leading_slash_clinic_is_accepted_in_teams(teams: Teams) -> None:
    for text, extra in (
        ("/clinic help", {}),
        ("/CLINIC whoami", {}),
        mention_text("/clinic help"),
    ):
        kw: dict[str, Any] = {"kind": "channel", "entities": extra} if extra else {}
        act = activity(teams.connector.service_url, text=text, **kw)
        status, _ = await teams.post(act)
        assert status in (200, 201)
        card = teams.connector.recorded.activities(act["conversation"]["id"])[-1]["attachments"][0]["content"]
        assert "I don't know" not in str(card) and "Attention" not in str(card), (text, card)
    assert parse("help")  # the grammar itself stays prefix-free
