"""The Teams side of the bot-level Notifier: a Notification -> an Adaptive Card DM.

Consent outcomes are drawn here; any other kind this notifier is handed is shown from the text it
carries (reminders, agendas and notices reach Teams users through bot/notify's ChatNotifier and
bot/teams/sender.py, which render them as cards).
"""

from __future__ import annotations

import logging
from typing import Any

from bot.teams import cards
from bot.teams.consent import ConsentOutcome
from bot.teams.consent_flow import outcome_card
from bot.teams.proactive import ProactiveSender, card_activity
from bot.views import Notice, View
from sync.notify import recipients
from sync.runtime.core import Core
from sync.runtime.notifier import DeliveryError, Notification

__all__ = ["TeamsNotifier"]

log = logging.getLogger("clinicbot.teams.notify")

PLATFORM = "teams"


class TeamsNotifier:
    """Delivers notifications as proactive Teams messages (implements sync.runtime.notifier.Notifier)."""

    def __init__(self, core: Core, sender: ProactiveSender) -> None:
        self.core = core
        self.sender = sender

    async def notify(self, notification: Notification) -> None:
        """Send to every Teams recipient; raise DeliveryError if nobody could be reached."""
        targets = await recipients.reachable(self.core, notification, PLATFORM)
        if not targets:
            raise DeliveryError(f"nobody on Teams to receive this {notification.kind}", retryable=False)
        card, summary = await self._card(notification)
        errors: list[DeliveryError] = []
        for identity_id, ref in targets:
            if not ref:
                errors.append(
                    DeliveryError("this person has not talked to clinicbot in Teams yet", retryable=False)
                )
                continue
            try:
                used = await self.sender.send(ref, card_activity(card, summary))
            except DeliveryError as exc:
                errors.append(exc)
                continue
            if used != ref:
                await recipients.keep_reference(self.core, identity_id, used)
        log.info(
            "notification sent",
            extra={"kind": notification.kind, "targets": len(targets), "failed": len(errors)},
        )
        if len(errors) == len(targets):
            raise errors[0]

    async def _card(self, n: Notification) -> tuple[dict[str, Any], str]:
        if n.kind == "consent_result":
            outcome = ConsentOutcome(
                n.practice_id,
                n.chat_identity_id,
                bool(n.data.get("granted")),
                n.data.get("tenant_id"),
                n.data.get("error_code"),
                str(n.data.get("explanation", "")),
            )
            return outcome_card(outcome), "Admin consent " + ("granted" if outcome.granted else "not granted")
        view: View | None = None
        if n.data.get("text"):
            view = Notice(str(n.data["text"]), str(n.data.get("title", "")))
        if view is None:
            raise DeliveryError(f"no view for a {n.kind} notification", retryable=False)
        return cards.render(view), n.kind.replace("_", " ")

