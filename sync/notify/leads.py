"""Leads told to staff: the intake the webhook route hands verified form submissions to.

`register` installs `take_lead` as the Core's lead intake (core.services.lead_intake): the lead is
stored (sync.services.leads.intake_lead), then the staff channel gets its card through the
Notifier ("New lead: Reiki, prefers Tue afternoon, Dr Lee", with fitting slots and the Propose,
Book and Mark lost buttons). A card that reached nobody leaves the lead `card_status: failed`,
and the leader's `resend_cards` job tries again every few minutes for two days; the lead is kept
either way, and `leads` in chat lists it. A card is claimed before it is sent, so the intake and
the job (or two replicas) never post it twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sync.contract import BadPayload, Refused
from sync.contract.leads import LeadInput, LeadOutcome
from sync.runtime.core import Core
from sync.runtime.notifier import DeliveryError, Notification
from sync.services import leads
from sync.services.errors import Invalid, NotFound

__all__ = ["RESEND_EVERY_SECONDS", "register", "resend_cards", "take_lead", "tell_staff"]

log = logging.getLogger("clinicbot.leads")

RESEND_EVERY_SECONDS = 300
#: A card is tried again once it has been quiet this long, and not for leads older than GIVE_UP.
QUIET = timedelta(minutes=2)
GIVE_UP = timedelta(days=2)


async def tell_staff(core: Core, lead: leads.Lead) -> bool:
    """Send the lead's card to the practice's staff; True when someone got it."""
    notifier = core.services.notifier
    if notifier is None or not await leads.claim_card(core, lead.id):
        return False
    try:
        await notifier.notify(Notification(kind="lead", practice_id=lead.practice_id, audience="staff",
                                           data={"lead_id": lead.id, "outcome": lead.outcome}))
    except DeliveryError as exc:
        log.warning("lead card not delivered", extra={"lead": lead.ref, "error": str(exc)[:200]})
        await leads.mark_card(core, lead.id, "failed")
        return False
    await leads.mark_card(core, lead.id, "sent")
    return True


async def take_lead(core: Core, connection_id: int, integration: str, form: LeadInput) -> LeadOutcome:
    """Store a verified submission from a connection and tell staff (a duplicate tells nobody)."""
    try:
        lead = await leads.intake_lead(core, connection_id, form, source=integration)
    except Invalid as exc:  # the contract's words for the integration: it answers the form with them
        raise BadPayload(str(exc), provider=integration) from None
    except NotFound as exc:
        raise Refused(str(exc), provider=integration) from None
    log.info("lead taken", extra={"lead": lead.ref, "outcome": lead.outcome, "integration": integration})
    if lead.outcome != "duplicate":
        await tell_staff(core, lead)
    return LeadOutcome(lead.id, lead.outcome)


async def resend_cards(core: Core) -> None:
    """The leader's job: send the cards that reached nobody yet."""
    sent = 0
    for lead in await leads.cards_due(core, quiet_for=QUIET, give_up_after=GIVE_UP):
        sent += await tell_staff(core, lead)
    if sent:
        log.info("lead cards sent on retry", extra={"count": sent})


def register(core: Core) -> None:
    """Install the lead intake on the Core (idempotent)."""
    if core.services.lead_intake is not None:
        return

    async def intake(connection_id: int, integration: str, form: LeadInput) -> LeadOutcome:
        return await take_lead(core, connection_id, integration, form)

    core.services.lead_intake = intake
