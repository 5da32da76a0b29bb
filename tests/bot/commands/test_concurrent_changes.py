"""Two chat changes at once: the checks one of them made still hold when it commits.

A reschedule reads the slot, then writes; a cancel or an outcome reads the card's version, then
writes. Done at the same moment by two people (or one double click), both checks could pass on
what each read before either wrote: a double booking, or two changes both recorded as version 2.
Each test makes the window wide (a pause right after the check) and runs both at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from bot.commands import actions, handle, parse
from bot.views import AppointmentDetail, Error, RescheduleForm
from sync.runtime.core import Core
from sync.services import appointments as svc
from sync.services import availability
from sync.store.model import Appointment, AuditEntry, Practice
from tests.bot.clinic import at, make_actor, seed

PAUSE = 0.2


def _slowed(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, *, before: bool = False) -> None:
    """Pause inside the caller's transaction, after `module.name` returns (or before it runs)."""
    real: Callable[..., Awaitable[Any]] = getattr(module, name)

    async def slow(*args: Any, **kwargs: Any) -> Any:
        if before:
            await asyncio.sleep(PAUSE)
        result = await real(*args, **kwargs)
        if not before:
            await asyncio.sleep(PAUSE)
        return result

    monkeypatch.setattr(module, name, slow)


async def _audit_actions(core: Core, appointment_id: int) -> list[str]:
    async with core.store.session() as s:
        rows = await s.scalars(select(AuditEntry.action).where(AuditEntry.appointment_id == appointment_id))
        return list(rows.all())


async def test_two_reschedules_into_one_free_slot_book_it_once(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    c = await seed(core)
    ann = await make_actor(core, "UA", ("staff",))
    bob = await make_actor(core, "UB", ("staff",))
    _slowed(monkeypatch, availability, "calendars_busy")  # both have asked before either writes
    first, second = await asyncio.wait_for(
        asyncio.gather(
            handle(core, ann, parse(f"reschedule A-{c.a_lee_10} 14:00")),
            handle(core, bob, parse(f"reschedule A-{c.a_lee_11} 14:00")),
        ),
        timeout=30,
    )
    moved = [v for v in (first, second) if isinstance(v, AppointmentDetail)]
    refused = [v for v in (first, second) if isinstance(v, RescheduleForm)]
    assert len(moved) == 1 and len(refused) == 1, (first, second)
    assert "is taken" in refused[0].errors["time"]
    async with core.store.session() as s:
        at_two = (await s.scalars(select(Appointment).where(Appointment.start == at(14)))).all()
    assert len(at_two) == 1


async def test_a_double_clicked_cancel_cancels_once(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    c = await seed(core)
    ann = await make_actor(core, "UA", ("staff",))
    _slowed(monkeypatch, svc, "cancel", before=True)  # both have read version 1 before either writes
    click = actions.CancelConfirmed(c.a_lee_10, 1, "client called")
    views = await asyncio.wait_for(asyncio.gather(handle(core, ann, click), handle(core, ann, click)), timeout=30)
    assert all(isinstance(v, AppointmentDetail | Error) for v in views), views
    assert await _audit_actions(core, c.a_lee_10) == ["appointment.cancelled"]
    async with core.store.session() as s:
        appt = await s.get(Appointment, c.a_lee_10)
        assert appt is not None and appt.status == "cancelled" and appt.version == 2


async def test_a_reschedule_and_a_cancel_of_one_card_at_once_apply_one(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both were made from version 1 of the card; the one that commits second finds version 2."""
    c = await seed(core)
    ann = await make_actor(core, "UA", ("staff",))
    bob = await make_actor(core, "UB", ("staff",))
    _slowed(monkeypatch, svc, "cancel", before=True)
    _slowed(monkeypatch, svc, "reschedule", before=True)
    move = actions.PickSlot(c.a_lee_10, 1, at(14), None)
    cancel = actions.CancelConfirmed(c.a_lee_10, 1, "client called")
    await asyncio.wait_for(asyncio.gather(handle(core, ann, move), handle(core, bob, cancel)), timeout=30)
    done = await _audit_actions(core, c.a_lee_10)
    assert len(done) == 1, done
    async with core.store.session() as s:
        appt = await s.get(Appointment, c.a_lee_10)
        assert appt is not None and appt.version == 2


async def test_no_lock_is_held_while_calendars_are_asked(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking connected calendars for free/busy may refresh a sign-in, which is written at once in a
    transaction of its own; on SQLite that write would wait for a reschedule holding the lock."""
    c = await seed(core)
    ann = await make_actor(core, "UA", ("staff",))
    real = availability.calendars_busy

    async def is_free_saving_credentials(*args: Any, **kwargs: Any) -> Any:
        async def save() -> None:
            async with core.store.session() as s:
                practice = await s.get(Practice, c.practice_id)
                assert practice is not None
                practice.settings = {**(practice.settings or {}), "touched": True}

        await asyncio.wait_for(save(), timeout=5)
        return await real(*args, **kwargs)

    monkeypatch.setattr(availability, "calendars_busy", is_free_saving_credentials)
    view = await handle(core, ann, parse(f"reschedule A-{c.a_lee_10} 14:00"))
    assert isinstance(view, AppointmentDetail), view


async def test_two_staff_deciding_one_conflict_at_once_decide_it_once(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sync.services import conflicts
    from sync.store import audit
    from tests.bot.conflict_setup import hand_edited

    c = await seed(core)
    edit = await hand_edited(core, c)
    _slowed(monkeypatch, audit, "record", before=True)  # both have read the link before either writes
    outcomes = await asyncio.wait_for(
        asyncio.gather(
            conflicts.resolve_conflict(core, edit.link_id, "keep_booking", "slack:T1/UA"),
            conflicts.resolve_conflict(core, edit.link_id, "keep_booking", "slack:T1/UB"),
            return_exceptions=True,
        ),
        timeout=30,
    )
    assert sum(isinstance(o, svc.AppointmentError) for o in outcomes) == 1, outcomes
    assert (await _audit_actions(core, edit.appointment_id)).count("sync.conflict.keep_booking") == 1


async def test_book_follow_up_pressed_twice_at_once_is_recorded_once(core: Core) -> None:
    """Staff are messaged outside any transaction, so both presses may ask them; the request is
    recorded once, and the second press says so."""
    from datetime import timedelta

    from bot.commands.actions import BookFollowUp
    from sync.runtime.notifier import RecordingNotifier
    from tests.bot.clinic import NOW

    c = await seed(core)
    core.clock = lambda: NOW + timedelta(hours=4)  # after the 10:00 visit
    core.services.notifier = RecordingNotifier()
    lee = await make_actor(core, "ULEE", ("practitioner",), practitioner_id=c.lee)
    views = await asyncio.wait_for(
        asyncio.gather(handle(core, lee, BookFollowUp(c.a_lee_10)), handle(core, lee, BookFollowUp(c.a_lee_10))),
        timeout=30,
    )
    assert await _audit_actions(core, c.a_lee_10) == ["appointment.followup_requested"], views
    assert any("already requested" in getattr(v, "notice", "") for v in views), views
