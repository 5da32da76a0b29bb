"""Handlers for the day, one appointment, reschedule and cancel (commands and card actions)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands import slots
from bot.commands.access import Forbidden, check_change, check_see, require_any_role
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
from bot.commands.when import wall_time
from bot.views import Agenda, ConfirmCancel, Error, RescheduleForm, View
from sync.services import appointments as svc
from sync.runtime.core import Core
from sync.store.model import Appointment, ChatIdentity, Practice, Practitioner
from sync.services.practices import find_practitioner

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


async def find_person_practitioner(session: AsyncSession, actor: Actor, who: UserRef) -> Practitioner:
    """A practitioner named by handle/name, or by mentioning a chat user linked to one."""
    if who.platform_user_id:
        identity = await session.scalar(
            select(ChatIdentity).where(
                ChatIdentity.practice_id == actor.practice_id,
                ChatIdentity.platform == actor.platform,
                ChatIdentity.user_id == who.platform_user_id,
            )
        )
        if identity is None or identity.practitioner_id is None:
            raise ParseError("that person is not linked to a practitioner", "role grant practitioner @sam @dr-lee")
        found = await session.get(Practitioner, identity.practitioner_id)
    else:
        found = await find_practitioner(session, actor.practice_id, who.name or "")
    if found is None:
        raise ParseError(f"there is no practitioner {who}", "today @dr-lee")
    return found


async def agenda(core: Core, actor: Actor, cmd: ShowAgenda) -> View:
    require_any_role(actor)
    async with core.store.session() as session:
        practice = await _practice(session, actor)
        tz = practice.timezone
        today = core.clock().astimezone(ZoneInfo(tz)).date()
        day = cmd.day.resolve(today)
        practitioner: Practitioner | None = None
        if cmd.practitioner is not None:
            practitioner = await find_person_practitioner(session, actor, cmd.practitioner)
        if not actor.is_staff:
            if actor.practitioner_id is None:
                raise Forbidden(
                    "you are not linked to a practitioner; ask an admin: `role grant practitioner @you @your-handle`"
                )
            if practitioner is not None and practitioner.id != actor.practitioner_id:
                raise Forbidden("you can see your own day; staff can see everyone's")
            practitioner = await session.get(Practitioner, actor.practitioner_id)
        rows = await svc.list_day(session, actor.practice_id, day, tz, practitioner.id if practitioner else None)
        names = await practitioner_names(session, {a.practitioner_id for a in rows if a.practitioner_id})
        items = tuple(agenda_item(actor, a, tz, names) for a in rows)
    rel = {0: "Today", 1: "Tomorrow", -1: "Yesterday"}.get((day - today).days)
    title = f"{rel}, {day_label(day)}" if rel else day_label(day)
    if practitioner is not None:
        title += f" · {practitioner.name}"
    return Agenda(
        title=title,
        day=day,
        timezone=tz,
        items=items,
        practitioner=practitioner.name if practitioner else None,
        empty_text=f"No appointments on {day_label(day)}.",
    )


async def details(core: Core, actor: Actor, appointment_id: int, notice: str = "") -> View:
    async with core.store.session() as session:
        practice = await _practice(session, actor)
        appt = await svc.get_by_ref(session, actor.practice_id, appointment_id)
        check_see(actor, appt)
        return await appointment_detail(session, actor, appt, practice.timezone, notice)


async def show(core: Core, actor: Actor, cmd: ShowAppointment | ShowDetails) -> View:
    return await details(core, actor, cmd.appointment_id)


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
        free = await slots.next_free(
            core, session, practice, target, suggest_after, appt.end - appt.start, exclude_id=appt.id
        )
        suggestions = tuple((f, moment_label(f, tz)) for f in free)
    choices = await slots.practitioners_of(session, practice.id)
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
    """Check the slot, then reschedule; a taken slot comes back as the form with errors and free slots.

    The free/busy check asks connected calendars over the network, so it runs before any lock is
    held (a provider refreshing its sign-in writes to the database). Then the practitioner's
    schedule and the appointment are locked, and `svc.reschedule` checks clinicbot's own bookings
    and the card's version again before it writes. A slot taken in between (someone else's move
    committed first) ends that transaction unchanged, and the check runs again, finding the clash.
    """

    async def attempt() -> View | None:
        """One try; None when the slot was taken between the check and the write."""
        async with core.store.session() as session:
            practice = await _practice(session, actor)
            appt = await svc.get_by_ref(session, actor.practice_id, appointment_id)
            check_change(actor, appt, "reschedule")
            tz = practice.timezone
            if practitioner_id is not None and practitioner_id != appt.practitioner_id:
                if not actor.is_staff:
                    raise Forbidden("only staff can give an appointment to another practitioner")
                other = await session.get(Practitioner, practitioner_id)
                if other is None or other.practice_id != practice.id:
                    raise ParseError("that practitioner is not in this practice", "reschedule A-1042 tomorrow 3pm")

            async def refuse(problem: str, suggest_after: datetime) -> View:
                """The form again, saying what is wrong with the time and offering the next free slots."""
                return await _form(
                    core,
                    session,
                    actor,
                    practice,
                    appt,
                    start,
                    practitioner_id,
                    {field: f"{moment_label(start, tz)} {problem}"},
                    suggest_after=suggest_after,
                )

            now = core.clock()
            if start < now - timedelta(minutes=1):
                return await refuse("has already passed; pick a later time", now)

            target = practitioner_id or appt.practitioner_id
            end = start + (appt.end - appt.start)
            if target is not None:
                clashes = await slots.is_free(core, session, target, start, end, exclude_id=appt.id)
                if clashes:
                    return await refuse(f"is taken ({', '.join(sorted({c.label for c in clashes}))})", start)
                await svc.hold_schedule(session, target)
            before = moment_label(appt.start, tz)
            appt = await svc.get_for_change(session, actor.practice_id, appointment_id)  # read again, locked
            try:
                await svc.reschedule(
                    session,
                    core.bus,
                    appt,
                    start,
                    None,
                    actor.audit_name,
                    practitioner_id=practitioner_id,
                    expected_version=version,
                )
            except svc.SlotTaken:
                return None  # nothing was written; the next attempt's check finds the clash
            return await appointment_detail(
                session,
                actor,
                appt,
                tz,
                notice=f"Moved {appt.ref} from {before} to {moment_label(appt.start, tz)}.",
            )

    from sync.services.bookings import reschedule_refusal

    refusal = await reschedule_refusal(core, actor.practice_id, appointment_id)
    if refusal is not None:
        return Error(refusal, kind="conflict")
    for _ in range(2):
        moved = await attempt()
        if moved is not None:
            return moved
    return Error("that slot was taken a moment ago; pick another time", kind="conflict")


async def reschedule_command(core: Core, actor: Actor, cmd: Reschedule) -> View:
    async with core.store.session() as session:
        practice = await _practice(session, actor)
        appt = await svc.get_by_ref(session, actor.practice_id, cmd.appointment_id)
        check_change(actor, appt, "reschedule")
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
        if errors:
            return await _form(core, session, actor, practice, appt, None, action.practitioner_id, errors)
        assert action.day is not None and action.time is not None
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
    async with core.store.session() as session:
        practice = await _practice(session, actor)
        appt = await svc.get_for_change(session, actor.practice_id, action.appointment_id)
        check_change(actor, appt, "cancel")
        was = appt.status
        await svc.cancel(
            session,
            core.bus,
            appt,
            action.reason or "cancelled from chat",
            actor.audit_name,
            expected_version=action.version if was != "cancelled" else None,
        )
        note = f"{appt.ref} was already cancelled." if was == "cancelled" else f"Cancelled {appt.ref}."
        return await appointment_detail(session, actor, appt, practice.timezone, notice=note)
