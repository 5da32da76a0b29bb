"""Sync on/off is one rule with one audit action, whether typed in chat or run from the CLI."""

from __future__ import annotations

from sqlalchemy import select

from bot.commands import handle, parse
from bot.views import Notice
from sync.runtime.core import Core
from sync.services.connections import set_calendar
from sync.store.model import AuditEntry, Calendar, Connection
from tests.bot.clinic import make_actor, seed


async def _audit(core: Core) -> list[AuditEntry]:
    async with core.store.session() as s:
        return list((await s.scalars(select(AuditEntry).where(AuditEntry.action.like("sync.%"))
                                     .order_by(AuditEntry.id))).all())


async def _enabled(core: Core, calendar_id: int) -> bool:
    async with core.store.session() as s:
        cal = await s.get(Calendar, calendar_id)
        assert cal is not None
        return cal.sync_enabled


async def test_cli_and_chat_switch_a_calendar_with_the_same_audit_action(core: Core) -> None:
    c = await seed(core)
    async with core.store.session() as s:
        conn = Connection(practice_id=c.practice_id, provider="caldav", account="lee@example.org", config={})
        s.add(conn)
        await s.flush()
        cal = Calendar(connection_id=conn.id, remote_id="cal1", name="Lee work", role="mirror")
        s.add(cal)
        await s.flush()
        mirror = cal.id
    admin = await make_actor(core, "UA", ("admin",))

    row = await set_calendar(core, mirror, sync_enabled=False, actor="cli:admin")
    assert row["sync_enabled"] is False and not await _enabled(core, mirror)
    view = await handle(core, admin, parse("sync on lee work"))
    assert isinstance(view, Notice) and "Lee work" in view.text and await _enabled(core, mirror)

    cli, chat = await _audit(core)
    assert (cli.action, cli.actor) == ("sync.off", "cli:admin")
    assert (chat.action, chat.actor) == ("sync.on", "slack:T1/UA")
    assert cli.details == chat.details == {"connections": [], "calendars": [mirror]}
