"""Practices and practitioners: the admin services behind the CLI and chat commands."""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sync.runtime.core import Core
from sync.services.errors import Invalid
from sync.store import audit
from sync.store.model import Appointment, ChatIdentity, Connection, Practice, Practitioner

__all__ = [
    "PracticeError",
    "add_practitioner",
    "check_zone",
    "create_practice",
    "default_practice",
    "find_practitioner",
    "list_practices",
    "list_practitioners",
    "practitioner_choices",
    "profile",
    "the_practice",
]


#: The practice a fresh database holds (migration 0001).
DEFAULT_NAME = "default"


class PracticeError(Invalid):
    """A user-facing problem with practice or practitioner input."""


@dataclass(frozen=True, slots=True)
class Profile:
    """A chat person's practice and practitioner, by name, for `whoami`."""

    practice: str
    timezone: str
    practitioner: str | None


def check_zone(zone: str) -> str:
    """Return the zone name if it is a known IANA zone, else raise PracticeError."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise PracticeError(f"unknown time zone {zone!r}; use an IANA name such as Europe/London") from None
    return zone


async def _untouched_default(session: AsyncSession) -> Practice | None:
    """The fresh install's placeholder practice "default", while it is the only one and unused."""
    practices = (await session.scalars(select(Practice).order_by(Practice.id).limit(2))).all()
    if len(practices) != 1 or practices[0].name != DEFAULT_NAME:
        return None
    practice = practices[0]
    if practice.slack_team_id or practice.teams_tenant_id:
        return None
    for model in (Practitioner, Connection, ChatIdentity, Appointment):
        used = await session.scalar(select(func.count()).select_from(model).where(model.practice_id == practice.id))
        if used:
            return None
    return practice


async def create_practice(session: AsyncSession, name: str, tz: str, actor: str) -> Practice:
    """Create a practice; on a fresh install the first one takes the place of the unused "default".

    Otherwise the README's first step (`practice create`) left two practices: practitioners and
    connections went to "default" (the first) and the first chat user, seeing two unbound
    practices, got a third, empty one.
    """
    name = name.strip()
    if not name:
        raise PracticeError("a practice needs a name")
    zone = check_zone(tz)
    placeholder = await _untouched_default(session)
    if placeholder is not None and name != DEFAULT_NAME:
        placeholder.name, placeholder.timezone = name, zone
        await session.flush()
        await audit.record(session, actor=actor, action="practice.create", practice_id=placeholder.id,
                           after={"name": name, "timezone": tz}, details={"replaces": DEFAULT_NAME})
        return placeholder
    practice = Practice(name=name, timezone=zone, settings={})
    session.add(practice)
    try:
        await session.flush()
    except IntegrityError:
        raise PracticeError(f"a practice named {name!r} already exists") from None
    await audit.record(session, actor=actor, action="practice.create", practice_id=practice.id,
                       after={"name": name, "timezone": tz})
    return practice


async def list_practices(session: AsyncSession) -> list[Practice]:
    return list((await session.scalars(select(Practice).order_by(Practice.id))).all())


async def default_practice(session: AsyncSession) -> Practice:
    practice = await session.scalar(select(Practice).order_by(Practice.id).limit(1))
    if practice is None:
        raise PracticeError("no practice exists; run `clinicbot db upgrade`")
    return practice


async def practice_by_name(session: AsyncSession, name: str | None) -> Practice:
    if not name:
        return await default_practice(session)
    practice = await session.scalar(select(Practice).where(Practice.name == name))
    if practice is None:
        raise PracticeError(f"no practice named {name!r}")
    return practice


