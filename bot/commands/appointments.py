"""Handlers for the day, one appointment, reschedule and cancel (commands and card actions).

Reads come from sync.services.appointment_views (read models, one transaction each); changes go
through sync.services.moves."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from bot.commands.access import (
    Forbidden,
    check_change,
    check_may_change,
    check_see,
    check_source_writable,
    require_any_role,
)
from bot.commands.actions import (
    AskCancel,
    CancelConfirmed,
    OpenReschedule,
    PickSlot,
    ShowDetails,
    SubmitReschedule,
)
from bot.commands.errors import ParseError
from bot.commands.grammar import CancelAppointment, Reschedule, ShowAgenda, ShowAppointment, UserRef
from bot.commands.identity import Actor
from bot.commands.present import agenda_item, appointment_detail, day_label, moment_label
from bot.commands.shift_day import with_shifts
from bot.commands.when import check_day, wall_time
from bot.commands.work import with_work_events
from bot.views import Agenda, ConfirmCancel, Error, RescheduleForm, View
from sync.runtime.core import Core
from sync.services import appointment_views as views
from sync.services import appointments as svc
from sync.services import availability, moves
from sync.services.identities import (
    NoSuchPractitioner,
    NotLinked,
    PersonRef,
    PractitionerRef,
    find_practitioner_of,
)

__all__ = [
    "agenda",
    "ask_cancel",
    "cancel_command",
    "confirm_cancel",
    "details",
    "open_reschedule",
    "pick_slot",
    "reschedule_command",
    "show",
    "submit_reschedule",
]


def _person(who: UserRef) -> PersonRef:
    return PersonRef(who.platform_user_id, who.name)


async def person_practitioner(core: Core, actor: Actor, who: UserRef) -> PractitionerRef:
    """A practitioner named by handle/name, or by mentioning a chat user linked to one."""
    try:
        return await find_practitioner_of(core, actor.practice_id, actor.platform, _person(who))
    except NotLinked as exc:
        raise ParseError(str(exc), "role grant practitioner @sam @dr-lee") from None
    except NoSuchPractitioner:
        raise ParseError(f"there is no practitioner {who}", "today @dr-lee") from None


async def agenda(core: Core, actor: Actor, cmd: ShowAgenda) -> View:
    require_any_role(actor)
    if not actor.is_staff and actor.practitioner_id is None:
        raise Forbidden(
            "you are not linked to a practitioner; ask an admin: `role grant practitioner @you @your-handle`"
        )
    try:
        day = await views.load_agenda(
            core, actor.practice_id, actor.platform, day=cmd.day.resolve,
            who=_person(cmd.practitioner) if cmd.practitioner is not None else None,
            practitioner_id=None if actor.is_staff else actor.practitioner_id, location=cmd.location, with_work=True,
            with_shifts=True,
        )
    except NotLinked as exc:
        raise ParseError(str(exc), "role grant practitioner @sam @dr-lee") from None
    except NoSuchPractitioner:
        raise ParseError(f"there is no practitioner {cmd.practitioner}", "today @dr-lee") from None
    except views.NoPractice as exc:
        raise Forbidden(str(exc)) from None
    practitioner = day.practitioner
    if not actor.is_staff and practitioner is not None and practitioner.id != actor.practitioner_id:
        raise Forbidden("you can see your own day; staff can see everyone's")
    items = tuple(agenda_item(actor, a, day.timezone) for a in day.appointments)
    rel = {0: "Today", 1: "Tomorrow", -1: "Yesterday"}.get((day.day - day.today).days)
    title = f"{rel}, {day_label(day.day)}" if rel else day_label(day.day)
    place = day.location
    if practitioner is not None:
        title += f" · {practitioner.name}"
    if place is not None:
        title += f" · at {place.name}"
    view = Agenda(
        title=title,
        day=day.day,
        timezone=day.timezone,
        items=items,
        practitioner=practitioner.name if practitioner else None,
        empty_text=f"No appointments on {day_label(day.day)}{f' at {place.name}' if place else ''}.",
    )
    view = await with_shifts(core, actor.practice_id, view, practitioner.id if practitioner else None, day.shifts)
    return await with_work_events(core, actor, view, practitioner.id if practitioner else None, day.work)


async def _details(core: Core, actor: Actor, appointment_id: int, visit_start: datetime | None = None
                   ) -> views.AppointmentDetails:
    try:
        return await views.load_details(core, actor.practice_id, appointment_id, visit_start)
    except views.NoPractice as exc:
        raise Forbidden(str(exc)) from None


async def _loaded(core: Core, actor: Actor, appointment_id: int) -> views.LoadedAppointment:
    try:
        return await views.load_appointment(core, actor.practice_id, appointment_id)
    except views.NoPractice as exc:
        raise Forbidden(str(exc)) from None


async def _choices(core: Core, actor: Actor, appointment_id: int) -> views.RescheduleChoices:
    try:
        return await views.load_reschedule(core, actor.practice_id, appointment_id)
    except views.NoPractice as exc:
        raise Forbidden(str(exc)) from None


async def details(
    core: Core, actor: Actor, appointment_id: int, notice: str = "", visit_start: datetime | None = None
) -> View:
    """One appointment; for a series with `visit_start`, that visit (the series itself if it has none then)."""
    found = await _details(core, actor, appointment_id, visit_start)
    check_see(actor, found.view)
    return appointment_detail(actor, found, notice)


async def show(core: Core, actor: Actor, cmd: ShowAppointment | ShowDetails) -> View:
    return await details(core, actor, cmd.appointment_id, visit_start=getattr(cmd, "start", None))


async def _form(
    core: Core,
    actor: Actor,
    loaded: views.RescheduleChoices,
    start: datetime | None = None,
    practitioner_id: int | None = None,
    errors: dict[str, str] | None = None,
    suggest_after: datetime | None = None,
) -> RescheduleForm:
    appt, tz = loaded.view, loaded.timezone
    local = (start or appt.start).astimezone(ZoneInfo(tz))
    target = practitioner_id or appt.practitioner_id
    suggestions: tuple[tuple[datetime, str], ...] = ()
    if suggest_after is not None and target is not None:
        free = await availability.next_free_slots(
            core, target, suggest_after, appt.end - appt.start, exclude_id=appt.id
        )
        suggestions = tuple((f, moment_label(f, tz)) for f in free)
    choices = list(loaded.practitioners)
    if not actor.is_staff:
        choices = [c for c in choices if c[0] == appt.practitioner_id]
    item = agenda_item(actor, appt, tz, with_details=False)
    return RescheduleForm(
        appointment_id=appt.id,
        ref=appt.ref,
        version=appt.version,
        summary=f"{item.ref} · {day_label(item.start.date())} {item.time_label} · {item.client}"
        + (f" · {item.service}" if item.service else ""),
        date=local.date(),
        time=f"{local:%H:%M}",
        timezone=tz,
        practitioner_id=target,
        practitioners=tuple(choices),
        errors=dict(errors or {}),
        suggestions=suggestions,
    )


async def open_reschedule(core: Core, actor: Actor, action: OpenReschedule) -> View:
    loaded = await _choices(core, actor, action.appointment_id)
    appt = loaded.view
    check_change(actor, appt, "reschedule")
    check_source_writable(appt)
    errors = (
        {}
        if appt.version == action.version
        else {"": f"{appt.ref} changed since that card; this form shows the current time"}
    )
    return await _form(core, actor, loaded, errors=errors)


async def _prepare(core: Core, actor: Actor, appointment_id: int, practitioner_id: int | None) -> moves.Prepared:
    """The move's first read (the appointment, its zone, its booking, the calendars to ask): one transaction."""
    try:
        return await moves.prepare(core, actor.practice_id, appointment_id, practitioner_id=practitioner_id,
                                   view=True, booking=True)
    except views.NoPractice as exc:
        raise Forbidden(str(exc)) from None


