"""Shifts as working hours: a practitioner with published shifts is offered slots inside them only."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sync.runtime.core import Core
from sync.services import shifts as service
from sync.services.availability import next_free_slots
from sync.services.practices import add_practitioner, create_practice
from sync.store.model import Appointment

ZONE = ZoneInfo("Europe/London")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2031, 3, day, hour, minute, tzinfo=ZONE)


async def test_slots_fall_inside_the_practitioners_shifts(core: Core) -> None:
    async with core.store.session() as s:
        practice = await create_practice(s, "Northside", "Europe/London", "test")
        ann = await add_practitioner(s, practice, "Dr Ann Lee", email="ann@clinic.example", tz="Europe/London",
                                     actor="test")
        bob = await add_practitioner(s, practice, "Dr Bob Ng", email="bob@clinic.example", tz="Europe/London",
                                     actor="test")
        # Ann is busy 13:00-14:00 inside her Tuesday shift.
        s.add(Appointment(practice_id=practice.id, practitioner_id=ann.id, start=local(4, 13), end=local(4, 14),
                          tzid="Europe/London", status="confirmed", version=1, exdates=[]))
        ann_id, bob_id = ann.id, bob.id
    await service.set_identity_field(core, "Northside", "custom1", actor="test")
    export = (
        b"Person,Custom1,Assignment,Start,End\n"
        b"Ann Lee,ann@clinic.example,Clinic,2031-03-04 12:00,2031-03-04 15:00\n"
        b"Ann Lee,ann@clinic.example,Late,2031-03-06 17:00,2031-03-06 20:30\n"
    )
    snapshot = await service.parse_upload(core, "Northside", "march.csv", export)
    await service.import_schedule(core, "Northside", snapshot, actor="test")

    slots = await next_free_slots(core, ann_id, local(3, 9), timedelta(hours=1), count=5)
    # Tuesday 12-13 and 14-15 (13-14 is taken), then Thursday evening, past the 18:00 working day.
    assert slots == [local(4, 12), local(4, 14), local(6, 17), local(6, 18), local(6, 19)]
    # Asked from inside a shift, slots start at the shift's step.
    assert (await next_free_slots(core, ann_id, local(6, 17, 5), timedelta(minutes=30), count=1)) == [local(6, 17, 15)]
    # Bob has no shifts: the practice's working hours as before.
    assert (await next_free_slots(core, bob_id, local(3, 9), timedelta(hours=1), count=1)) == [local(3, 9)]
