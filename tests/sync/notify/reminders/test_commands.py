"""`remind ...`: settings through chat, with clear errors and no half-applied changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from sync.notify.reminders import RemindError, apply_reminder_command, effective_prefs, parse_reminder_command
from sync.store.model import AuditEntry, Practice, Practitioner, ReminderLedger

from .conftest import World


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("remind 99h before", "at most 48h"),
        ("remind 3d before", "at most 48h"),
        ("remind 2m before", "at least 5m"),
        ("remind 24h 12h 6h 2h 1h before", "at most 4 reminders"),
        ("remind 24x before", "`24x` is not a reminder time"),
        ("remind tz Mars/Olympus_Mons", "unknown time zone `Mars/Olympus_Mons`"),
        ("remind tz", "takes one IANA zone"),
        ("remind agenda 25:00", "`25:00` is not a time"),
        ("remind agenda 7", "`7` is not a time"),
        ("remind quiet 20:00", "takes a range or off"),
        ("remind quiet 20:00-20:00", "different times"),
        ("remind days funday", "`funday` is not a day"),
        ("remind followups maybe", "takes on or off"),
        ("remind me to buy milk", "I don't understand"),
    ],
)
def test_bad_input_gets_a_specific_message(text: str, message: str) -> None:
    with pytest.raises(RemindError) as err:
        parse_reminder_command(text)
    assert message in str(err.value)
    assert "Traceback" not in str(err.value)


def test_grammar() -> None:
    assert parse_reminder_command("remind 24h 1h before") == ("prefs", {"offsets_minutes": [1440, 60]})
    assert parse_reminder_command("remind 1h, 24h") == ("prefs", {"offsets_minutes": [1440, 60]})
    assert parse_reminder_command("remind 90m 2d before") == ("prefs", {"offsets_minutes": [2880, 90]})
    assert parse_reminder_command("remind off") == ("prefs", {"enabled": False})
    assert parse_reminder_command("/remind ON") == ("prefs", {"enabled": True})
    assert parse_reminder_command("remind agenda 7:30") == ("prefs", {"agenda_time": "07:30"})
    assert parse_reminder_command("remind agenda off") == ("prefs", {"agenda_time": None})
    assert parse_reminder_command("remind quiet 20:00-07:00") == (
        "prefs",
        {"quiet_start": "20:00", "quiet_end": "07:00"},
    )
    assert parse_reminder_command("remind quiet 20:00 to 07:00") == (
        "prefs",
        {"quiet_start": "20:00", "quiet_end": "07:00"},
    )
    assert parse_reminder_command("remind tz America/New_York") == ("zone", "America/New_York")
    assert parse_reminder_command("remind days fri-mon") == ("prefs", {"working_days": [0, 4, 5, 6]})
    assert parse_reminder_command("remind days mon,wed") == ("prefs", {"working_days": [0, 2]})
    assert parse_reminder_command("remind") == ("show", None)
    assert parse_reminder_command("remind reset") == ("reset", None)


async def _count(world: World, model: type) -> int:
    async with world.core.store.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_bad_command_changes_nothing(world: World) -> None:
    world.clock.now = datetime(2025, 4, 1, 8, 0, tzinfo=UTC)
    await world.book("2025-04-03 10:00")
    audits, rows = await _count(world, AuditEntry), await _count(world, ReminderLedger)
    async with world.core.store.session() as s:
        person = await s.get(Practitioner, world.practitioner_id)
        assert person is not None
        before = (dict(person.reminder_prefs), person.timezone)
        for bad in ("remind 99h before", "remind tz Nowhere/Land"):
            with pytest.raises(RemindError):
                await apply_reminder_command(s, person, bad, clock=world.clock)
        assert (dict(person.reminder_prefs), person.timezone) == before
    assert (await _count(world, AuditEntry), await _count(world, ReminderLedger)) == (audits, rows)


async def test_settings_replan_at_once_and_are_audited(world: World) -> None:
    world.clock.now = datetime(2025, 4, 1, 8, 0, tzinfo=UTC)
    await world.book("2025-04-03 10:00")

    async def open_kinds() -> list[str]:
        async with world.core.store.session() as s:
            return sorted(
                (await s.scalars(select(ReminderLedger.kind).where(ReminderLedger.status == "planned"))).all()
            )

    assert await open_kinds() == ["reminder:1440", "reminder:60"]
    async with world.core.store.session() as s:
        person = await s.get(Practitioner, world.practitioner_id)
        assert person is not None
        summary = await apply_reminder_command(s, person, "remind 2h 30m before", clock=world.clock)
    assert summary.startswith("reminders 2h, 30m before")
    assert await open_kinds() == ["reminder:120", "reminder:30"]
    async with world.core.store.session() as s:
        person = await s.get(Practitioner, world.practitioner_id)
        assert person is not None
        assert "reminders are off" in await apply_reminder_command(s, person, "remind off", clock=world.clock)
    assert await open_kinds() == []
    async with world.core.store.session() as s:
        person = await s.get(Practitioner, world.practitioner_id)
        assert person is not None
        await apply_reminder_command(s, person, "remind on", clock=world.clock)
        actions = (
            await s.scalars(select(AuditEntry.action).where(AuditEntry.action == "reminders.settings"))
        ).all()
    assert await open_kinds() == ["reminder:120", "reminder:30"]
    assert len(actions) == 3


async def test_practice_defaults_apply_until_overridden(world: World) -> None:
    async with world.core.store.session() as s:
        practice = await s.get(Practice, world.practice_id)
        person = await s.get(Practitioner, world.practitioner_id)
        assert practice is not None and person is not None
        practice.settings = {"reminders": {"offsets_minutes": [120], "agenda_time": "08:00"}}
        await apply_reminder_command(s, person, "remind reset", clock=world.clock)
        prefs = effective_prefs(person, practice)
        assert (prefs.offsets_minutes, prefs.agenda_time, prefs.quiet) == ((120,), "08:00", prefs.quiet)
        assert prefs.quiet is not None  # built-in quiet hours 21:00-07:00
        await apply_reminder_command(s, person, "remind 24h before", clock=world.clock)
        prefs = effective_prefs(person, practice)
        assert (prefs.offsets_minutes, prefs.agenda_time) == ((1440,), "08:00")
