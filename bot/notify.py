"""The bot-level Notifier (sync.runtime.notifier.Notifier): who gets a notification, and what they see.

`ChatNotifier.notify(notification)` finds the recipients' chat identities (a practitioner's, one
identity, or a practice's admins or staff), builds a View for each from the current database state
(a job carries ids, not data) with that person's permissions, and hands it to the platform's
`Sender` (Slack: bot.slack.notifier; Teams: bot.teams.sender). Front ends register their sender
in `core.services.notifier.senders[platform]`. Audience "staff" goes to the practice's staff
channel on a platform that has one stored, else as DMs to that platform's staff and admins.
"""

from __future__ import annotations

import logging
from typing import Protocol

from bot.commands import shift_day
from bot.commands.conflicts import notice_view
from bot.commands.dms import notification_view
from bot.commands.identity import Actor, actor_for_identity
from bot.commands.leads import lead_view
from bot.commands.present import appointment_detail
from bot.views import Error, Notice, Reconnect, View
from sync.notify.recipients import chat_recipients
from sync.runtime.core import Core
from sync.runtime.notifier import DeliveryError, Notification
from sync.services.appointment_views import NoPractice, load_details
from sync.services.appointments import AppointmentNotFound
from sync.services.identities import ChatPerson

__all__ = ["NOTIFIER_SERVICE", "ChatNotifier", "Sender", "chat_notifier", "view_for"]

log = logging.getLogger("clinicbot.notify")

NOTIFIER_SERVICE = "notifier"
CHAT_NOTIFIER_SERVICE = "chat_notifier"
_HEADLINES = {
    "reminder": "Reminder",
    "appointment_changed": "Appointment changed",
    "followup": "How did it go?",
    "conflict": "A calendar copy was edited by hand",
    "double_booking": "Double booking",
    "outside_shift": "Booked outside every shift",
}


class Sender(Protocol):
    async def send(self, identity: ChatPerson, view: View) -> None:
        """Deliver `view` to one person as a direct message, or raise DeliveryError."""
        ...


async def view_for(core: Core, n: Notification, actor: Actor) -> View:
    """What `actor` should see for notification `n`, read fresh from the database."""
    dm = await notification_view(core, n, actor)
    if dm is not None:
        return dm
    if n.kind == "reconnect":
        return Reconnect(
            connection_id=int(n.data.get("connection_id", 0)),
            provider=str(n.data.get("provider", "")),
            account=str(n.data.get("account", "")),
            url=n.data.get("url"),
            steps=tuple(str(s) for s in n.data.get("steps", ())),
        )
    if n.kind == "lead" and "lead_id" in n.data:
        return await lead_view(core, n.practice_id, int(n.data["lead_id"]))
    if n.kind in ("conflict", "double_booking") and "conflict_id" in n.data:
        return await notice_view(core, int(n.data["conflict_id"]))
    if n.appointment_ids:
        try:
            details = await load_details(core, n.practice_id, n.appointment_ids[0])
        except (AppointmentNotFound, NoPractice):
            return Error("That appointment no longer exists.", kind="not_found")
        headline = _HEADLINES.get(n.kind, "Update")
        if n.kind == "reminder" and "offset_minutes" in n.data:
            headline += f": starts in {int(n.data['offset_minutes'])} minutes"
        appt = details.view
        if n.kind == "outside_shift" and appt.practitioner_id is not None:
            near = await shift_day.shifts_near(core, n.practice_id, appt.practitioner_id, appt.start, appt.end,
                                               details.timezone)
            headline += f" of the practitioner (their shifts: {near})" if near else ""
        return appointment_detail(actor, details, notice=headline)
    return Notice(str(n.data.get("text") or n.kind.replace("_", " ")), title=str(n.data.get("title", "")))


class ChatNotifier:
    """Implements sync.runtime.notifier.Notifier over the registered platform senders."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.senders: dict[str, Sender] = {}

    async def notify(self, notification: Notification) -> None:
        """Deliver to every recipient on a platform we can reach; DeliveryError if nobody got it."""
        recipients = [(p, r) for p, r in await chat_recipients(self.core, notification) if p.platform in self.senders]
        if not recipients:
            raise DeliveryError(
                f"nobody to send a {notification.kind} to: no reachable chat identity", retryable=False
            )
        errors: list[DeliveryError] = []
        for identity, roles in recipients:
            view = await view_for(self.core, notification, actor_for_identity(identity, roles))
            try:
                await self.senders[identity.platform].send(identity, view)
            except DeliveryError as exc:
                log.warning(
                    "notification not delivered",
                    extra={"kind": notification.kind, "platform": identity.platform, "error": str(exc)},
                )
                errors.append(exc)
        if len(errors) == len(recipients):
            raise DeliveryError(str(errors[0]), retryable=any(e.retryable for e in errors))


def chat_notifier(core: Core) -> ChatNotifier:
    """The process's ChatNotifier, created on first use."""
    notifier = core.services.chat_notifier
    if not isinstance(notifier, ChatNotifier):
        notifier = ChatNotifier(core)
        core.services.chat_notifier = notifier
    # The process's notifier is the chat one unless an embedder or a test installed another.
    core.services.notifier = core.services.notifier or notifier
    return notifier
