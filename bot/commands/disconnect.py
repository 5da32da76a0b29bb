"""`disconnect <connection>` (admins): the account's webhook subscriptions are deleted at the platform
and the connection is forgotten; when the platform fails to delete one, the admin is told what it
answered and that clinicbot retries, and the connection no longer syncs meanwhile."""

from __future__ import annotations

from bot.commands.access import require_admin
from bot.commands.errors import ParseError
from bot.commands.grammar import Disconnect
from bot.commands.identity import Actor
from bot.views import Notice, View
from sync.runtime.core import Core
from sync.services.connections import ConnectionError_
from sync.services.removals import disconnect as disconnect_service

__all__ = ["disconnect"]


async def disconnect(core: Core, actor: Actor, cmd: Disconnect) -> View:
    """Disconnect the practice's connection named by id, integration or account."""
    require_admin(actor, "disconnect an account")
    try:
        removal = await disconnect_service(core, actor.practice_id, cmd.connection, actor=actor.audit_name)
    except ConnectionError_ as exc:
        raise ParseError(str(exc), "disconnect 3") from None
    what = f"{removal.provider} {removal.account}".strip()
    if removal.done:
        hooks = f" and its {removal.stopped} webhook subscription{'s' if removal.stopped != 1 else ''}" \
            if removal.stopped else ""
        return Notice(f"Connection {removal.connection_id} ({what}) is disconnected{hooks}. Its bookings stay in "
                      "the record; `connect` adds it again.", title="Disconnected")
    return Notice(
        f"Connection {removal.connection_id} ({what}) no longer syncs, but the platform did not delete "
        f"{removal.pending} webhook subscription{'s' if removal.pending != 1 else ''} ({'; '.join(removal.errors)}). "
        "clinicbot tries again every 10 minutes and forgets the connection when that works; `status` shows it "
        "as removing until then.", title="Disconnecting")
