"""An appointment moved (or booked) outside every shift of its practitioner raises a card to staff."""

from __future__ import annotations

from sqlalchemy import select

from bot.commands import handle, parse
from bot.notify import view_for
from bot.views import AppointmentDetail, Error
from sync.notify.conflict_notices import notification_for
from sync.runtime.core import Core
from sync.services import shifts as service
from sync.store.model import ConflictNotice, Practitioner
from tests.bot.clinic import make_actor, seed

EXPORT = (
    "Person,UniqueID,Custom1,Assignment,Start,End,Published\n"
    "Lee Person,LB1,lee@clinic.example,Day clinic,2026-03-03 08:00,2026-03-03 16:00,Yes\n"
    "Lee Person,LB1,lee@clinic.example,Evening clinic,2026-03-03 16:00,2026-03-03 20:00,Yes\n"
)


async def _notices(core: Core) -> list[ConflictNotice]:
    async with core.store.session() as s:
        return list((await s.scalars(select(ConflictNotice).where(ConflictNotice.kind == "outside_shift")
                                     .order_by(ConflictNotice.id))).all())


async def test_a_visit_moved_outside_every_shift_is_told_to_staff_once(core: Core) -> None:
    clinic = await seed(core)
    async with core.store.session() as s:
        lee = await s.scalar(select(Practitioner).where(Practitioner.id == clinic.lee))
        assert lee is not None
        lee.email = "lee@clinic.example"
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await service.import_schedule(core, None, await service.parse_upload(core, None, "m.csv", EXPORT.encode()),
                                  actor="cli:admin")
    staff = await make_actor(core, "US", ("staff",))

    # Inside a shift, and across the seam of two back-to-back shifts: nothing to tell.
    assert not isinstance(await handle(core, staff, parse(f"reschedule A-{clinic.a_lee_10} today 2pm")), Error)
    assert not isinstance(await handle(core, staff, parse(f"reschedule A-{clinic.a_lee_10} today 3:45pm")), Error)
    assert await _notices(core) == []
    # After the evening clinic: outside every shift of Dr Lee that day.
    assert not isinstance(await handle(core, staff, parse(f"reschedule A-{clinic.a_lee_10} today 9pm")), Error)
    [notice] = await _notices(core)
    assert notice.appointment_id == clinic.a_lee_10 and notice.status == "pending"
    n = notification_for(notice)
    assert n.audience == "staff" and n.kind == "outside_shift"
    card = await view_for(core, n, staff)
    assert isinstance(card, AppointmentDetail)
    assert "Booked outside every shift" in card.notice and "08:00–16:00" in card.notice and "16:00–20:00" in card.notice
    # `conflicts` lists decisions to make; this one was only told.
    listed = await handle(core, staff, parse("conflicts"))
    assert "outside" not in str(listed).lower()
    # Dr Kim has no shifts: her visits are not checked.
    assert not isinstance(await handle(core, staff, parse(f"reschedule A-{clinic.a_kim_10} today 9pm")), Error)
    assert len(await _notices(core)) == 1
