"""Who may do what. Checked here, in the command layer, never in a renderer.

- admin: everything staff can, plus settings (sync, connect) and roles.
- staff: see and change every appointment of the practice; see status.
- practitioner: see and change their own appointments, and their own calendars' sync.
- no role: help and whoami only.
"""

from __future__ import annotations

from typing import Protocol

from bot.commands.identity import Actor
from sync.services.appointments import AppointmentError

__all__ = [
    "Forbidden",
    "can_change",
    "can_see",
    "check_change",
    "check_may_change",
    "check_see",
    "check_source_writable",
    "require_admin",
    "require_any_role",
    "require_staff",
]


class Owned(Protocol):
    """An appointment as far as access goes: a read model (AppointmentView) or the move service's facts."""

    @property
    def practice_id(self) -> int: ...

    @property
    def practitioner_id(self) -> int | None: ...


class Changeable(Owned, Protocol):
    """An appointment that says why chat may not change it (a series; a read-only source), if so."""

    @property
    def ref(self) -> str: ...

    @property
    def change_refusal(self) -> str | None: ...

    @property
    def read_only(self) -> str | None: ...


class Forbidden(Exception):
    """The actor's roles do not allow this; the message says who can."""


def require_any_role(actor: Actor) -> None:
    if not actor.roles:
        raise Forbidden("you have no role in this practice yet; ask an admin to run `role grant staff @you`")


def require_staff(actor: Actor, what: str) -> None:
    require_any_role(actor)
    if not actor.is_staff:
        raise Forbidden(f"only staff and admins can {what}")


def require_admin(actor: Actor, what: str) -> None:
    require_any_role(actor)
    if not actor.is_admin:
        raise Forbidden(f"only admins can {what}")


def _own(actor: Actor, appt: Owned) -> bool:
    return (
        "practitioner" in actor.roles
        and actor.practitioner_id is not None
        and appt.practitioner_id == actor.practitioner_id
    )


def can_see(actor: Actor, appt: Owned) -> bool:
    return appt.practice_id == actor.practice_id and (actor.is_staff or _own(actor, appt))


def can_change(actor: Actor, appt: Owned) -> bool:
    return can_see(actor, appt)


def check_see(actor: Actor, appt: Changeable) -> None:
    require_any_role(actor)
    if not can_see(actor, appt):
        raise Forbidden(f"{appt.ref} is not one of your appointments; staff can see every appointment")


def check_may_change(actor: Actor, appt: Owned, what: str) -> None:
    """Raise Forbidden unless the actor's roles let them change this appointment."""
    require_any_role(actor)
    if not can_change(actor, appt):
        raise Forbidden(f"you can only {what} your own appointments; staff can {what} any")


def check_change(actor: Actor, appt: Changeable, what: str) -> None:
    check_may_change(actor, appt, what)
    if appt.change_refusal is not None:
        raise AppointmentError(appt.change_refusal)


def check_source_writable(appt: Changeable) -> None:
    """Refuse a move or cancel of an appointment whose source clinicbot cannot write (an ICS feed)."""
    if appt.read_only is not None:
        raise AppointmentError(appt.read_only)
