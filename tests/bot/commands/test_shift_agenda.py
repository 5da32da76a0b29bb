"""Shifts beside the agenda: a practitioner's `today` and morning DM list their shifts, the practice's
agenda lists who is on; both renderers show them apart from the appointments."""

from __future__ import annotations

import json

from sqlalchemy import select

from bot.commands import handle, parse
from bot.commands.dms import notification_view
from bot.slack import render
from bot.teams import cards
from bot.views import Agenda
from sync.runtime.core import Core
from sync.runtime.notifier import Notification
from sync.services import shifts as service
from sync.store.model import Practitioner
from tests.bot.clinic import make_actor, seed

EXPORT = (
    "Person,UniqueID,Custom1,Assignment,Start,End,Notes,Published\n"
    "Lee Person,LB1,lee@clinic.example,Day clinic,2026-03-03 08:00,2026-03-03 16:00,,Yes\n"
    "Kim Person,LB2,kim@clinic.example,Night call,2026-03-03 19:00,2026-03-04 07:00,,Yes\n"
    "Lee Person,LB1,lee@clinic.example,Day clinic,2026-03-04 08:00,2026-03-04 16:00,,Yes\n"
    "Roe Person,LB3,,Admin time,2026-03-03 09:00,2026-03-03 12:00,,No\n"
)


async def _schedule(core: Core) -> None:
    async with core.store.session() as s:
        for handle_, email in (("dr-lee", "lee@clinic.example"), ("dr-kim", "kim@clinic.example")):
            person = await s.scalar(select(Practitioner).where(Practitioner.handle == handle_))
            assert person is not None
            person.email = email
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    snapshot = await service.parse_upload(core, None, "march.csv", EXPORT.encode())
    await service.import_schedule(core, None, snapshot, actor="cli:admin")


async def test_a_practitioners_today_and_morning_dm_list_their_own_shifts(core: Core) -> None:
    clinic = await seed(core)
    await _schedule(core)
    lee = await make_actor(core, "UL", ("practitioner",), practitioner_id=clinic.lee)
    view = await handle(core, lee, parse("today"))
    assert isinstance(view, Agenda)
    assert [(w.time_label, w.title, w.person) for w in view.shifts] == [("08:00–16:00", "Day clinic", "Lee Person")]
    assert len(view.items) == 2  # the appointments are still there, apart

    dm = await notification_view(core, Notification(kind="agenda", practice_id=clinic.practice_id,
                                                    practitioner_id=clinic.lee, data={"date": "2026-03-03"}), lee)
    assert isinstance(dm, Agenda) and [w.title for w in dm.shifts] == ["Day clinic"]
    _text, blocks = render.message(dm)
    slack = json.dumps(blocks, ensure_ascii=False)
    assert "*On shift*" in slack and "08:00–16:00*  Day clinic" in slack
    teams = json.dumps(cards.render(dm), ensure_ascii=False)
    assert "On shift" in teams and "Day clinic" in teams


async def test_the_practices_today_lists_who_is_on(core: Core) -> None:
    clinic = await seed(core)
    await _schedule(core)
    staff = await make_actor(core, "US", ("staff",))
    view = await handle(core, staff, parse("today"))
    assert isinstance(view, Agenda)
    # Everyone's published shifts of the day, earliest first; the unpublished one is not on.
    assert [(w.time_label, w.person) for w in view.shifts] == [("08:00–16:00", "Lee Person"),
                                                               ("19:00–Wed 07:00", "Kim Person")]
    kim = await make_actor(core, "UK", ("practitioner",), practitioner_id=clinic.kim)
    tomorrow = await handle(core, kim, parse("tomorrow"))
    # Her night call runs into Wednesday morning: it is on her Wednesday too, and nobody else's shift is.
    assert isinstance(tomorrow, Agenda)
    assert [(w.time_label, w.person) for w in tomorrow.shifts] == [("19:00–Wed 07:00", "Kim Person")]
