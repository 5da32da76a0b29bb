"""Leads told to staff: the intake the webhook route hands verified form submissions to.

`register` installs `take_lead` as the Core's lead intake (core.services.lead_intake): the lead is
stored (sync.services.leads.intake_lead), then the staff channel gets its card through the
Notifier ("New lead: Reiki, prefers Tue afternoon, Dr Lee", with fitting slots and the Propose,
Book and Mark lost buttons). A card that reached nobody leaves the lead `card_status: failed`,
and the leader's `resend_cards` job tries again every few minutes for two days; the lead is kept
either way, and `leads` in chat lists it. A card is claimed before it is sent, so the intake and
the job (or two replicas) never post it twice.

The form's HTTP answer never waits for the card (its slot search and the chat post): `take_lead`
stores the lead, hands the card to this process's `CardSender` (a tracked background task) and
returns. A process that stops first leaves the card `pending`, and the resend job sends it; one that
dies mid-send leaves it `sending`, taken up again once its lease ran out.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sync.contract import BadPayload, Refused
from sync.contract.leads import LeadInput, LeadOutcome
from sync.runtime.core import Core
from sync.runtime.notifier import DeliveryError, Notification
from sync.services import leads
from sync.services.errors import Invalid, NotFound

__all__ = ["RESEND_EVERY_SECONDS", "CardSender", "card_sender", "register", "resend_cards", "take_lead", "tell_staff"]

log = logging.getLogger("clinicbot.leads")

RESEND_EVERY_SECONDS = 300
#: A card is tried again once it has been quiet this long, and not for leads older than GIVE_UP.
QUIET = timedelta(minutes=2)
GIVE_UP = timedelta(days=2)
#: How long `stop` lets cards already going out finish before it cancels them.
STOP_GRACE = 5.0


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
        card_sender(core).send(lead)  # after the answer: the website never waits for the slot search or chat
    return LeadOutcome(lead.id, lead.outcome)


class CardSender:
    """This process's staff cards on their way out, each a background task the Core waits for on close."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.grace = STOP_GRACE
        self._tasks: set[asyncio.Task[bool]] = set()

    def send(self, lead: leads.Lead) -> None:
        """Send one lead's card soon (claimed first, like the resend job's: never twice)."""
        task = asyncio.get_running_loop().create_task(self._send(lead))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, lead: leads.Lead) -> bool:
        try:
            return await tell_staff(self.core, lead)
        except Exception as exc:  # the lead is stored: the resend job tries again
            log.warning("lead card failed", extra={"lead": lead.ref, "error": type(exc).__name__})
            await leads.mark_card(self.core, lead.id, "failed")
            return False

    async def drain(self) -> None:
        """Wait until every card handed over so far went out (or failed)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Let the cards going out finish (a few seconds at most), then cancel the rest (the resend job's)."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(list(self._tasks), timeout=self.grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


def card_sender(core: Core) -> CardSender:
    """The Core's card sender, made on first use."""
    sender = core.services.lead_cards
    if not isinstance(sender, CardSender):
        sender = core.services.lead_cards = CardSender(core)
    return sender


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
