"""Telling people that a connection's sign-in expired: the reconnect card, once per expiry.

The sync and the outbox mark a connection `auth_expired` when its platform answers AuthExpired
(a revoked token, an expired Nylas grant); that change happens once, in their transaction, and
after it commits they call `tell_reconnect`. The card goes to the person who connected the
account when known (their own calendar), else to the practice's admins, and says how to sign in
again: `connect <word>` in chat revives the same connection (sync.integrations.connect).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sync.contract import Refused
from sync.contract.troubleshooting import advice
from sync.integrations import registry
from sync.runtime.core import Core
from sync.runtime.notifier import DeliveryError, Notification
from sync.store.model import Connection, Practice

__all__ = ["ExpiredConnection", "tell_reconnect"]

log = logging.getLogger("clinicbot.reconnect")


@dataclass(frozen=True, slots=True)
class ExpiredConnection:
    """The values the card needs, taken inside the transaction that marked the connection expired."""

    connection_id: int
    practice_id: int
    provider: str
    account: str
    chat_identity_id: int | None
    #: What the provider said last (the connection's last error), for the troubleshooting words.
    last_error: str = ""

    @classmethod
    def of(cls, conn: Connection) -> ExpiredConnection:
        chat = (conn.config or {}).get("chat_identity_id")
        return cls(conn.id, conn.practice_id, conn.provider, conn.account, chat if isinstance(chat, int) else None,
                   conn.last_error or "")


async def _alarm_goes_to_a_channel(core: Core, practice_id: int) -> bool:
    if core.services.alarm_worker is None:
        return False
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id)
        return bool(practice is not None and (practice.settings or {}).get("staff_channel"))


def _word(provider: str) -> str:
    try:
        return registry.get(provider).chat_word
    except Refused:
        return provider


async def tell_reconnect(core: Core, expired: ExpiredConnection) -> None:
    """Send the reconnect card; a notifier that is missing or fails is logged, never raised.

    Where the alarm loop runs (sync.notify.alarms) and the practice has a staff channel, the alarm tells
    the expiry there, once per incident and with a recovery notice: no second message is sent here.
    """
    notifier: Any = core.services.notifier
    if notifier is None or await _alarm_goes_to_a_channel(core, expired.practice_id):
        return
    steps = [f"Type `connect {_word(expired.provider)}` and sign in again as {expired.account or 'before'}: "
                      "the connection keeps its calendars and settings."]
    found = advice(expired.last_error)
    if found is not None:  # a failure the person (or their IT) must fix first: said before signing in again
        steps.insert(0, f"First, {found.title}: {found.words}")
    data = {"connection_id": expired.connection_id, "provider": expired.provider, "account": expired.account,
            "steps": steps}
    if expired.chat_identity_id is not None:
        notice = Notification(kind="reconnect", practice_id=expired.practice_id,
                              chat_identity_id=expired.chat_identity_id, data=data)
    else:
        notice = Notification(kind="reconnect", practice_id=expired.practice_id, audience="admins", data=data)
    try:
        await notifier.notify(notice)
    except DeliveryError as exc:
        log.warning("reconnect card not delivered", extra={"connection": expired.connection_id,
                                                           "error": type(exc).__name__})
