"""Lead cards: what staff see of a lead, and the Propose / Book / Mark lost buttons.

The card reads the lead fresh each time (a notification carries its id only) and offers the next
free slots that fit the preference. A press is re-checked here (staff only) and by the service
(the slot still free, the lead still open), and answers with the card updated in place.
"""

from __future__ import annotations

from bot.commands.access import require_staff
from bot.commands.actions import BookLead, MarkLeadLost, ProposeLead
from bot.commands.grammar import ShowLeads
from bot.commands.identity import Actor
from bot.views import LeadCardView, LeadList, LeadSlotChoice, View
from sync.runtime.core import Core
from sync.services import leads
from sync.services.appointment_views import moment_label

__all__ = ["book", "lead_view", "lost", "propose", "show_leads"]

_STATUS_WORDS = {"new": "new", "proposed": "proposed, waiting for the client", "booked": "booked", "lost": "lost"}


def _view(card: leads.LeadCard, outcome: str = "", *, with_buttons: bool = True) -> LeadCardView:
    tz = card.timezone
    facts: list[tuple[str, str]] = [("Lead", f"{card.ref} · {_STATUS_WORDS.get(card.status, card.status)}")]
    if card.first_name:
        facts.append(("Name", card.first_name))
    facts.append(("Prefers", card.preference))
    if card.unmatched:
        facts.append(("Also asked for", "; ".join(card.unmatched)))
    if card.submissions > 1:
        facts.append(("Forms", f"{card.submissions} (merged)"))
    if card.proposed is not None:
        facts.append(("Proposed", f"{moment_label(card.proposed.start, tz)} with {card.proposed.practitioner}"))
    if card.appointment_ref:
        facts.append(("Booked", card.appointment_ref))
    open_ = card.status in ("new", "proposed") and with_buttons
    slots = tuple(LeadSlotChoice(
        label=f"{moment_label(slot.start, tz)} · {slot.practitioner}",
        propose=ProposeLead(card.id, slot.practitioner_id, slot.start) if card.has_email else None,
        book=BookLead(card.id, slot.practitioner_id, slot.start),
    ) for slot in card.slots) if open_ else ()
    note = ""
    if open_ and not card.slots:
        note = "No free slot fits the preference in the next three weeks: call them, or `slots` for other times."
    elif open_ and not card.has_email:
        note = "No email address: call them to agree a time, then Book."
    headline = card.headline if card.status == "new" else card.headline.replace("New lead", f"Lead {card.ref}", 1)
    return LeadCardView(lead_id=card.id, ref=card.ref, headline=headline, facts=tuple(facts), slots=slots,
                        actions=(MarkLeadLost(card.id),) if open_ else (), outcome=outcome, note=note)


async def lead_view(core: Core, practice_id: int, lead_id: int, outcome: str = "") -> LeadCardView:
    """The card for one lead, with fitting slots while it is open."""
    return _view(await leads.lead_card(core, practice_id, lead_id), outcome)


async def show_leads(core: Core, actor: Actor, cmd: ShowLeads) -> View:
    """`leads`: the open leads; `leads L-12`: that one with its slots."""
    require_staff(actor, "see leads")
    if cmd.lead_id is not None:
        return await lead_view(core, actor.practice_id, cmd.lead_id)
    cards = await leads.open_leads(core, actor.practice_id)
    return LeadList(tuple(_view(c, with_buttons=False) for c in cards),
                    empty_text="No open leads. Website forms connect with `connect leadform`.")


async def propose(core: Core, actor: Actor, action: ProposeLead) -> View:
    require_staff(actor, "propose a time to a lead")
    made = await leads.propose(core, actor.practice_id, action.lead_id, action.practitioner_id, action.start,
                               actor=actor.audit_name)
    told = "the client is emailed a link to confirm." if made.mail_ready else (
        "the email with the confirm link waits: this server has no mail server set up yet (CLINICBOT_SMTP_HOST).")
    return await lead_view(core, actor.practice_id, action.lead_id,
                           f"Proposed {moment_label(made.start, made.timezone)} with {made.practitioner}: {told}")


async def book(core: Core, actor: Actor, action: BookLead) -> View:
    require_staff(actor, "book a lead")
    ref = await leads.book(core, actor.practice_id, action.lead_id, action.practitioner_id, action.start,
                           actor=actor.audit_name)
    return await lead_view(core, actor.practice_id, action.lead_id, f"Booked {ref}.")


async def lost(core: Core, actor: Actor, action: MarkLeadLost) -> View:
    require_staff(actor, "mark a lead lost")
    await leads.mark_lost(core, actor.practice_id, action.lead_id, actor=actor.audit_name)
    return await lead_view(core, actor.practice_id, action.lead_id, "Marked lost.")
