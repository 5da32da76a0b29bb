"""What a notification that is not a DM kind shows: the appointment's detail with a headline, read
through the services (bot.notify opens no database session), or a clear "no longer exists"."""

from __future__ import annotations

from bot.notify import view_for
from bot.views import AppointmentDetail, Error
from sync.runtime.core import Core
from sync.runtime.notifier import Notification
from tests.bot.clinic import make_actor, seed


async def test_an_appointment_notification_shows_its_detail_with_a_headline(core: Core) -> None:
    clinic = await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    note = Notification(kind="appointment_changed", practice_id=clinic.practice_id,
                        appointment_ids=(clinic.a_lee_10,))
    view = await view_for(core, note, staff)
    assert isinstance(view, AppointmentDetail) and view.notice == "Appointment changed"
    assert view.item.appointment_id == clinic.a_lee_10 and view.item.client == "Jane Roe"


async def test_a_notification_about_a_gone_or_foreign_appointment_says_so(core: Core) -> None:
    clinic = await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    for practice_id, appointment_id in ((clinic.practice_id, 987_654), (clinic.practice_id + 1, clinic.a_lee_10)):
        note = Notification(kind="appointment_changed", practice_id=practice_id, appointment_ids=(appointment_id,))
        view = await view_for(core, note, staff)
        assert isinstance(view, Error) and view.kind == "not_found" and "no longer exists" in view.message
