"""The Teams Sender for the bot-level ChatNotifier: a View as a proactive Adaptive Card DM.

Reminders, agenda and follow-ups reach Teams users through this (the scheduler's dispatcher
calls `core.services["notifier"]`, the ChatNotifier). The stored conversation reference is
used; when Teams hands back a new 1:1 reference, it is remembered for next time.
"""

from __future__ import annotations

from bot.teams import cards
from bot.teams.proactive import ProactiveSender, card_activity
from bot.views import Agenda, FollowUp, FollowUpRequest, ReminderCard, View
from sync import recipients
from sync.core import Core
from sync.model import ChatIdentity
from sync.notify import DeliveryError

__all__ = ["TeamsDMSender", "preview"]


def preview(view: View) -> str:
    """The notification preview line: what it is, never who the client is."""
    if isinstance(view, ReminderCard):
        return f"{view.headline} ({view.item.ref})"
    if isinstance(view, FollowUp):
        return f"How did {view.item.ref} go?"
    if isinstance(view, FollowUpRequest):
        return f"Please book a follow-up ({view.item.ref})"
    if isinstance(view, Agenda):
        return f"{view.title}: {len(view.items)} appointment{'s' if len(view.items) != 1 else ''}"
    return "clinicbot"


class TeamsDMSender:
    def __init__(self, core: Core, sender: ProactiveSender) -> None:
        self.core = core
        self.sender = sender

    async def send(self, identity: ChatIdentity, view: View) -> None:
        """Post `view` to the person's conversation; raises DeliveryError."""
        ref = identity.conversation_ref
        if not ref:
            raise DeliveryError("this person has not talked to clinicbot in Teams yet", retryable=False)
        used = await self.sender.send(ref, card_activity(cards.render(view), preview(view)))
        if used != ref:
            async with self.core.store.session() as session:
                await recipients.store_conversation_ref(session, identity.id, used)
