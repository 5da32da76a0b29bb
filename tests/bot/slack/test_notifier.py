"""Practitioner DMs: conversations.open once, then chat.postMessage with valid blocks; errors mapped."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot.notify import ChatNotifier
from sync.runtime.notifier import DeliveryError, Notification
from sync.store.model import ChatIdentity
from tests.bot.clinic import make_actor
from tests.bot.slack.conftest import SlackClient
from tests.fakes.slack import check_blocks


async def test_reminder_dm_opens_the_conversation_once_and_posts_blocks(slack: SlackClient) -> None:
    c = slack.clinic
    await make_actor(slack.core, "UA", ("admin",))
    lee = await make_actor(slack.core, "ULEE", ("practitioner",), practitioner_id=c.lee)
    notifier = slack.core.services.notifier
    assert isinstance(notifier, ChatNotifier)
    n = Notification(
        "reminder",
        c.practice_id,
        practitioner_id=c.lee,
        appointment_ids=(c.a_lee_10,),
        data={"offset_minutes": 60},
    )
    await notifier.notify(n)
    await notifier.notify(n)
    [opened] = slack.fake.calls_to("conversations.open")
    assert opened.args["users"] == "ULEE"
    posts = slack.fake.calls_to("chat.postMessage")
    assert len(posts) == 2 and all(p.args["channel"] == "DULEE" for p in posts)
    check_blocks(posts[0].args["blocks"])
    assert "starts in 60 minutes" in json.dumps(posts[0].args["blocks"])
    async with slack.core.store.session() as s:
        ident = await s.get(ChatIdentity, lee.chat_identity_id)
        assert ident is not None and ident.conversation_ref == {"channel": "DULEE"}


async def test_delivery_errors_say_whether_to_retry(slack: SlackClient) -> None:
    c = slack.clinic
    await make_actor(slack.core, "ULEE", ("practitioner",), practitioner_id=c.lee)
    notifier = slack.core.services.notifier
    n = Notification("notice", c.practice_id, practitioner_id=c.lee, data={"text": "Hello"})
    slack.fake.rate_limit("conversations.open", retry_after=30)
    with pytest.raises(DeliveryError) as info:
        await notifier.notify(n)
    assert info.value.retryable
    slack.fake.fail("chat.postMessage", "invalid_auth")
    with pytest.raises(DeliveryError) as info:
        await notifier.notify(n)
    assert not info.value.retryable
    with pytest.raises(DeliveryError) as info:
        await notifier.notify(Notification("notice", c.practice_id, practitioner_id=c.kim))
    assert not info.value.retryable and "no reachable chat identity" in str(info.value)
    async with slack.core.store.session() as s:
        assert (await s.scalar(select(ChatIdentity.conversation_ref).where(ChatIdentity.user_id == "ULEE"))) == {
            "channel": "DULEE"
        }
