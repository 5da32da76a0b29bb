"""`connect outlook` in Teams: the admin-consent cards, and the outcome DM.

An admin gets a card whose "Grant admin consent" button opens the consent start page with a
state bound to them. Anyone else gets a card saying an admin must approve, and every admin of
the practice gets their own consent card by DM (each with their own state).
"""

from __future__ import annotations

import logging
from typing import Any

from bot.commands import Actor
from bot.teams import cards
from bot.teams.consent import PURPOSE, ConsentOutcome, start_url
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.services.consent import AdminContact, admins_to_ask, consent_granted, issue_consent_state, practice_tenant

__all__ = ["ConsentFlow"]

log = logging.getLogger("clinicbot.teams.consent")

Json = dict[str, Any]


def consent_card(url: str, requested_by: str | None = None) -> Json:
    """The admin's card with the "Grant admin consent" button."""
    body = [cards.text("Connect Outlook calendars", size="Medium", weight="Bolder")]
    if requested_by:
        body.append(
            cards.text(
                f"{requested_by} asked to connect Outlook calendars. This needs your approval as an admin."
            )
        )
    body += [
        cards.text(
            "clinicbot needs an administrator of your Microsoft 365 organisation to approve its access "
            "to calendars, once for the whole organisation."
        ),
        cards.text(
            "The button opens Microsoft's sign-in page. The link is yours alone and works once, for "
            "10 minutes.",
            isSubtle=True,
            size="Small",
        ),
    ]
    return cards.card(body, [cards.open_url("Grant admin consent", url)])


def pending_card(admins: int) -> Json:
    """What a non-admin sees."""
    who = "The practice's admins have" if admins else "No admin is known yet; an admin"
    tail = " been sent a request." if admins else " must send `connect outlook` themselves."
    return cards.card(
        [
            cards.text("An admin must approve this", size="Medium", weight="Bolder"),
            cards.text(
                "Connecting Outlook needs an administrator of your Microsoft 365 organisation to grant "
                "consent for clinicbot."
            ),
            cards.text(who + tail, isSubtle=True),
        ]
    )


def outcome_card(outcome: ConsentOutcome) -> Json:
    """The DM the admin gets after the consent page."""
    if outcome.granted:
        return cards.card(
            [
                cards.text("Admin consent granted", size="Medium", weight="Bolder", color="Good"),
                cards.text(outcome.explanation),
                cards.text("Next: `connect outlook` signs in the practice's calendars.", isSubtle=True),
            ]
        )
    return cards.card(
        [
            cards.text("Admin consent was not granted", size="Medium", weight="Bolder", color="Attention"),
            cards.text(outcome.explanation),
            cards.text(f"Microsoft's code: {outcome.error_code}", isSubtle=True, size="Small"),
        ],
        [cards.execute("Try again", "consent_retry", {})],
    )


class ConsentFlow:
    """Issues consent states and builds the cards; sending is the caller's (the bot's) job."""

    def __init__(self, core: Core, settings: Settings) -> None:
        self.core = core
        self.settings = settings

    async def tenant_of(self, practice_id: int) -> str | None:
        return await practice_tenant(self.core, practice_id)

    async def granted(self, practice_id: int) -> bool:
        return await consent_granted(self.core, practice_id)

    async def card_for_admin(
        self, practice_id: int, chat_identity_id: int, requested_by: str | None = None
    ) -> Json:
        """A consent card with a fresh state bound to this admin."""
        state = await issue_consent_state(
            self.core, purpose=PURPOSE, practice_id=practice_id, chat_identity_id=chat_identity_id
        )
        return consent_card(start_url(self.settings, state), requested_by)

    async def request(self, actor: Actor) -> tuple[Json, list[tuple[AdminContact, Json]]]:
        """The reply card for `actor`, and (admin, card) DMs to send when the actor is not an admin."""
        if actor.is_admin:
            return await self.card_for_admin(actor.practice_id, actor.chat_identity_id), []
        admins = await admins_to_ask(self.core, actor.practice_id, "teams")
        dms = [
            (a, await self.card_for_admin(actor.practice_id, a.chat_identity_id, requested_by=actor.display))
            for a in admins
        ]
        log.info("consent requested by a non-admin", extra={"admins": len(dms)})
        return pending_card(len(dms)), dms
