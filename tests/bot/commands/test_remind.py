"""`remind ...` through the shared grammar and handlers: a practitioner's own settings only."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.commands import ParseError, handle, parse
from bot.views import Error, Notice
from sync.runtime.core import Core
from sync.store.model import AuditEntry, Practitioner, ReminderLedger
from tests.bot.clinic import make_actor, seed


def test_bad_settings_are_parse_errors_with_an_example() -> None:
    with pytest.raises(ParseError) as err:
        parse("remind 99h before")
    assert "at most 48h" in err.value.message and err.value.example == "remind 24h 1h before"
    with pytest.raises(ParseError, match="unknown time zone `Atlantis/Capital`"):
        parse("remind tz Atlantis/Capital")


async def test_practitioner_changes_own_reminders_and_they_are_replanned(core: Core) -> None:
    clinic = await seed(core)
    lee = await make_actor(core, "U7", ("practitioner",), practitioner_id=clinic.lee)
    view = await handle(core, lee, parse("remind 2h before"))
    assert isinstance(view, Notice) and view.text.startswith("reminders 2h before")
    async with core.store.session() as s:
        person = await s.get(Practitioner, clinic.lee)
        kinds = set(
            (
                await s.scalars(
                    select(ReminderLedger.kind).where(
                        ReminderLedger.practitioner_id == clinic.lee, ReminderLedger.status == "planned"
                    )
                )
            ).all()
        )
        audit = await s.scalar(select(AuditEntry).where(AuditEntry.action == "reminders.settings"))
    assert person is not None and person.reminder_prefs["offsets_minutes"] == [120]
    assert "reminder:120" in kinds and "reminder:1440" not in kinds
    assert audit is not None and audit.actor == "slack:T1/U7"
    shown = await handle(core, lee, parse("remind"))
    assert isinstance(shown, Notice) and "2h before" in shown.text


async def test_staff_without_a_practitioner_record_is_told_who_can(core: Core) -> None:
    await seed(core)
    staff = await make_actor(core, "U8", ("staff",))
    view = await handle(core, staff, parse("remind off"))
    assert isinstance(view, Error) and view.kind == "forbidden" and "practitioners" in view.message
