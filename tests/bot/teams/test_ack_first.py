"""A turn slower than the endpoint's wait is acknowledged with 202 and still answered, through the connector."""

from __future__ import annotations

from bot.teams import TEAMS
from bot.teams.endpoint import MessagesEndpoint
from tests.bot.teams.conftest import Teams, activity


async def test_a_slow_turn_is_acknowledged_first_and_answered_after(teams: Teams) -> None:
    endpoint = teams.app[TEAMS]
    assert isinstance(endpoint, MessagesEndpoint)
    endpoint.ack_after = 0.0  # every turn is "slow": it needs the connector before it is done
    before = len(teams.connector.recorded.activities())
    status, _ = await teams.post(activity(teams.connector.service_url, text="help"))
    assert status == 202
    await endpoint.drain()
    answers = teams.connector.recorded.activities()[before:]
    assert answers and "help" in str(answers[-1]).lower()