async def _move(
    core: Core,
    actor: Actor,
    ready: moves.Prepared,
    version: int | None,
    start: datetime,
    field: str,
) -> View:
    """Reschedule through the move service; a refused time comes back as the form with errors and free slots."""
    practitioner_id = ready.practitioner_id

    def guard(appt: moves.AppointmentFacts) -> None:
        check_may_change(actor, appt, "reschedule")
        if practitioner_id is not None and practitioner_id != appt.practitioner_id and not actor.is_staff:
            raise Forbidden("only staff can give an appointment to another practitioner")

    # A slot button or a modal carries its own start: the same range as a typed day.
    check_day(start.date(), core.clock().date(), start.strftime("%Y-%m-%d"))
    try:
        # A booking platform that cannot move bookings (Calendly) is refused before anything changes;
        # the answer's details are read in the move's own transaction.
        moved = await moves.commit(core, ready, start, actor=actor.audit_name, expected_version=version,
                                   guard=guard, details=True)
    except moves.BookingRefused as exc:
        return Error(str(exc), kind="conflict")
    except moves.UnknownPractitioner as exc:
        raise ParseError(str(exc), "reschedule A-1042 tomorrow 3pm") from None
    except moves.SlotLost as exc:
        return Error(str(exc), kind="conflict")
    except moves.TimeRefused as exc:
        loaded = await _choices(core, actor, ready.appointment_id)
        return await _form(
            core,
            actor,
            loaded,
            start,
            practitioner_id,
            {field: f"{moment_label(start, loaded.timezone)} {exc.problem}"},
            suggest_after=exc.suggest_after,
        )
    found = moved.details
    assert found is not None
    tz = found.timezone
    notice = f"Moved {moved.ref} from {moment_label(moved.before, tz)} to {moment_label(moved.start, tz)}."
    return appointment_detail(actor, found, notice)