async def the_practice(session: AsyncSession, name: str | None) -> Practice:
    """The practice named `name`; without a name the only one, and a refusal (naming them) when
    there are several: a connection added to the wrong clinic would copy its bookings there."""
    if name:
        return await practice_by_name(session, name)
    practices = (await session.scalars(select(Practice).order_by(Practice.id).limit(11))).all()
    if not practices:
        raise PracticeError("no practice exists; create one with `clinicbot practice create`")
    if len(practices) > 1:
        names = ", ".join(repr(p.name) for p in practices[:10]) + (", ..." if len(practices) > 10 else "")
        raise PracticeError(f"there are several practices ({names}); say which with --practice NAME")
    return practices[0]


def make_handle(name: str) -> str:
    words = re.sub(r"[^a-z0-9 ]+", "", name.lower()).split()
    if words and words[0] in ("dr", "doctor") and len(words) > 1:
        return "dr-" + words[-1]
    return "-".join(words)[:64] or "practitioner"


async def add_practitioner(
    session: AsyncSession,
    practice: Practice,
    name: str,
    *,
    email: str | None,
    tz: str | None,
    actor: str,
    handle: str | None = None,
) -> Practitioner:
    name = name.strip()
    if not name:
        raise PracticeError("a practitioner needs a name")
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise PracticeError(f"{email!r} is not an email address")
    base = handle or make_handle(name)
    candidate, n = base, 1
    while await session.scalar(
        select(func.count()).select_from(Practitioner).where(
            Practitioner.practice_id == practice.id, Practitioner.handle == candidate
        )
    ):
        n += 1
        candidate = f"{base}-{n}"
    practitioner = Practitioner(
        practice_id=practice.id, name=name, email=email, handle=candidate,
        timezone=check_zone(tz or practice.timezone), reminder_prefs={},
    )
    session.add(practitioner)
    await session.flush()
    after = {"practitioner_id": practitioner.id, "handle": candidate, "timezone": practitioner.timezone}
    await audit.record(session, actor=actor, action="practitioner.add", practice_id=practice.id, after=after)
    return practitioner


async def list_practitioners(session: AsyncSession, practice_id: int | None = None) -> list[Practitioner]:
    stmt = select(Practitioner).order_by(Practitioner.id)
    if practice_id is not None:
        stmt = stmt.where(Practitioner.practice_id == practice_id)
    return list((await session.scalars(stmt)).all())


async def find_practitioner(session: AsyncSession, practice_id: int, ref: str) -> Practitioner | None:
    """By id, handle (with or without @), or case-insensitive name."""
    ref = ref.strip().lstrip("@")
    if ref.isascii() and ref.isdigit():
        if len(ref) > 9:
            return None
        p = await session.get(Practitioner, int(ref))
        return p if p is not None and p.practice_id == practice_id else None
    return await session.scalar(_BY_NAME, {"practice_id": practice_id, "ref": ref.lower()})


#: `find_practitioner`'s statement by handle or name, built once (every `today @dr-lee` runs it).
_BY_NAME = select(Practitioner).where(
    Practitioner.practice_id == bindparam("practice_id"),
    (func.lower(Practitioner.handle) == bindparam("ref")) | (func.lower(Practitioner.name) == bindparam("ref")),
)


async def practitioner_choices(session: AsyncSession, practice_id: int) -> list[tuple[int, str]]:
    """(id, name) of the practice's active practitioners by name, for a form's choices."""
    rows = await session.execute(
        select(Practitioner.id, Practitioner.name)
        .where(Practitioner.practice_id == practice_id, Practitioner.active.is_(True))
        .order_by(Practitioner.name)
    )
    return [(int(r[0]), str(r[1])) for r in rows]


async def profile(core: Core, practice_id: int, practitioner_id: int | None) -> Profile:
    """The practice's name and zone and the practitioner's name ("?" and UTC for a practice gone)."""
    async with core.store.session() as session:
        practice = await session.get(Practice, practice_id)
        pr = await session.get(Practitioner, practitioner_id) if practitioner_id else None
        return Profile(practice.name if practice else "?", practice.timezone if practice else "UTC",
                       pr.name if pr else None)
