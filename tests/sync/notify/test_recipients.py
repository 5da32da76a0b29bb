"""Channels the bot is added to: two activities storing the same channel at once both succeed."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, func, select

from sync.notify import recipients
from sync.runtime.core import Core
from sync.services.practices import default_practice
from sync.store.model import ChatIdentity, Practice

REF = {"conversation": {"id": "19:front-desk@thread.tacv2", "conversationType": "channel"}}


async def test_the_same_channel_stored_by_two_transactions_at_once_is_one_row(core: Core) -> None:
    async with core.store.session() as s:
        practice_id = (await default_practice(s)).id
    second_read_done = asyncio.Event()

    async def second() -> recipients.RememberedChannel:
        async with core.store.session() as s:
            conn = await s.connection()

            def writing(_c: object, _cur: object, statement: str, *_: object) -> None:
                # The second transaction has looked for the channel (and not found it) and now writes it.
                sql = statement.lstrip().upper()
                if sql.startswith("INSERT") and "CHAT_IDENTITY" in sql:
                    second_read_done.set()

            event.listen(conn.sync_connection, "before_cursor_execute", writing)
            return await recipients.remember_channel(
                s, practice_id, "teams", "tenant", REF["conversation"]["id"], "Front desk", REF
            )

    async with core.store.session() as s:
        first = await recipients.remember_channel(
            s, practice_id, "teams", "tenant", REF["conversation"]["id"], "Front desk", REF
        )
        task = asyncio.create_task(second())
        await second_read_done.wait()
    later = await task  # before the fix: IntegrityError on uq_chat_identity_user
    assert first.created and not later.created
    assert later.channel.id == first.channel.id
    async with core.store.session() as s:
        count = await s.scalar(select(func.count()).select_from(ChatIdentity).where(ChatIdentity.platform == "teams"))
        practice = await s.get(Practice, practice_id)
        assert count == 1
        assert practice is not None and practice.settings[recipients.STAFF_CHANNEL_KEY]["teams"] == first.channel.id
