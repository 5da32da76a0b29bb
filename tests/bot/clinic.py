"""A small clinic for the front-end tests: the default practice in London, two practitioners,
appointments on a fixed Tuesday, and a frozen clock. Shared by tests/bot/commands and tests/bot/slack."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.commands.identity import Actor, resolve_actor
from sync.runtime.core import Core
from sync.store.model import Appointment, ChatIdentity, Practice, Practitioner, Role

__all__ = ["NOW", "TZ", "Clinic", "at", "make_actor", "seed"]

TZ = "Europe/London"
#: Tuesday 3 March 2026, 08:00 in London.
NOW = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: int = 3) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=ZoneInfo(TZ))


@dataclass
class Clinic:
    practice_id: int
    lee: int  # practitioner ids
    kim: int
    a_lee_10: int  # appointment ids
    a_lee_11: int
    a_kim_10: int
    a_lee_tomorrow: int


async def seed(core: Core, team: str = "T1") -> Clinic:
    """Freeze the clock and fill the default practice; bind it to Slack team `team`."""
    core.clock = lambda: NOW
    async with core.store.session() as s:
        practice = await s.scalar(select(Practice).where(Practice.name == "default"))
        assert practice is not None
        practice.timezone = TZ
        practice.slack_team_id = team
        lee = Practitioner(practice_id=practice.id, name="Dr Lee", handle="dr-lee", timezone=TZ, reminder_prefs={})
        kim = Practitioner(practice_id=practice.id, name="Dr Kim", handle="dr-kim", timezone=TZ, reminder_prefs={})
        s.add_all([lee, kim])
        await s.flush()

        def appt(pr: Practitioner, start: datetime, minutes: int, client: str) -> Appointment:
            from datetime import timedelta

            a = Appointment(
                practice_id=practice.id,
                practitioner_id=pr.id,
                start=start,
                end=start + timedelta(minutes=minutes),
                tzid=TZ,
                client_name=client,
                service="Physio",
                status="confirmed",
                version=1,
                exdates=[],
            )
            s.add(a)
            return a

        a1 = appt(lee, at(10), 30, "Jane Roe")
        a2 = appt(lee, at(11), 60, "John Doe")
        a3 = appt(kim, at(10), 30, "Ann Other")
        a4 = appt(lee, at(9, day=4), 30, "Max Mustermann")
        await s.flush()
        return Clinic(practice.id, lee.id, kim.id, a1.id, a2.id, a3.id, a4.id)


async def make_actor(
    core: Core, user: str, roles: tuple[str, ...] = (), practitioner_id: int | None = None, team: str = "T1"
) -> Actor:
    """A chat person with exactly `roles` (the first-contact admin grant is undone unless asked for)."""
    await resolve_actor(core, "slack", team, user, display=user.lower())
    async with core.store.session() as s:
        ident = await s.scalar(
            select(ChatIdentity).where(ChatIdentity.user_id == user, ChatIdentity.workspace_id == team)
        )
        assert ident is not None
        for r in (await s.scalars(select(Role).where(Role.chat_identity_id == ident.id))).all():
            if r.role not in roles:
                await s.delete(r)
        have = set((await s.scalars(select(Role.role).where(Role.chat_identity_id == ident.id))).all())
        for role in roles:
            if role not in have:
                s.add(Role(chat_identity_id=ident.id, role=role, granted_by="test"))
        ident.practitioner_id = practitioner_id
    return await resolve_actor(core, "slack", team, user)
