"""Handlers for the day, one appointment, reschedule and cancel (commands and card actions)."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

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
from bot.commands.present import agenda_item, appointment_detail, day_label, moment_label, practitioner_names
from bot.commands.when import check_day, wall_time
from bot.commands.work import with_work_events
from bot.views import Agenda, ConfirmCancel, Error, RescheduleForm, View
from sync.engine import series
from sync.integrations.sources import read_only_calendars
from sync.runtime.core import Core
from sync.services import appointments as svc
from sync.services import availability, moves
from sync.services.bookings import reschedule_refusal
from sync.services.identities import (
    NoSuchPractitioner,
    NotLinked,
    PersonRef,
    PractitionerRef,
    find_practitioner_of,
    practitioner_named,
)
from sync.services.practices import practitioner_choices
from sync.store.model import Appointment, Practice, Practitioner

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


async def _practice(session: AsyncSession, actor: Actor) -> Practice:
    practice = await session.get(Practice, actor.practice_id)
    if practice is None:
        raise Forbidden("your practice no longer exists; ask an admin")
    return practice


async def find_person_practitioner(session: AsyncSession, actor: Actor, who: UserRef) -> PractitionerRef:
    """A practitioner named by handle/name, or by mentioning a chat user linked to one."""
    try:
        return await practitioner_named(
            session, actor.practice_id, actor.platform, PersonRef(who.platform_user_id, who.name)
        )
    except NotLinked as exc:
        raise ParseError(str(exc), "role grant practitioner @sam @dr-lee") from None
    except NoSuchPractitioner:
        raise ParseError(f"there is no practitioner {who}", "today @dr-lee") from None


async def person_practitioner(core: Core, actor: Actor, who: UserRef) -> PractitionerRef:
    """`find_person_practitioner` in a transaction of its own."""
    try:
        return await find_practitioner_of(
            core, actor.practice_id, actor.platform, PersonRef(who.platform_user_id, who.name)
        )
    except NotLinked as exc:
        raise ParseError(str(exc), "role grant practitioner @sam @dr-lee") from None
    except NoSuchPractitioner:
        raise ParseError(f"there is no practitioner {who}", "today @dr-lee") from None


async def agenda(core: Core, actor: Actor, cmd: ShowAgenda) -> View:
    require_any_role(actor)
    async with core.store.session() as session:
        practice = await _practice(session, actor)
        tz = practice.timezone
        today = core.clock().astimezone(ZoneInfo(tz)).date()
        day = cmd.day.resolve(today)
        practitioner: PractitionerRef | None = None
        if cmd.practitioner is not None:
            practitioner = await find_person_practitioner(session, actor, cmd.practitioner)
        if not actor.is_staff:
            if actor.practitioner_id is None:
                raise Forbidden(
                    "you are not linked to a practitioner; ask an admin: `role grant practitioner @you @your-handle`"
                )
            if practitioner is not None and practitioner.id != actor.practitioner_id:
                raise Forbidden("you can see your own day; staff can see everyone's")
            mine = await session.get(Practitioner, actor.practitioner_id)
            practitioner = PractitionerRef(mine.id, mine.name) if mine is not None else None
        rows = await svc.list_day(session, actor.practice_id, day, tz, practitioner.id if practitioner else None)
        names = await practitioner_names(session, {a.practitioner_id for a in rows if a.practitioner_id})
        read_only = await read_only_calendars(session, {a.source_calendar_id for a in rows})
        items = tuple(agenda_item(actor, a, tz, names, read_only=a.source_calendar_id in read_only) for a in rows)
    rel = {0: "Today", 1: "Tomorrow", -1: "Yesterday"}.get((day - today).days)
    title = f"{rel}, {day_label(day)}" if rel else day_label(day)
    if practitioner is not None:
        title += f" · {practitioner.name}"
    view = Agenda(
        title=title,
        day=day,
        timezone=tz,
        items=items,
        practitioner=practitioner.name if practitioner else None,
        empty_text=f"No appointments on {day_label(day)}.",
    )
    return await with_work_events(core, actor, view, practitioner.id if practitioner else None)


async def details(
    core: Core, actor: Actor, appointment_id: int, notice: str = "", visit_start: datetime | None = None
) -> View:
    """One appointment; for a series with `visit_start`, that visit (the series itself if it has none then)."""
    async with core.store.session() as session:
        practice = await _practice(session, actor)
        appt = await svc.get_by_ref(session, actor.practice_id, appointment_id)
        check_see(actor, appt)
        if visit_start is not None:
            appt = series.visit_at(appt, visit_start) or appt
        return await appointment_detail(session, actor, appt, practice.timezone, notice)


async def show(core: Core, actor: Actor, cmd: ShowAppointment | ShowDetails) -> View:
    return await details(core, actor, cmd.appointment_id, visit_start=getattr(cmd, "start", None))


async def _form(
    core: Core,
    session: AsyncSession,
    actor: Actor,
    practice: Practice,
    appt: Appointment,
    start: datetime | None = None,
    practitioner_id: int | None = None,
    errors: dict[str, str] | None = None,
    suggest_after: datetime | None = None,
) -> RescheduleForm:
    tz = practice.timezone
    local = (start or appt.start).astimezone(ZoneInfo(tz))
    target = practitioner_id or appt.practitioner_id
    suggestions: tuple[tuple[datetime, str], ...] = ()
    if suggest_after is not None and target is not None:
        free = await availability.next_free_slots(
            core, target, suggest_after, appt.end - appt.start, exclude_id=appt.id
        )
        suggestions = tuple((f, moment_label(f, tz)) for f in free)
    choices = await practitioner_choices(session, practice.id)
    if not actor.is_staff:
        choices = [c for c in choices if c[0] == appt.practitioner_id]
    names = await practitioner_names(session, {appt.practitioner_id} if appt.practitioner_id else set())
    item = agenda_item(actor, appt, tz, names, with_details=False)
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
    async with core.store.session() as session:
        practice = await _practice(session, actor)
        appt = await svc.get_by_ref(session, actor.practice_id, action.appointment_id)
        check_change(actor, appt, "reschedule")
        await check_source_writable(session, appt)
        errors = (
            {}
            if appt.version == action.version
            else {"": f"{appt.ref} changed since that card; this form shows the current time"}
        )
        return await _form(core, session, actor, practice, appt, errors=errors)


async def _move(
    core: Core,
    actor: Actor,
    appointment_id: int,
    version: int | None,
    start: datetime,
    practitioner_id: int | None,
    field: str,
) -> View:
    """Reschedule through the move service; a refused time comes back as the form with errors and free slots."""

    def guard(appt: moves.AppointmentFacts) -> None:
        check_may_change(actor, appt, "reschedule")
        if practitioner_id is not None and practitioner_id != appt.practitioner_id and not actor.is_staff:
            raise Forbidden("only staff can give an appointment to another practitioner")

    # A slot button or a modal carries its own start: the same range as a typed day.
    check_day(start.date(), core.clock().date(), start.strftime("%Y-%m-%d"))
    # A booking platform that cannot move bookings (Calendly) is refused before anything changes.
    refusal = await reschedule_refusal(core, actor.practice_id, appointment_id)
    if refusal is not None:
        return Error(refusal, kind="conflict")

    try:
        moved = await moves.move(
            core,
            actor.practice_id,
            appointment_id,
            start,
            actor=actor.audit_name,
            practitioner_id=practitioner_id,
            expected_version=version,
            guard=guard,
        )
    except moves.UnknownPractitioner as exc:
        raise ParseError(str(exc), "reschedule A-1042 tomorrow 3pm") from None
    except moves.SlotLost as exc:
        return Error(str(exc), kind="conflict")
    except moves.TimeRefused as exc:
        async with core.store.session() as session:
            practice = await _practice(session, actor)
            appt = await svc.get_by_ref(session, actor.practice_id, appointment_id)
            return await _form(
                core,
                session,
                actor,
                practice,
                appt,
                start,
                practitioner_id,
                {field: f"{moment_label(start, practice.timezone)} {exc.problem}"},
                suggest_after=exc.suggest_after,
            )
    async with core.store.session() as session:
        practice = await _practice(session, actor)
        appt = await svc.get_by_ref(session, actor.practice_id, appointment_id)
        tz = practice.timezone
        return await appointment_detail(
            session,
            actor,
            appt,
            tz,
            notice=f"Moved {moved.ref} from {moment_label(moved.before, tz)} to {moment_label(moved.start, tz)}.",
        )


async def reschedule_command(core: Core, actor: Actor, cmd: Reschedule) -> View:
    async with core.store.session() as session:
        practice = await _practice(session, actor)
        appt = await svc.get_by_ref(session, actor.practice_id, cmd.appointment_id)
        check_change(actor, appt, "reschedule")
        await check_source_writable(session, appt)
        start = cmd.when.resolve(core.clock(), practice.timezone, keep=appt.start)
    return await _move(core, actor, cmd.appointment_id, None, start, None, "time")


async def submit_reschedule(core: Core, actor: Actor, action: SubmitReschedule) -> View:
    errors: dict[str, str] = {}
    if action.day is None:
        errors["date"] = "pick a date"
    if action.time is None:
        errors["time"] = "pick a time"
    async with core.store.session() as session:
        practice = await _practice(session, actor)
        appt = await svc.get_by_ref(session, actor.practice_id, action.appointment_id)
        check_change(actor, appt, "reschedule")
        await check_source_writable(session, appt)
        if errors:
            return await _form(core, session, actor, practice, appt, None, action.practitioner_id, errors)
        assert action.day is not None and action.time is not None
        try:
            check_day(action.day, core.clock().astimezone(ZoneInfo(practice.timezone)).date())
        except ParseError as exc:
            return await _form(
                core, session, actor, practice, appt, None, action.practitioner_id, {"date": exc.message}
            )
        try:
            start = wall_time(action.day, time.fromisoformat(action.time), ZoneInfo(practice.timezone), action.time)
        except ParseError as exc:
            return await _form(
                core, session, actor, practice, appt, None, action.practitioner_id, {"time": exc.message}
            )
    return await _move(core, actor, action.appointment_id, action.version, start, action.practitioner_id, "time")


async def pick_slot(core: Core, actor: Actor, action: PickSlot) -> View:
    return await _move(core, actor, action.appointment_id, action.version, action.start, action.practitioner_id, "time")


async def _confirm_view(core: Core, actor: Actor, appointment_id: int, version: int | None, reason: str) -> View:
    async with core.store.session() as session:
        practice = await _practice(session, actor)
        appt = await svc.get_by_ref(session, actor.practice_id, appointment_id)
        check_change(actor, appt, "cancel")
        await check_source_writable(session, appt)
        if appt.status not in svc.ACTIVE_STATUSES:
            return Error(f"{appt.ref} is already {appt.status.replace('_', ' ')}", kind="conflict")
        names = await practitioner_names(session, {appt.practitioner_id} if appt.practitioner_id else set())
        item = agenda_item(actor, appt, practice.timezone, names, with_details=False)
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
    done = await moves.cancel(
        core,
        actor.practice_id,
        action.appointment_id,
        reason=action.reason or "cancelled from chat",
        actor=actor.audit_name,
        expected_version=action.version,
        guard=lambda appt: check_may_change(actor, appt, "cancel"),
    )
    note = f"{done.ref} was already cancelled." if done.was == "cancelled" else f"Cancelled {done.ref}."
    async with core.store.session() as session:
        practice = await _practice(session, actor)
        appt = await svc.get_by_ref(session, actor.practice_id, action.appointment_id)
        return await appointment_detail(session, actor, appt, practice.timezone, notice=note)
