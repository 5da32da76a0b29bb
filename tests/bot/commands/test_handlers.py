"""Handlers: roles enforced, changes audited under the chat user, bad input changes nothing."""

from __future__ import annotations

import asyncio
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from adapters.google.settings import GoogleSettings
from bot.commands import actions, handle, parse, resolve_actor
from bot.views import (
    Agenda,
    AppointmentDetail,
    ConfirmCancel,
    ConnectInfo,
    Error,
    Help,
    Notice,
    RescheduleForm,
    Status,
    Whoami,
)
from sync.runtime.core import Core
from sync.store.model import (
    Appointment,
    AuditEntry,
    Calendar,
    ChatIdentity,
    Connection,
    OutboxOp,
    Practice,
    Practitioner,
    Role,
)
from tests.bot.clinic import TZ, at, make_actor, seed


async def _appt(core: Core, appt_id: int) -> Appointment:
    async with core.store.session() as s:
        a = await s.get(Appointment, appt_id)
        assert a is not None
        return a


async def _audit(core: Core) -> list[AuditEntry]:
    async with core.store.session() as s:
        return list((await s.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all())


async def test_first_person_becomes_admin_and_binds_the_fresh_practice(core: Core) -> None:
    first = await resolve_actor(core, "slack", "T9", "U1", "ann")
    second = await resolve_actor(core, "slack", "T9", "U2", "bob")
    again = await resolve_actor(core, "slack", "T9", "U1", "ann")
    assert first.roles == {"admin"} and second.roles == frozenset() and again.chat_identity_id == first.chat_identity_id
    assert first.practice_id == second.practice_id
    async with core.store.session() as s:
        practice = await s.get(Practice, first.practice_id)
        assert practice is not None and practice.name == "default" and practice.slack_team_id == "T9"
    # A second workspace gets its own practice, and its own first admin.
    other = await resolve_actor(core, "slack", "T10", "U1", "zed", workspace_name="Other Clinic")
    assert other.practice_id != first.practice_id and other.roles == {"admin"}
    entries = await _audit(core)
    assert [e.action for e in entries].count("role.grant") == 2
    assert entries[1].actor == "slack:T9/U1" and entries[1].details == {"reason": "first contact"}


async def test_first_contacts_at_once_in_one_practice_all_get_in_and_one_becomes_admin(core: Core) -> None:
    """Twelve people write for the first time at the same moment. On PostgreSQL each first contact
    used to insert its identity (a KEY SHARE lock on the practice row, through the foreign key) and
    then ask FOR UPDATE on that row, so two of them waited for each other: a deadlock, one of them
    refused. Now the practice is locked first (FOR NO KEY UPDATE) and they take turns."""
    async with core.store.session() as s:
        s.add(Practice(name="Busy Clinic", slack_team_id="T7", settings={}))
    actors = await asyncio.gather(*(resolve_actor(core, "slack", "T7", f"U{n}", f"person {n}") for n in range(12)))
    assert len({a.chat_identity_id for a in actors}) == 12 and len({a.practice_id for a in actors}) == 1
    assert sum(a.roles == {"admin"} for a in actors) == 1
    assert sum(a.roles == frozenset() for a in actors) == 11


async def test_agenda_lists_the_day_in_the_practice_zone_with_buttons_by_role(core: Core) -> None:
    c = await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    view = await handle(core, staff, parse("today"))
    assert isinstance(view, Agenda) and view.day == date(2026, 3, 3)
    assert [i.appointment_id for i in view.items] == [c.a_lee_10, c.a_kim_10, c.a_lee_11]
    assert view.items[0].time_label == "10:00–10:30" and view.items[0].practitioner == "Dr Lee"
    assert {type(a) for a in view.items[0].actions} == {
        actions.OpenReschedule,
        actions.AskCancel,
        actions.ShowDetails,
    }

    lee_only = await handle(core, staff, parse("today @dr-lee"))
    assert isinstance(lee_only, Agenda) and [i.appointment_id for i in lee_only.items] == [
        c.a_lee_10,
        c.a_lee_11,
    ]
    tomorrow = await handle(core, staff, parse("tomorrow"))
    assert isinstance(tomorrow, Agenda) and [i.appointment_id for i in tomorrow.items] == [c.a_lee_tomorrow]


async def test_practitioner_sees_and_changes_only_their_own(core: Core) -> None:
    c = await seed(core)
    await make_actor(core, "UADMIN", ("admin",))
    lee = await make_actor(core, "ULEE", ("practitioner",), practitioner_id=c.lee)
    view = await handle(core, lee, parse("today"))
    assert isinstance(view, Agenda) and [i.appointment_id for i in view.items] == [c.a_lee_10, c.a_lee_11]
    other = await handle(core, lee, parse("today @dr-kim"))
    assert isinstance(other, Error) and other.kind == "forbidden"
    denied = await handle(core, lee, parse(f"reschedule A-{c.a_kim_10} 4pm"))
    assert isinstance(denied, Error) and denied.kind == "forbidden"
    assert (await _appt(core, c.a_kim_10)).start == at(10)
    moved = await handle(core, lee, parse(f"reschedule A-{c.a_lee_10} 4pm"))
    assert isinstance(moved, AppointmentDetail) and (await _appt(core, c.a_lee_10)).start == at(16)


async def test_nobody_without_a_role_sees_appointments(core: Core) -> None:
    c = await seed(core)
    await make_actor(core, "UADMIN", ("admin",))
    nobody = await resolve_actor(core, "slack", "T1", "UNEW", "newbie")
    assert nobody.roles == frozenset()
    for text in ("today", f"appointment A-{c.a_lee_10}", f"cancel A-{c.a_lee_10}", "status", "sync off"):
        view = await handle(core, nobody, parse(text))
        assert isinstance(view, Error) and view.kind == "forbidden", text
    assert isinstance(await handle(core, nobody, parse("whoami")), Whoami)
    assert isinstance(await handle(core, nobody, parse("help")), Help)


async def test_reschedule_moves_audits_the_chat_user_and_emits_one_event(core: Core) -> None:
    c = await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    seen: list[object] = []

    async def spy(session: object, event: object) -> None:
        seen.append(event)

    core.bus.subscribe("spy", spy)
    view = await handle(core, staff, parse(f"reschedule A-{c.a_lee_10} tomorrow 3pm"))
    assert isinstance(view, AppointmentDetail)
    assert "from Tue 3 Mar 10:00 to Wed 4 Mar 15:00" in view.notice
    a = await _appt(core, c.a_lee_10)
    assert a.start == at(15, day=4) and a.end == at(15, 30, day=4) and a.version == 2
    last = (await _audit(core))[-1]
    assert last.action == "appointment.rescheduled" and last.actor == "slack:T1/US" and last.appointment_id == a.id
    assert len(seen) == 1


async def test_taken_slot_returns_the_form_with_the_clash_and_free_slots(core: Core) -> None:
    c = await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    before = len(await _audit(core))
    view = await handle(core, staff, parse(f"reschedule A-{c.a_lee_10} 11:30"))
    assert isinstance(view, RescheduleForm)
    assert f"taken (A-{c.a_lee_11})" in view.errors["time"]
    # Lee is busy 11:00-12:00; the 30-minute visit fits first at 12:00.
    assert [s[0] for s in view.suggestions][:2] == [at(12), at(12, 30)]
    assert (await _appt(core, c.a_lee_10)).start == at(10)
    assert len(await _audit(core)) == before


async def test_free_slots_are_found_in_the_practitioners_working_hours_and_zone(core: Core) -> None:
    """One free-slot search for chat and follow-ups: working hours are the practitioner's local hours
    (sync.services.availability), not the practice's. Lee works from New York; the practice is in London."""
    c = await seed(core)
    async with core.store.session() as s:
        lee = await s.get(Practitioner, c.lee)
        assert lee is not None
        lee.timezone = "America/New_York"
    staff = await make_actor(core, "US", ("staff",))
    view = await handle(core, staff, parse(f"reschedule A-{c.a_lee_10} yesterday 10am"))
    assert isinstance(view, RescheduleForm) and "already passed" in view.errors["time"]
    new_york = ZoneInfo("America/New_York")
    starts = [s[0] for s in view.suggestions]
    assert starts and starts[0] == at(13)  # 08:00 in New York; 08:00 in London would be before Lee starts
    assert all(8 <= start.astimezone(new_york).hour < 18 for start in starts)


async def test_past_time_is_refused_without_change(core: Core) -> None:
    c = await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    view = await handle(core, staff, parse(f"reschedule A-{c.a_lee_10} yesterday 10am"))
    assert isinstance(view, RescheduleForm) and "already passed" in view.errors["time"]
    assert (await _appt(core, c.a_lee_10)).version == 1


async def test_form_submit_and_stale_card(core: Core) -> None:
    c = await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    form = await handle(core, staff, actions.OpenReschedule(c.a_kim_10, 1))
    assert isinstance(form, RescheduleForm) and form.time == "10:00" and form.timezone == TZ
    assert {p[1] for p in form.practitioners} == {"Dr Lee", "Dr Kim"}
    missing = await handle(core, staff, actions.SubmitReschedule(c.a_kim_10, 1, None, "14:00"))
    assert isinstance(missing, RescheduleForm) and missing.errors == {"date": "pick a date"}
    # Give it to Dr Lee at 11:15, where Lee is busy: refused with suggestions for Lee.
    busy = await handle(core, staff, actions.SubmitReschedule(c.a_kim_10, 1, date(2026, 3, 3), "11:15", c.lee))
    assert isinstance(busy, RescheduleForm) and busy.practitioner_id == c.lee and busy.suggestions
    ok = await handle(core, staff, actions.SubmitReschedule(c.a_kim_10, 1, date(2026, 3, 3), "14:00", c.lee))
    assert isinstance(ok, AppointmentDetail) and ok.item.practitioner == "Dr Lee"
    stale = await handle(core, staff, actions.SubmitReschedule(c.a_kim_10, 1, date(2026, 3, 3), "15:00", c.lee))
    assert isinstance(stale, Error) and stale.kind == "conflict" and "changed since" in stale.message
    assert (await _appt(core, c.a_kim_10)).start == at(14)


async def test_cancel_asks_first_then_cancels_once(core: Core) -> None:
    c = await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    ask = await handle(core, staff, parse(f"cancel A-{c.a_lee_11} patient sick"))
    assert isinstance(ask, ConfirmCancel) and ask.reason == "patient sick"
    assert (await _appt(core, c.a_lee_11)).status == "confirmed"
    done = await handle(core, staff, ask.confirm)
    assert isinstance(done, AppointmentDetail) and done.notice.startswith("Cancelled")
    again = await handle(core, staff, ask.confirm)
    assert isinstance(again, AppointmentDetail) and "already cancelled" in again.notice
    entries = [e for e in await _audit(core) if e.action == "appointment.cancelled"]
    assert len(entries) == 1 and entries[0].actor == "slack:T1/US"
    # The reason may carry health information: the log keeps a fingerprint, not the words.
    assert set(entries[0].details) == {"cancel_reason"}
    assert entries[0].details["cancel_reason"].startswith("fp:") and "sick" not in str(entries[0].details)


async def test_unknown_and_foreign_appointments_are_not_found(core: Core) -> None:
    c = await seed(core)
    staff = await make_actor(core, "US", ("staff",))
    view = await handle(core, staff, parse("appointment A-999999"))
    assert isinstance(view, Error) and view.kind == "not_found"
    outsider = await resolve_actor(core, "slack", "T2", "UX", "x")  # admin of another practice
    view = await handle(core, outsider, parse(f"appointment A-{c.a_lee_10}"))
    assert isinstance(view, Error) and view.kind == "not_found"
    view = await handle(core, outsider, actions.CancelConfirmed(c.a_lee_10, 1))
    assert isinstance(view, Error) and (await _appt(core, c.a_lee_10)).status == "confirmed"


async def test_roles_are_for_admins_and_the_last_admin_stays(core: Core) -> None:
    c = await seed(core)
    admin = await make_actor(core, "UA", ("admin",))
    staff = await make_actor(core, "US", ("staff",))
    denied = await handle(core, staff, parse("role grant admin @!US"))
    assert isinstance(denied, Error) and denied.kind == "forbidden"
    granted = await handle(core, admin, parse("role grant practitioner @!UNEW @dr-kim"))
    assert isinstance(granted, Notice) and "Dr Kim" in granted.text
    newbie = await resolve_actor(core, "slack", "T1", "UNEW", "sam")
    assert newbie.roles == {"practitioner"} and newbie.practitioner_id == c.kim
    last = await handle(core, admin, parse("role revoke admin @!UA"))
    assert isinstance(last, Error) and "last admin" in last.message
    assert isinstance(await handle(core, admin, parse("role grant staff @us")), Notice)  # by display name
    assert isinstance(await handle(core, admin, parse("role revoke practitioner @!UNEW")), Notice)
    gone = await resolve_actor(core, "slack", "T1", "UNEW")
    assert gone.roles == frozenset() and gone.practitioner_id is None
    async with core.store.session() as s:
        assert await s.scalar(select(func.count()).select_from(Role).where(Role.role == "admin")) == 1
        assert await s.scalar(select(func.count()).select_from(ChatIdentity)) == 3


async def test_sync_status_and_connect(core: Core) -> None:
    c = await seed(core)
    admin = await make_actor(core, "UA", ("admin",))
    lee = await make_actor(core, "ULEE", ("practitioner",), practitioner_id=c.lee)
    async with core.store.session() as s:
        conn = Connection(
            practice_id=c.practice_id,
            practitioner_id=c.lee,
            provider="graph",
            account="lee@x.org",
            config={},
            status="auth_expired",
        )
        s.add(conn)
        await s.flush()
        s.add(Calendar(connection_id=conn.id, practitioner_id=c.lee, remote_id="cal1", name="Lee work", role="mirror"))
        s.add(OutboxOp(connection_id=conn.id, op="update", payload={}, idempotency_key="k1", status="failed"))
        s.add(OutboxOp(connection_id=conn.id, op="update", payload={}, idempotency_key="k2", status="pending"))
    view = await handle(core, admin, parse("status"))
    assert isinstance(view, Status) and view.failed_total == 1 and view.pending_total == 1
    health = view.connections[0].token_health
    assert health == "expired: reconnect"
    assert view.connections[0].last_sync == "never"
    off = await handle(core, lee, parse("sync off outlook"))
    assert isinstance(off, Notice) and "off" in off.text
    denied = await handle(core, lee, parse("sync on @dr-kim"))
    assert isinstance(denied, Error) and denied.kind == "forbidden"
    nothing = await handle(core, admin, parse("sync on zoom"))
    assert isinstance(nothing, Error) and "status" in nothing.message
    async with core.store.session() as s:
        assert (await s.scalar(select(Connection.sync_enabled))) is False
    info = await handle(core, admin, parse("connect google"))
    assert isinstance(info, ConnectInfo) and info.url is None and any("GOOGLE_CLIENT_ID" in x for x in info.steps)
    caldav = await handle(core, admin, parse("connect icloud"))
    assert isinstance(caldav, ConnectInfo) and any("App-Specific" in x for x in caldav.steps)


async def test_help_is_generated_from_the_grammar(core: Core) -> None:
    from bot.commands.grammar import GRAMMAR

    actor = await resolve_actor(core, "slack", "T1", "U1")
    view = await handle(core, actor, parse("help"))
    assert isinstance(view, Help) and [e.usage for e in view.entries] == [s.usage for s in GRAMMAR]
    one = await handle(core, actor, parse("help move"))
    assert isinstance(one, Help) and one.entries[0].usage.startswith("reschedule")
    bad = await handle(core, actor, parse("help nothing"))
    assert isinstance(bad, Error) and bad.example == "help reschedule"


async def test_connect_google_gives_a_single_use_link_bound_to_the_chat_user(core: Core) -> None:
    from sync.store.model import OAuthState

    await seed(core)
    core.settings = core.settings.with_sections(
        GoogleSettings(_env_file=None, google_client_id="gid", google_client_secret="gsecret")  # type: ignore[call-arg]
    )
    admin = await make_actor(core, "UA", ("admin",))
    view = await handle(core, admin, parse("connect gcal"))
    assert isinstance(view, ConnectInfo) and view.url is not None
    assert view.url.startswith(core.settings.section(GoogleSettings).google_auth_url)
    async with core.store.session() as s:
        state = await s.scalar(select(OAuthState))
        assert state is not None and state.chat_identity_id == admin.chat_identity_id and state.purpose == "google"
        assert state.state in view.url


async def test_refresh_finds_new_calendars_for_admins_only(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    from sync.integrations import registry
    from sync.services.connections import add_connection
    from tests.fakes.memory_calendar import MemoryServer
    from tests.sync import memory_adapter

    monkeypatch.setitem(registry.OVERRIDES, "caldav", memory_adapter.INTEGRATION)
    monkeypatch.setattr(memory_adapter, "SERVERS", {"memory://dav/work": MemoryServer()})
    await seed(core)
    added = await add_connection(core, "caldav", "memory://dav/", actor="test")
    memory_adapter.SERVERS["memory://dav/rooms"] = MemoryServer()
    admin = await make_actor(core, "UA", ("admin",))
    staff = await make_actor(core, "US", ("staff",))
    denied = await handle(core, staff, parse("refresh caldav"))
    assert isinstance(denied, Error) and denied.kind == "forbidden"
    unknown = await handle(core, admin, parse("refresh zoom"))
    assert isinstance(unknown, Error) and unknown.kind == "input" and "status" in unknown.message
    view = await handle(core, admin, parse(f"refresh {added.connection_id}"))
    assert isinstance(view, Notice) and "1 new" in view.text and "rooms (busy)" in view.text
    async with core.store.session() as s:
        assert await s.scalar(select(func.count()).select_from(Calendar)) == 2


async def test_status_counts_only_the_practices_own_connections(core: Core) -> None:
    """`status` reads in one transaction and counts only this practice's connections' queued writes and
    conflicts, not another practice's (whose rows the grouped queries used to read too)."""
    from sqlalchemy import event

    c = await seed(core)
    admin = await make_actor(core, "UA", ("admin",))
    empty = await handle(core, admin, parse("status"))
    assert isinstance(empty, Status) and empty.connections == () and empty.pending_total == 0
    async with core.store.session() as s:
        other = Practice(name="Elsewhere", timezone="UTC", settings={})
        s.add(other)
        await s.flush()
        theirs = Connection(practice_id=other.id, provider="graph", account="x@y.org", config={})
        mine = Connection(practice_id=c.practice_id, provider="graph", account="lee@x.org", config={})
        s.add_all([theirs, mine])
        await s.flush()
        s.add(Calendar(connection_id=mine.id, remote_id="cal1", name="Lee work", role="mirror"))
        for n in range(3):
            s.add(OutboxOp(connection_id=theirs.id, op="update", payload={}, idempotency_key=f"t{n}", status="failed"))
        s.add(OutboxOp(connection_id=mine.id, op="update", payload={}, idempotency_key="m1", status="pending"))
    sessions: list[object] = []
    listener = lambda *_: sessions.append(1)  # noqa: E731 - counts transactions begun
    event.listen(core.store.engine.sync_engine, "begin", listener)
    try:
        view = await handle(core, admin, parse("status"))
    finally:
        event.remove(core.store.engine.sync_engine, "begin", listener)
    assert isinstance(view, Status) and [x.account for x in view.connections] == ["lee@x.org"]
    assert view.pending_total == 1 and view.failed_total == 0
    # practice, connections, backfills and calendars in one; reminders, files, shift publishes in their own
    assert len(sessions) <= 4


async def test_details_say_which_calendars_still_wait_for_a_write(core: Core) -> None:
    """A calendar whose copy the outbox has still to write shows "pending" (one query reads the links
    and whether a write is queued for each); a failed write, or another appointment's, does not count."""
    from sync.store.model import Link

    c = await seed(core)
    admin = await make_actor(core, "UA", ("admin",))
    async with core.store.session() as s:
        conn = Connection(practice_id=c.practice_id, provider="graph", account="lee@x.org", config={})
        s.add(conn)
        await s.flush()
        cals = [Calendar(connection_id=conn.id, remote_id=f"c{n}", name=f"Cal {n}", role="mirror") for n in range(3)]
        s.add_all(cals)
        await s.flush()
        s.add_all([Link(appointment_id=c.a_lee_10, calendar_id=cal.id, state="ok") for cal in cals])
        s.add_all([
            OutboxOp(connection_id=conn.id, calendar_id=cals[0].id, appointment_id=c.a_lee_10, op="update",
                     idempotency_key="p0", status="pending"),
            OutboxOp(connection_id=conn.id, calendar_id=cals[1].id, appointment_id=c.a_lee_10, op="update",
                     idempotency_key="f1", status="failed"),
            OutboxOp(connection_id=conn.id, calendar_id=cals[2].id, appointment_id=c.a_lee_11, op="update",
                     idempotency_key="o2", status="pending"),
        ])  # fmt: skip
    view = await handle(core, admin, actions.ShowDetails(c.a_lee_10))
    assert isinstance(view, AppointmentDetail)
    assert view.calendars == (("Cal 0 (mirror)", "pending"), ("Cal 1 (mirror)", "ok"), ("Cal 2 (mirror)", "ok"))
