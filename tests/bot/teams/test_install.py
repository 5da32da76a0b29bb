"""Installing the bot: Teams sends installationUpdate and conversationUpdate together, and the
conversation gets one welcome card and no error."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from sync.store.model import ChatIdentity
from tests.bot.teams.conftest import BOT_MRI, Teams, activity

SORRY = "Something went wrong"


def _install_pair(t: Teams, kind: str) -> list[dict[str, Any]]:
    """The two activities a real Teams client sends when the bot is added to a conversation."""
    url = t.connector.service_url
    install = activity(url, type="installationUpdate", action="add", kind=kind)
    update = activity(
        url, type="conversationUpdate", kind=kind, membersAdded=[{"id": BOT_MRI, "name": "clinicbot"}]
    )
    for act in (install, update):  # Teams addresses the channel itself, not a thread
        act["conversation"]["id"] = act["conversation"]["id"].split(";")[0]
    return [install, update]


def _texts(t: Teams, conversation_id: str) -> list[str]:
    return [str(a.get("attachments", [{}])[0].get("content")) for a in t.connector.recorded.activities(conversation_id)]


async def _post_together(t: Teams, acts: list[dict[str, Any]]) -> None:
    results = await asyncio.gather(*(t.post(a) for a in acts))
    assert all(status in (200, 201, 202) for status, _ in results), results


async def test_channel_install_stores_the_channel_once_and_greets_once(teams: Teams) -> None:
    acts = _install_pair(teams, "channel")
    await _post_together(teams, acts)
    conversation_id = acts[0]["conversation"]["id"]
    texts = _texts(teams, conversation_id)
    assert not any(SORRY in text for text in texts), texts
    assert sum("What I can do" in text for text in texts) == 1, texts
    async with teams.core.store.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(ChatIdentity).where(ChatIdentity.user_id == "conversation:" + conversation_id)
        )
    assert count == 1


async def test_personal_install_greets_once(teams: Teams) -> None:
    acts = _install_pair(teams, "personal")
    await _post_together(teams, acts)
    texts = _texts(teams, acts[0]["conversation"]["id"])
    assert not any(SORRY in text for text in texts), texts
    assert sum("What I can do" in text for text in texts) == 1, texts


async def test_installing_again_later_does_not_greet_again(teams: Teams) -> None:
    acts = _install_pair(teams, "channel")
    for act in acts:
        status, _ = await teams.post(act)
        assert status in (200, 201)
    status, _ = await teams.post(_install_pair(teams, "channel")[0])
    assert status in (200, 201)
    texts = _texts(teams, acts[0]["conversation"]["id"])
    assert sum("What I can do" in text for text in texts) == 1, texts


async def test_a_member_without_an_id_is_skipped_and_the_others_are_remembered(teams: Teams, caplog: Any) -> None:
    """A garbled conversationUpdate (found by the fuzzer): a member with an empty id is nobody to
    remember; the turn does not fail, and the real member beside it is remembered for DMs."""
    url = teams.connector.service_url
    update = activity(url, type="conversationUpdate", kind="channel",
                      membersAdded=[{"id": ""}, {"id": "29:joined-user", "name": "Dee Joiner"}])
    caplog.set_level("ERROR")
    status, _ = await teams.post(update)
    assert status in (200, 201, 202)
    assert not [r for r in caplog.records if "Teams turn failed" in r.getMessage()]
    async with teams.core.store.session() as session:
        ids = set((await session.scalars(select(ChatIdentity.user_id))).all())
    assert "29:joined-user" in ids
    assert "" not in ids
