"""The Teams Sender for the bot-level ChatNotifier: a View as a proactive Adaptive Card.

A person's or channel's stored conversation reference is used; when Teams hands back a new
(1:1) reference, it is remembered for next time.
"""

from __future__ import annotations

from bot.teams import cards
from bot.teams.proactive import ProactiveSender, card_activity
from bot.views import ConflictCard, DoubleBookingCard, View
from sync.notify import recipients
from sync.runtime.core import Core
from sync.runtime.notifier import DeliveryError
from sync.services.identities import ChatPerson

__all__ = ["TeamsSender"]


class TeamsSender:
    def __init__(self, core: Core, sender: ProactiveSender) -> None:
        self.core = core
        self.sender = sender

    async def send(self, identity: ChatPerson, view: View) -> None:
        """Post `view` to the identity's conversation; raises DeliveryError."""
        ref = identity.conversation_ref
        if not ref:
            raise DeliveryError("this person has not talked to clinicbot in Teams yet", retryable=False)
        used = await self.sender.send(ref, card_activity(cards.render(view), _summary(view)))
        if used != ref:
            await recipients.keep_reference(self.core, identity.id, used)


def _summary(view: View) -> str:
    """The notification preview line (no patient data)."""
    if isinstance(view, ConflictCard):
        return f"Calendar conflict on {view.ref}"
    if isinstance(view, DoubleBookingCard):
        return "Double booking: " + " and ".join(item.ref for item, _ in view.bookings)
    return "clinicbot"
