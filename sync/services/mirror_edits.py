"""The practice's `mirror_edits` setting: what a hand edit of a mirror copy does.

- `card` (the default): staff get a conflict card and decide (keep the booking, or take the
  calendar's time);
- `follow`: the calendar wins. A practitioner's move of an appointment in their own mirror calendar
  reschedules it, at its source too, audited as made by that practitioner;
- `keep`: the booking wins. The copy is put back as booked, without a card.

`follow` and `keep` apply to appointments booked in clinicbot or on a writable calendar; a booking
platform's bookings (the truth) and a read-only feed's always get the card. A copy deleted by hand
is never taken as a cancellation (see sync.engine.plan). Changing the setting is audited.
"""

from __future__ import annotations

from dataclasses import dataclass

from sync.engine.plan import MIRROR_EDITS
from sync.runtime.core import Core
from sync.services.errors import Invalid, NotFound
from sync.services.practices import practice_by_name
from sync.store import audit
from sync.store.model import Practice

__all__ = ["MIRROR_EDITS", "MirrorEdits", "explain", "mirror_edits_of", "mirror_edits_of_named",
           "set_mirror_edits", "set_mirror_edits_named"]

_EXPLAIN = {
    "card": "a hand edit of a calendar copy raises a conflict card for staff to decide",
    "follow": "a practitioner's move in their own calendar reschedules the appointment (at its source too); "
              "other hand edits are put back",
    "keep": "a hand edit of a calendar copy is put back as booked, without a card",
}


def explain(mode: str) -> str:
    """One sentence on what a mode does, for chat and the CLI."""
    return _EXPLAIN.get(mode, _EXPLAIN["card"])


@dataclass(frozen=True, slots=True)
class MirrorEdits:
    """A practice's setting, before and after a change (equal when nothing changed)."""

    practice: str
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def sentence(self) -> str:
        note = "Bookings from a booking platform or a read-only feed always get the card."
        verb = f"is now {self.after!r}" if self.changed else f"is {self.after!r}"
        return f"Calendar edits for {self.practice} {verb}: {explain(self.after)}. {note}"


def _mode(value: str) -> str:
    word = value.strip().lower()
    if word not in MIRROR_EDITS:
        raise Invalid(f"{value!r} is not a choice for calendar edits; say one of {', '.join(MIRROR_EDITS)}")
    return word


async def mirror_edits_of(core: Core, practice_id: int) -> MirrorEdits:
    """The practice's current setting."""
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id)
        if practice is None:
            raise NotFound("your practice no longer exists; ask an admin")
        return MirrorEdits(practice.name, practice.mirror_edits or "card", practice.mirror_edits or "card")


async def set_mirror_edits(core: Core, practice_id: int, value: str, *, actor: str) -> MirrorEdits:
    """Set what a hand edit of a mirror copy does for one practice; audited when it changes."""
    mode = _mode(value)
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id, with_for_update=True)
        if practice is None:
            raise NotFound("your practice no longer exists; ask an admin")
        before = practice.mirror_edits or "card"
        if before != mode:
            practice.mirror_edits = mode
            await audit.record(s, actor=actor, action="practice.mirror_edits", practice_id=practice.id,
                               before={"mirror_edits": before}, after={"mirror_edits": mode})
        return MirrorEdits(practice.name, before, mode)


async def mirror_edits_of_named(core: Core, practice_name: str | None) -> MirrorEdits:
    """The setting of the practice called `practice_name` (None: the only or first practice)."""
    async with core.store.session() as s:
        practice = await practice_by_name(s, practice_name)
    return await mirror_edits_of(core, practice.id)


async def set_mirror_edits_named(core: Core, practice_name: str | None, value: str, *, actor: str) -> MirrorEdits:
    """`set_mirror_edits` for the practice called `practice_name` (None: the only or first practice)."""
    mode = _mode(value)
    async with core.store.session() as s:
        practice = await practice_by_name(s, practice_name)
    return await set_mirror_edits(core, practice.id, mode, actor=actor)
