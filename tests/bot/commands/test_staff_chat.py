"""`staff map|unmap` in chat: admins only, audited under the chat user, bad input changes nothing."""

from __future__ import annotations

from sqlalchemy import select

from bot.commands import handle, parse
from bot.commands.errors import ParseError
from bot.views import Error, Notice, StaffCard
from sync.runtime.core import Core
from sync.store.model import AuditEntry, ExternalIdentity
from tests.bot.clinic import make_actor, seed


async def _identities(core: Core) -> list[tuple[str, str, int]]:
    async with core.store.session() as s:
        rows = (await s.scalars(select(ExternalIdentity).order_by(ExternalIdentity.id))).all()
        return [(r.integration, r.external_id, r.practitioner_id) for r in rows]


async def test_admin_maps_and_unmaps_staff_in_chat(core: Core) -> None:
    c = await seed(core)
    admin = await make_actor(core, "UA", ("admin",))
    staff = await make_actor(core, "US", ("staff",))
    denied = await handle(core, staff, parse("staff map square TM-1 @dr-lee"))
    assert isinstance(denied, Error) and "only admins" in denied.message
    assert await _identities(core) == []
    done = await handle(core, admin, parse("staff map square TM-1 @dr-lee"))
    assert isinstance(done, Notice) and "@dr-lee" in done.text
    assert await _identities(core) == [("square", "TM-1", c.lee)]
    listed = await handle(core, admin, parse("staff"))
    assert isinstance(listed, StaffCard) and any("TM-1" in line for line in listed.mappings)
    async with core.store.session() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "staff.map"))
        assert entry is not None and entry.actor == admin.audit_name
    gone = await handle(core, admin, parse("staff unmap square TM-1"))
    assert isinstance(gone, Notice) and await _identities(core) == []


async def test_bad_staff_commands_explain_and_change_nothing(core: Core) -> None:
    await seed(core)
    admin = await make_actor(core, "UA", ("admin",))
    for text in ("staff map square TM-1", "staff map square TM-1 dr-lee", "staff frob"):
        try:
            parse(text)
        except ParseError as exc:
            assert "staff" in exc.message
        else:
            raise AssertionError(f"{text!r} parsed")
    nobody = await handle(core, admin, parse("staff map square TM-1 @nobody"))
    assert isinstance(nobody, Error) and "no practitioner" in nobody.message
    unknown = await handle(core, admin, parse("staff map zzz X @dr-lee"))
    assert isinstance(unknown, Error) and "kind" in unknown.message
    missing = await handle(core, admin, parse("staff unmap square TM-9"))
    assert isinstance(missing, Error) and "no practitioner is mapped" in missing.message
    assert await _identities(core) == []


async def test_status_lists_unassigned_bookings_with_the_command_to_map_them(core: Core) -> None:
    from datetime import timedelta

    from bot.views import Status
    from sync.store.model import Appointment, Calendar, Connection

    c = await seed(core)
    admin = await make_actor(core, "UA", ("admin",))
    async with core.store.session() as s:
        conn = Connection(practice_id=c.practice_id, provider="square", account="M1", config={})
        s.add(conn)
        await s.flush()
        cal = Calendar(connection_id=conn.id, remote_id="TM-9", name="Alex", role="source")
        s.add(cal)
        await s.flush()
        lee_appt = await s.get(Appointment, c.a_lee_10)
        assert lee_appt is not None
        s.add(Appointment(practice_id=c.practice_id, source_calendar_id=cal.id, source_uid="bk1",
                          start=lee_appt.start, end=lee_appt.start + timedelta(minutes=30)))
    view = await handle(core, admin, parse("status"))
    assert isinstance(view, Status)
    (square,) = [x for x in view.connections if x.provider == "square"]
    assert square.calendars == ("Alex (source): 1 booking unassigned, `staff` to map them with a picker "
                                "(or `staff map square TM-9 @practitioner`)",)
