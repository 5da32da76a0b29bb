"""Disconnecting an account, from chat (`disconnect <connection>`) and the CLI (`connection remove`).

The platform's webhook subscriptions are deleted first (one already gone, a 404, is fine). When the
platform fails to delete one, the connection is not forgotten with a subscription still live at
the platform: it stays, sync off, with status "removing" and the subscription as a "stopping" row,
and `retry_removals` (the leader's periodic job) tries the delete again and forgets the connection
once nothing is left. The person is told which deletes failed and that they are retried. Either
way no sync or renewal starts for it, and its bookings stay in the record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from sync.integrations.push import stop_push
from sync.runtime.core import Core
from sync.services.connections import ConnectionError_, find_connection
from sync.store import audit
from sync.store.model import Calendar, Connection, WebhookSubscription

__all__ = ["RETRY_EVERY_SECONDS", "Removal", "disconnect", "remove_connection", "retry_removals"]

log = logging.getLogger("clinicbot.connections")

#: How often the leader retries the remote deletes of connections being removed.
RETRY_EVERY_SECONDS = 600


@dataclass(frozen=True, slots=True)
class Removal:
    """What a disconnect did: forgotten now, or kept until the platform deletes what is left."""

    connection_id: int
    provider: str
    account: str
    calendars: int
    stopped: int
    #: Subscriptions the platform failed to delete (retried), and what it answered.
    pending: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.pending == 0

    def as_row(self) -> dict[str, Any]:
        """The CLI's row (and JSON)."""
        return {"id": self.connection_id, "provider": self.provider, "account": self.account,
                "calendars": self.calendars, "push_channels_stopped": self.stopped,
                "pending_deletes": self.pending, "state": "removed" if self.done else "removing",
                "errors": self.errors}


async def remove_connection(core: Core, connection_id: int, *, actor: str) -> Removal:
    """Delete the connection's subscriptions at the platform, then forget it with its calendars; audited.

    Copies already written to its calendars stay there; appointments it booked stay in the record.
    """
    async with core.store.session() as s:
        conn = await s.get(Connection, connection_id)
        if conn is None:
            raise ConnectionError_(f"there is no connection {connection_id}; `clinicbot connection list` shows them")
        conn.sync_enabled = False  # no sync or push set-up starts while we stop its channels
        conn.status = "removing"
        provider, account, practice_id = conn.provider, conn.account, conn.practice_id
        calendars = len((await s.scalars(select(Calendar.id).where(Calendar.connection_id == conn.id))).all())
    stopped = await stop_push(core, connection_id, keep_failed=True)
    removal = Removal(connection_id, provider, account, calendars, stopped.stopped, stopped.failed,
                      list(stopped.errors))
    if removal.done:
        await _forget(core, connection_id, actor)
    else:
        async with core.store.session() as s:
            await audit.record(s, actor=actor, action="connection.remove_pending", practice_id=practice_id,
                               details={"connection_id": connection_id, "provider": provider,
                                        "pending": removal.pending})
        log.warning("connection kept until the platform deletes its subscriptions",
                    extra={"connection": connection_id, "pending": removal.pending})
    return removal


async def _forget(core: Core, connection_id: int, actor: str) -> bool:
    async with core.store.session() as s:
        conn = await s.get(Connection, connection_id)
        if conn is None:
            return False
        await audit.record(s, actor=actor, action="connection.remove", practice_id=conn.practice_id,
                           details={"connection_id": conn.id, "provider": conn.provider})
        await s.delete(conn)
    return True


async def disconnect(core: Core, practice_id: int, ref: str, *, actor: str) -> Removal:
    """`disconnect <connection>` in chat: the practice's connection named by id, integration or account."""
    return await remove_connection(core, await find_connection(core, practice_id, ref), actor=actor)


async def retry_removals(core: Core) -> None:
    """Periodic job: delete again what connections being removed still have at the platform; forget
    those with nothing left. One connection's failure never stops the others."""
    async with core.store.session() as s:
        ids = list((await s.scalars(select(Connection.id).where(Connection.status == "removing"))).all())
    forgotten = 0
    for connection_id in ids:
        try:
            await stop_push(core, connection_id, keep_failed=True)
            async with core.store.session() as s:
                left = await s.scalar(select(func.count()).select_from(WebhookSubscription)
                                      .where(WebhookSubscription.connection_id == connection_id))
            if not left and await _forget(core, connection_id, "system:removal"):
                forgotten += 1
        except Exception as exc:  # one connection's failure never stops the others
            log.warning("removal retry failed", extra={"connection": connection_id, "error": type(exc).__name__})
    if forgotten:
        log.info("connections removed after their subscriptions were deleted", extra={"count": forgotten})
