"""`handle(core, actor, command)`: the one entry point the front ends call, for commands and card actions.

Every outcome is a View. User mistakes, missing permissions and stale cards become `Error` views;
a failed database call becomes a short "try again" Error and is logged without patient data.
Each handler runs its change in one transaction, so an error changes nothing.
"""

from __future__ import annotations

import logging

from bot.commands import (
    admin,
    appointments,
    client_notices,
    conflicts,
    crm,
    disconnect,
    files,
    followups,
    leads,
    mirror_edits,
    reminders,
    settings,
    shift_cards,
    shift_target,
    shifts,
    staff,
    staff_card,
    work,
)
from bot.commands.access import Forbidden
from bot.commands.actions import (
    AcceptCalendar,
    Action,
    AskCancel,
    BookFollowUp,
    BookLead,
    CancelConfirmed,
    KeepBooking,
    MapShiftPerson,
    MapShiftUpn,
    MapStaffMember,
    MarkAttended,
    MarkLeadLost,
    MarkNoShow,
    OpenReschedule,
    OpenShiftMapping,
    PickSlot,
    ProposeLead,
    SetShiftField,
    SetShiftFlag,
    ShowDetails,
    SubmitReschedule,
    TrackEvent,
    UntrackEvent,
)
from bot.commands.client_notices import SetClientNotices
from bot.commands.crm import CrmSettings
from bot.commands.errors import ParseError
from bot.commands.grammar import (
    CancelAppointment,
    ChangeRole,
    Command,
    Connect,
    Disconnect,
    MapStaff,
    RefreshCalendars,
    Reschedule,
    SetMirrorEdits,
    SetReminders,
    SetSync,
    ShowAgenda,
    ShowAppointment,
    ShowConflicts,
    ShowFiles,
    ShowHelp,
    ShowLeads,
    ShowShifts,
    ShowStatus,
    ShowWhoami,
    Track,
    Untrack,
)
from bot.commands.identity import Actor
from bot.commands.settings_grammar import (
    AddLocation,
    FindSlots,
    SetCalendarLook,
    SetFeedPattern,
    SetOptOut,
    SetWindow,
    ShowLocations,
)
from bot.commands.shift_target import SetShiftTarget
from bot.views import Error, View
from sync.contract import ProviderError
from sync.runtime.core import Core
from sync.services.appointments import AppointmentNotFound, StaleVersion
from sync.services.errors import DATABASE_ERRORS, Denied, Invalid, NotFound, ServiceError, database_error_facts

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
        case Disconnect():
            return await disconnect.disconnect(core, actor, command)
        case ShowStatus():
            return await admin.status(core, actor)
        case ShowShifts():
            return await shifts.show_shifts(core, actor, command)
        case MapStaff():
            return await staff.staff_command(core, actor, command)
        case ShowWhoami():
            return await admin.whoami(core, actor)
        case ChangeRole():
            view = await admin.change_role(core, actor, command)
            # Front ends may cache who is who; a role change from any of them must show at once.
            for cache in core.services.actor_caches:
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
        case MapStaffMember():
            return await staff_card.map_from_card(core, actor, command)
        case OpenShiftMapping():
            return await shift_cards.mapping_card(core, actor)
        case SetShiftField():
            return await shift_cards.set_field(core, actor, command)
        case MapShiftPerson():
            return await shift_cards.map_person(core, actor, command)
        case SetShiftFlag():
            return await shift_cards.set_flag(core, actor, command)
        case MapShiftUpn():
            return await shift_cards.map_upn(core, actor, command)
        case SetClientNotices():
            return await client_notices.client_notices(core, actor, command)
        case CrmSettings():
            return await crm.crm(core, actor, command)
        case SetShiftTarget():
            return await shift_target.shift_target(core, actor, command)
        case SetMirrorEdits():
            return await mirror_edits.mirror_edits(core, actor, command)
        case SetOptOut():
            return await settings.opt_out(core, actor, command)
        case SetCalendarLook():
            return await settings.calendar_look(core, actor, command)
        case SetWindow():
            return await settings.window(core, actor, command)
        case SetFeedPattern():
            return await settings.feed_pattern(core, actor, command)
        case ShowLocations():
            return await settings.show_locations(core, actor, command)
        case AddLocation():
            return await settings.add_location(core, actor, command)
        case FindSlots():
            return await settings.find_slots(core, actor, command)
        case Track() | TrackEvent():
            return await work.track(core, actor, command)
        case Untrack() | UntrackEvent():
            return await work.untrack(core, actor, command)
        case ShowFiles():
            return await files.show_files(core, actor, command)
        case ShowLeads():
            return await leads.show_leads(core, actor, command)
        case ProposeLead():
            return await leads.propose(core, actor, command)
        case BookLead():
            return await leads.book(core, actor, command)
        case MarkLeadLost():
            return await leads.lost(core, actor, command)
    raise TypeError(f"no handler for {type(command).__name__}")


async def handle(core: Core, actor: Actor, command: Command | Action) -> View:
    """Run one command or card action for `actor` and return what to show."""
    try:
        return await _dispatch(core, actor, command)
    except ParseError as exc:
        typed_id = getattr(command, "appointment_id", None)
        if isinstance(typed_id, int):
            exc = exc.about(typed_id)
        return Error(exc.message, exc.example, kind="input")
    except Forbidden as exc:
        return Error(str(exc), kind="forbidden")
    except StaleVersion as exc:
        return Error(str(exc), "today", kind="conflict")
    except AppointmentNotFound as exc:
        return Error(str(exc), "today", kind="not_found")
    except NotFound as exc:
        return Error(str(exc), kind="not_found")
    except Invalid as exc:
        return Error(str(exc), kind="input")
    except Denied as exc:
        return Error(str(exc), kind="forbidden")
    except ServiceError as exc:  # Conflict and anything not named above: the state refuses it
        return Error(str(exc), kind="conflict")
    except ProviderError as exc:
        return Error(str(exc), kind="unavailable")
    except DATABASE_ERRORS as exc:
        facts = database_error_facts(exc)
        log.warning(
            "command failed on the database: %s (%s) at %s",
            facts["error"], facts["reason"], facts["where"] or "?",
            extra={"command": type(command).__name__, **facts},
        )
        return Error(
            "I couldn't reach the clinic's database just now; nothing was changed. Try again in a minute.",
            kind="unavailable",
        )
    except Exception:
        # A bug, not the person's input: they still get an answer, and the log has the traceback.
        log.exception("command failed unexpectedly", extra={"command": type(command).__name__})
        return Error(
            "Something went wrong on my side while doing that, and it was not finished. "
            "Try again; if it keeps happening, tell the clinic's admin.",
            kind="unavailable",
        )
