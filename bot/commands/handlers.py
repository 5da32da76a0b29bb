"""`handle(core, actor, command)`: the one entry point the front ends call, for commands and card actions.

Every outcome is a View. User mistakes, missing permissions and stale cards become `Error` views;
a failed database call becomes a short "try again" Error and is logged without patient data.
Each handler runs its change in one transaction, so an error changes nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from sync.contract import ProviderError
from bot.commands import admin, appointments, conflicts, followups, reminders, staff
from bot.commands.access import Forbidden
from bot.commands.actions import (
    AcceptCalendar,
    Action,
    AskCancel,
    BookFollowUp,
    CancelConfirmed,
    KeepBooking,
    MarkAttended,
    MarkNoShow,
    OpenReschedule,
    PickSlot,
    ShowDetails,
    SubmitReschedule,
)
from bot.commands.errors import ParseError
from bot.commands.grammar import (
    CancelAppointment,
    ChangeRole,
    Command,
    Connect,
    MapStaff,
    RefreshCalendars,
    Reschedule,
    SetReminders,
    SetSync,
    ShowAgenda,
    ShowAppointment,
    ShowConflicts,
    ShowHelp,
    ShowStatus,
    ShowWhoami,
)
from bot.commands.identity import Actor
from bot.views import Error, View
from sync.services.appointments import AppointmentError, StaleVersion
from sync.runtime.core import Core
from sync.services.practices import PracticeError
from sync.store.database import StoreError

__all__ = ["handle"]

log = logging.getLogger("clinicbot.commands")


async def _dispatch(core: Core, actor: Actor, command: Command | Action) -> View:
    match command:
        case ShowHelp():
            return admin.help_view(command)
        case ShowAgenda():
            return await appointments.agenda(core, actor, command)
        case ShowAppointment() | ShowDetails():
            return await appointments.show(core, actor, command)
        case Reschedule():
            return await appointments.reschedule_command(core, actor, command)
        case OpenReschedule():
            return await appointments.open_reschedule(core, actor, command)
        case SubmitReschedule():
            return await appointments.submit_reschedule(core, actor, command)
        case PickSlot():
            return await appointments.pick_slot(core, actor, command)
        case CancelAppointment():
            return await appointments.cancel_command(core, actor, command)
        case AskCancel():
            return await appointments.ask_cancel(core, actor, command)
        case CancelConfirmed():
            return await appointments.confirm_cancel(core, actor, command)
        case SetSync():
            return await admin.set_sync(core, actor, command)
        case Connect():
            return await admin.connect(core, actor, command)
        case RefreshCalendars():
            return await admin.refresh(core, actor, command)
        case ShowStatus():
            return await admin.status(core, actor)
        case MapStaff():
            return await staff.staff_command(core, actor, command)
        case ShowWhoami():
            return await admin.whoami(core, actor)
        case ChangeRole():
            view = await admin.change_role(core, actor, command)
            # Front ends may cache who is who; a role change from any of them must show at once.
            for cache in core.services.get("actor_caches", ()):
                cache.forget_all()
            return view
        case SetReminders():
            return await reminders.remind(core, actor, command)
        case MarkAttended() | MarkNoShow():
            return await followups.answer(core, actor, command)
        case BookFollowUp():
            return await followups.book(core, actor, command)
        case ShowConflicts():
            return await conflicts.list_open(core, actor)
        case KeepBooking() | AcceptCalendar():
            return await conflicts.decide(core, actor, command)
    raise TypeError(f"no handler for {type(command).__name__}")


async def handle(core: Core, actor: Actor, command: Command | Action) -> View:
    """Run one command or card action for `actor` and return what to show."""
    try:
        return await _dispatch(core, actor, command)
    except ParseError as exc:
        return Error(exc.message, exc.example, kind="input")
    except Forbidden as exc:
        return Error(str(exc), kind="forbidden")
    except StaleVersion as exc:
        return Error(str(exc), "today", kind="conflict")
    except AppointmentError as exc:
        kind = "not_found" if "there is no appointment" in str(exc) else "conflict"
        return Error(str(exc), "today" if kind == "not_found" else "", kind=kind)
    except PracticeError as exc:
        return Error(str(exc), kind="input")
    except ProviderError as exc:
        return Error(str(exc), kind="unavailable")
    except (StoreError, SQLAlchemyError, OSError) as exc:
        log.warning(
            "command failed on the database",
            extra={"command": type(command).__name__, "error": type(exc).__name__},
        )
        return Error(
            "I couldn't reach the clinic's database just now; nothing was changed. Try again in a minute.",
            kind="unavailable",
        )