def _loaded_of(ready: moves.Prepared) -> views.LoadedAppointment:
    assert ready.loaded is not None  # _prepare asks for the view
    return ready.loaded


async def reschedule_command(core: Core, actor: Actor, cmd: Reschedule) -> View:
    ready = await _prepare(core, actor, cmd.appointment_id, None)
    loaded = _loaded_of(ready)
    check_change(actor, loaded.view, "reschedule")
    check_source_writable(loaded.view)
    start = cmd.when.resolve(core.clock(), loaded.timezone, keep=loaded.view.start)
    return await _move(core, actor, ready, None, start, "time")


async def submit_reschedule(core: Core, actor: Actor, action: SubmitReschedule) -> View:
    errors: dict[str, str] = {}
    if action.day is None:
        errors["date"] = "pick a date"
    if action.time is None:
        errors["time"] = "pick a time"
    # The practitioners to choose from are read only when the form comes back with errors.
    ready = await _prepare(core, actor, action.appointment_id, action.practitioner_id)
    loaded = _loaded_of(ready)
    check_change(actor, loaded.view, "reschedule")
    check_source_writable(loaded.view)

    async def form_with(problems: dict[str, str]) -> View:
        return await _form(core, actor, await _choices(core, actor, action.appointment_id), None,
                           action.practitioner_id, problems)

    if errors:
        return await form_with(errors)
    assert action.day is not None and action.time is not None
    zone = ZoneInfo(loaded.timezone)
    try:
        check_day(action.day, core.clock().astimezone(zone).date())
    except ParseError as exc:
        return await form_with({"date": exc.message})
    try:
        start = wall_time(action.day, time.fromisoformat(action.time), zone, action.time)
    except ParseError as exc:
        return await form_with({"time": exc.message})
    return await _move(core, actor, ready, action.version, start, "time")


async def pick_slot(core: Core, actor: Actor, action: PickSlot) -> View:
    ready = await _prepare(core, actor, action.appointment_id, action.practitioner_id)
    return await _move(core, actor, ready, action.version, action.start, "time")


async def _confirm_view(core: Core, actor: Actor, appointment_id: int, version: int | None, reason: str) -> View:
    loaded = await _loaded(core, actor, appointment_id)
    appt = loaded.view
    check_change(actor, appt, "cancel")
    check_source_writable(appt)
    if appt.status not in svc.ACTIVE_STATUSES:
        return Error(f"{appt.ref} is already {appt.status.replace('_', ' ')}", kind="conflict")
    item = agenda_item(actor, appt, loaded.timezone, with_details=False)
    summary = f"{item.ref} · {day_label(item.start.date())} {item.time_label} · {item.client} with {item.practitioner}"
    return ConfirmCancel(
        appointment_id=appt.id,
        ref=appt.ref,
        version=appt.version,
        summary=summary,
        confirm=CancelConfirmed(appt.id, appt.version, reason),
        reason=reason,
    )


async def ask_cancel(core: Core, actor: Actor, action: AskCancel) -> View:
    return await _confirm_view(core, actor, action.appointment_id, action.version, "")


async def cancel_command(core: Core, actor: Actor, cmd: CancelAppointment) -> View:
    """A typed cancel asks for confirmation too: ids are easy to mistype and a cancel tells the client."""
    return await _confirm_view(core, actor, cmd.appointment_id, None, cmd.reason)


async def confirm_cancel(core: Core, actor: Actor, action: CancelConfirmed) -> View:
    try:
        done = await moves.cancel(
            core,
            actor.practice_id,
            action.appointment_id,
            reason=action.reason or "cancelled from chat",
            actor=actor.audit_name,
            expected_version=action.version,
            guard=lambda appt: check_may_change(actor, appt, "cancel"),
            details=True,  # the answer is read in the cancel's own transaction
        )
    except views.NoPractice as exc:
        raise Forbidden(str(exc)) from None
    note = f"{done.ref} was already cancelled." if done.was == "cancelled" else f"Cancelled {done.ref}."
    assert done.details is not None
    return appointment_detail(actor, done.details, notice=note)
