"""Publishing a schedule to people's Outlook calendars through the fake Graph, with application permissions.

Starts where an admin starts: an export file, the practice-wide Outlook connection after consent, the
identity field and the assignment flags; then checks what the fake's mailboxes hold.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from adapters.graph import INTEGRATION, GraphTransports
from adapters.graph.publishing import SHIFT_ID_PROPERTY, GraphShiftPublisher
from bot.cli import main
from sync.boot import open_core
from sync.integrations import registry
from sync.runtime.core import Core
from sync.services import shifts as service
from sync.services.errors import Conflict, Invalid
from sync.services.practices import create_practice
from sync.store import audit
from sync.store.migrate import upgrade
from sync.store.model import AuditEntry, ShiftRow
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.adapters.graph.fakes.graph_throttle import ThrottlePolicy
from tests.adapters.shifts.conftest import CLIENT_ID, CLIENT_SECRET, TENANT, ZONE
from tests.conftest import TEST_KEY, drop_schema, make_settings

HEADER = "Person,UniqueID,Custom1,Assignment,Start,End,Notes,Published\n"


def day(offset: int) -> str:
    """A date `offset` days from now in the practice's zone (shifts must be in the future to be written)."""
    return (datetime.now(ZoneInfo(ZONE)) + timedelta(days=offset)).strftime("%Y-%m-%d")


def schedule(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


def events(mbx: Mailbox) -> list[Any]:
    return sorted((e for c in mbx.calendars.values() for e in c.events.values()), key=lambda e: e.start)


def writes(fake: GraphFake, since: int = 0) -> list[tuple[str, str, int]]:
    return [op for op in fake.operations[since:] if op[0] in ("POST", "PATCH", "DELETE") and "/events" in op[1]]


async def run_import(core: Core, data: bytes, *, dry_run: bool = False) -> service.ImportSummary:
    snapshot = await service.parse_upload(core, None, "schedule.csv", data)
    return await service.import_schedule(core, None, snapshot, actor="cli:admin", dry_run=dry_run)


async def test_a_schedule_reaches_each_mapped_persons_calendar_with_its_flags(
    core: Core, fake: GraphFake, people: dict[str, Mailbox]
) -> None:
    await service.set_identity_field(core, None, "Custom1", actor="cli:admin")
    await service.set_flags(core, None, "Night call", actor="cli:admin", free=True, notes=True)
    await service.set_flags(core, None, "Admin time", actor="cli:admin", send=False)
    await service.set_flags(core, None, "Day clinic", actor="cli:admin", info=False)
    data = schedule(
        f"Ann Lee,LB1,ann@clinic.example,Night call,{day(2)} 19:00,{day(2)} 07:00,Covers ward B,Yes",
        f"Ann Lee,LB1,ann@clinic.example,Day clinic,{day(3)} 08:00,{day(3)} 16:00,Room 4,Yes",
        f"Bob Ng,LB2,bob@clinic.example,Admin time,{day(2)} 09:00,{day(2)} 12:00,,Yes",
        f"Bob Ng,LB2,bob@clinic.example,Day clinic,{day(4)} 08:00,{day(4)} 16:00,,No",
        f"Cy Roe,LB3,,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes",
        f"Ghost,LB4,ghost@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes",
    )
    preview = await run_import(core, data, dry_run=True)
    assert (preview.to_create, preview.unmapped) == (3, ["Cy Roe"])
    async with core.store.session() as s:
        assert await s.scalar(select(func.count()).select_from(ShiftRow)) == 0  # a dry run keeps nothing

    summary = await run_import(core, data)
    assert (summary.shifts, summary.published, summary.to_create) == (6, 5, 3)
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.created, result.updated, result.deleted, result.failed) == (2, 0, 0, 0)
    assert result.unknown_people == ["ghost@clinic.example"] and result.skipped_unmapped == 1

    night, clinic = events(people["ann"])
    zone = ZoneInfo(ZONE)
    assert night.fields["subject"] == "Night call" and night.fields["showAs"] == "free"
    assert night.start == datetime.fromisoformat(f"{day(2)}T19:00").replace(tzinfo=zone).astimezone(UTC)
    assert night.end - night.start == timedelta(hours=12)
    assert "Covers ward B" in night.fields["body"]["content"] and "Assignment: Night call" in night.fields["body"]["content"]
    assert night.fields["categories"] == ["Shift"]
    # "Include Assignment Information" off: neither the name nor the notes (notes off by default).
    assert clinic.fields["subject"] == "Shift" and clinic.fields["showAs"] == "busy"
    assert "Day clinic" not in clinic.fields["body"]["content"] and "Room 4" not in clinic.fields["body"]["content"]
    assert events(people["bob"]) == []  # Send to Outlook off, and the unpublished shift
    assert events(people["dee"]) == []
    async with core.store.session() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "shifts.publish"))
        assert entry is not None and entry.actor == "cli:admin" and entry.details["created"] == 2
        assert (await audit.verify(s))[1] is None


async def test_a_republish_writes_only_what_changed_and_never_touches_other_events(
    core: Core, fake: GraphFake, people: dict[str, Mailbox]
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    ann, bob = "Ann Lee,LB1,ann@clinic.example", "Bob Ng,LB2,bob@clinic.example"
    first = [
        f"{ann},Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes",
        f"{ann},Day clinic,{day(3)} 08:00,{day(3)} 16:00,,Yes",
        f"{bob},Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes",
        f"{bob},Day clinic,{day(3)} 08:00,{day(3)} 16:00,,Yes",
        f"{bob},Day clinic,{day(9)} 08:00,{day(9)} 16:00,,Yes",
    ]
    await run_import(core, schedule(*first))
    assert (await service.publish(core, None, actor="cli:admin")).created == 5
    # The practitioner's own event, and a scheduler's own copy of a shift (a second writer).
    fake.put_event(people["ann"], {
        "subject": "Dentist", "start": {"dateTime": f"{day(2)}T17:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"{day(2)}T18:00:00", "timeZone": "UTC"},
    })
    mark = len(fake.operations)
    # Three changes: Ann's second shift moved within its day, Bob's second removed, a new one for Ann.
    # The export covers the days up to its last shift: Bob's shift after that is not removed.
    second = [
        first[0],
        f"{ann},Day clinic,{day(3)} 10:00,{day(3)} 18:00,,Yes",
        first[2],
        f"{ann},Late clinic,{day(4)} 12:00,{day(4)} 20:00,,Yes",
    ]
    summary = await run_import(core, schedule(*second))
    assert (summary.to_create, summary.to_update, summary.to_delete, summary.unchanged) == (1, 1, 1, 3)
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.created, result.updated, result.deleted) == (1, 1, 1)
    assert sorted(m for m, _p, _s in writes(fake, mark)) == ["DELETE", "PATCH", "POST"]
    ann_events = events(people["ann"])
    assert [e.fields["subject"] for e in ann_events] == ["Day clinic", "Dentist", "Day clinic", "Late clinic"]
    assert [e.start.date().isoformat() for e in events(people["bob"])] == [day(2), day(9)]
    # Nothing pending: the same file again writes nothing.
    mark = len(fake.operations)
    await run_import(core, schedule(*second))
    assert (await service.publish(core, None, actor="cli:admin")).writes == 0 and writes(fake, mark) == []


async def test_an_opt_out_removes_future_shifts_and_a_hand_deleted_one_comes_back(
    core: Core, fake: GraphFake, people: dict[str, Mailbox]
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    rows = [f"Ann Lee,LB1,ann@clinic.example,Day clinic,{day(d)} 08:00,{day(d)} 16:00,,Yes" for d in (2, 3)]
    await run_import(core, schedule(*rows))
    await service.publish(core, None, actor="cli:admin")
    first = events(people["ann"])[0]
    fake.remove_event(people["ann"], first.id)
    await service.set_flags(core, None, "Day clinic", actor="cli:admin", free=True)
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.updated, result.created, result.failed) == (1, 1, 0)
    assert [e.fields["showAs"] for e in events(people["ann"])] == ["free", "free"]
    # The scheduler's export now has Ann's identity field empty: her future shift events go.
    await run_import(core, schedule(*(r.replace("ann@clinic.example", "") for r in rows)))
    result = await service.publish(core, None, actor="cli:admin")
    assert result.deleted == 2 and events(people["ann"]) == []


async def test_a_crash_after_the_writes_makes_no_duplicates_on_the_rerun(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    rows = [f"Bob Ng,LB2,bob@clinic.example,Day clinic,{day(d)} 08:00,{day(d)} 16:00,,Yes" for d in range(2, 9)]
    await run_import(core, schedule(*rows))
    real = service._Recorder._flush

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the process died after Graph answered")

    monkeypatch.setattr(service._Recorder, "_flush", crash)
    with pytest.raises(RuntimeError):
        await service.publish(core, None, actor="cli:admin")
    assert len(events(people["bob"])) == 7  # written, but not recorded
    monkeypatch.setattr(service._Recorder, "_flush", real)
    result = await service.publish(core, None, actor="cli:admin")
    assert result.failed == 0 and result.created + result.updated == 7
    bob = events(people["bob"])
    assert len(bob) == 7
    assert len({p["value"] for e in bob for p in e.fields["singleValueExtendedProperties"]
                if p["id"] == SHIFT_ID_PROPERTY}) == 7


async def test_bad_input_and_missing_setup_are_refused_with_words(core: Core, fake: GraphFake) -> None:
    with pytest.raises(Invalid, match="row 2"):
        await run_import(core, schedule(f"Ann,LB1,ann@clinic.example,Day,{day(2)} 25:00,{day(2)} 16:00,,Yes"))
    with pytest.raises(Invalid, match="MB"):
        await service.parse_upload(core, None, "huge.csv", b"x" * (50 * 1024 * 1024 + 1))
    with pytest.raises(Invalid, match="not a schedule export"):
        await service.parse_upload(core, None, "roster.exe", b"MZ")
    with pytest.raises(Invalid, match="identity field"):
        await service.set_identity_field(core, None, "email", actor="cli:admin")
    async with core.store.session() as s:
        assert await s.scalar(select(func.count()).select_from(ShiftRow)) == 0


async def test_publishing_without_a_practice_wide_connection_says_what_to_do(backend: str, tmp_path: Path) -> None:
    settings = make_settings(backend, tmp_path)
    c = open_core(settings)
    await upgrade(c.store)
    try:
        async with c.store.session() as s:
            await create_practice(s, "Solo", ZONE, "test")
        await run_import(c, schedule(f"Ann,LB1,ann@x.example,Day,{day(2)} 08:00,{day(2)} 16:00,,Yes"))
        with pytest.raises(Conflict, match="connection add graph --application"):
            await service.publish(c, None, actor="cli:admin")
    finally:
        await c.close()
        await drop_schema(settings)


@pytest.mark.parametrize("throttle", [ThrottlePolicy.scaled(window=1.0, budget=12, op_latency=0.003)])
async def test_graph_limits_slow_a_big_publish_down_but_never_fail_it(
    core: Core, fake: GraphFake, people: dict[str, Mailbox]
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    rows = [f"{name},LB-{name},{name}@clinic.example,Day clinic,{day(d)} 08:00,{day(d)} 16:00,,Yes"
            for name in ("ann", "bob", "dee") for d in range(2, 32)]
    await run_import(core, schedule(*rows))
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.created, result.failed) == (90, 0)
    assert [len(events(people[n])) for n in ("ann", "bob", "dee")] == [30, 30, 30]
    stats = fake.throttle.stats
    # 30 writes per mailbox against 12 per second: the budget throttled, the client waited its Retry-After.
    assert sum(st.rejected_budget for st in stats.values()) > 0
    # One item per mailbox per batch and 4 batches in flight: never over the 4-concurrent limit.
    assert max(st.max_in_flight for st in stats.values()) <= 4
    assert sum(st.rejected_concurrency for st in stats.values()) == 0


class _PublishThroughFake:
    """Graph's publishing with MSAL routed to the fake authority (the CLI has no transport option)."""

    def __init__(self, fake: GraphFake) -> None:
        self.fake = fake

    def open(self, conn: Any, host: Any) -> Any:
        routed = replace(conn, transport=GraphTransports(login=self.fake.login.http_client(self.fake.url)))
        return GraphShiftPublisher(routed, host)


async def test_the_cli_imports_and_publishes_a_file(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if core.settings.database_schema:
        pytest.skip("the CLI reads its database from the environment; the PostgreSQL run uses a schema")
    monkeypatch.setitem(registry.OVERRIDES, "graph", replace(INTEGRATION, publishing=_PublishThroughFake(fake)))
    export = tmp_path / "december.csv"
    export.write_bytes(schedule(
        f"Ann Lee,LB1,ann@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes",
        f"Cy Roe,LB3,,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes",
    ))
    env = {
        "CLINICBOT_DATABASE_URL": core.settings.database_url, "CLINICBOT_SECRET_KEY": TEST_KEY,
        "CLINICBOT_GRAPH_CLIENT_ID": CLIENT_ID, "CLINICBOT_GRAPH_CLIENT_SECRET": CLIENT_SECRET,
        "CLINICBOT_GRAPH_URL": fake.url,
    }
    runner = CliRunner()

    def cli(*args: str) -> Any:
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    assert (await asyncio.to_thread(cli, "shifts", "identity-field", "custom1")).exit_code == 0
    dry = await asyncio.to_thread(cli, "shifts", "import", str(export), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["create"] == 1 and events(people["ann"]) == []
    done = await asyncio.to_thread(cli, "shifts", "import", str(export), "--json")
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    assert (out["created"], out["no_identity"], out["not_mapped"]) == (1, "Cy Roe", 1)
    assert [e.fields["subject"] for e in events(people["ann"])] == ["Day clinic"]
    flags = await asyncio.to_thread(cli, "shifts", "flags", "Day clinic", "--free", "--json")
    assert flags.exit_code == 0 and json.loads(flags.output)["shifts_changed"] == 1
    again = await asyncio.to_thread(cli, "shifts", "publish", "--json")
    assert again.exit_code == 0 and json.loads(again.output)["updated"] == 1
    assert events(people["ann"])[0].fields["showAs"] == "free"
    export.write_text("Person,Start\nAnn,tomorrow\n")
    bad = await asyncio.to_thread(cli, "shifts", "import", str(export))
    assert bad.exit_code == 1 and "row 1" in bad.output and "assignment" in bad.output


async def test_check_finds_a_second_writer_and_ignores_clinicbots_own_events(
    core: Core, fake: GraphFake, people: dict[str, Mailbox]
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await service.set_flags(core, None, "Day clinic", actor="cli:admin", info=False)
    rows = [f"{n} X,LB-{n},{n}@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes" for n in ("ann", "bob")]
    await run_import(core, schedule(*rows))
    await service.publish(core, None, actor="cli:admin")
    # Bob's calendar also gets the shift from the scheduler's own Outlook integration, named after it.
    start = datetime.fromisoformat(f"{day(2)}T08:00").replace(tzinfo=ZoneInfo(ZONE)).astimezone(UTC)
    fake.put_event(people["bob"], {
        "subject": "Day clinic",
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
    })
    found = await service.second_writers(core, None)
    assert [(f.mailbox, f.person, f.lookalikes) for f in found] == [("bob@clinic.example", "bob X", 1)]


async def test_the_periodic_job_publishes_what_is_pending_and_then_nothing(
    core: Core, fake: GraphFake, people: dict[str, Mailbox]
) -> None:
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await run_import(core, schedule(f"Ann Lee,LB1,ann@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes"))
    async with core.store.session() as s:
        practice_id = (await s.scalar(select(ShiftRow.practice_id)))
    assert await service.pending_count(core, practice_id) == 1
    await service.publish_pending_job(core)
    assert len(events(people["ann"])) == 1 and await service.pending_count(core, practice_id) == 0
    mark = len(fake.operations)
    await service.publish_pending_job(core)
    assert writes(fake, mark) == []
    async with core.store.session() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "shifts.publish"))
        assert entry is not None and entry.actor == "system:shifts"


async def test_the_directory_checks_every_chunk_of_people_at_once_and_resends_a_throttled_lookup(
    core: Core, fake: GraphFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish checks people 20 at a time; every chunk's lookup goes out together (a mailbox whose
    check came back late would start, and so finish, late). A lookup Graph throttles is asked again."""
    from adapters.graph.client import BatchResult, GraphClient

    known = [f"p{n}" for n in range(80)]
    for name in known:
        fake.add_user(f"{name}@clinic.example", tenant_id=TENANT)
    ghosts = [f"ghost{n}" for n in range(20)]
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    rows = [f"{name},LB-{name},{name}@clinic.example,Day clinic,{day(d)} 08:00,{day(d)} 16:00,,Yes"
            for name in known + ghosts for d in (2, 3)]
    await run_import(core, schedule(*rows))

    original = GraphClient._send_batch
    state = {"now": 0, "most": 0, "throttled": 0}

    async def slow_lookups(self: GraphClient, chunk: list[Any], sequential: bool) -> dict[str, BatchResult]:
        if chunk[0].method != "GET":
            return await original(self, chunk, sequential)
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        try:
            await asyncio.sleep(0.05)
            answers = await original(self, chunk, sequential)
        finally:
            state["now"] -= 1
        if not state["throttled"]:
            state["throttled"] = 1
            first = chunk[0].id
            answers[first] = BatchResult(first, 429, {"Retry-After": "0"}, {"error": {"code": "TooManyRequests"}})
        return answers

    monkeypatch.setattr(GraphClient, "_send_batch", slow_lookups)
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.created, result.failed) == (160, 0)
    assert sorted(result.unknown_people) == sorted(f"{g}@clinic.example" for g in ghosts)
    assert state["most"] == 5  # 100 people: five chunks of 20, all in flight together
    assert sum(len(events(fake.store.resolve(f"{n}@clinic.example"))) for n in known) == 160


async def test_the_last_partial_round_is_spread_over_smaller_batches_within_the_request_budget(
    core: Core, fake: GraphFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full batches for the full rounds (every writer sending 20); what is left after them goes in
    smaller batches over more writers, so it takes fewer of Graph's 4-at-a-time turns, spending at most
    5% more requests than the minimum (one per 20 writes). Every shift lands once."""
    from adapters.graph.client import BatchResult, GraphClient

    people = [f"p{n}" for n in range(40)]
    for name in people:
        fake.add_user(f"{name}@clinic.example", tenant_id=TENANT)
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    rows = [f"{name},LB-{name},{name}@clinic.example,Day clinic,{day(d)} 08:00,{day(d)} 09:00,,Yes"
            for name in people for d in range(2, 32)]
    await run_import(core, schedule(*rows))

    original = GraphClient._send_batch
    sizes: list[int] = []

    async def record(self: GraphClient, chunk: list[Any], sequential: bool) -> dict[str, BatchResult]:
        if chunk[0].method != "GET":
            sizes.append(len(chunk))
        return await original(self, chunk, sequential)

    monkeypatch.setattr(GraphClient, "_send_batch", record)
    result = await service.publish(core, None, actor="cli:admin")
    assert (result.created, result.failed) == (1200, 0)
    assert sum(sizes) == 1200
    # 1,200 writes: 60 batches at the least, 63 at the most. 40 mailboxes keep 8 batches in flight, so
    # 7 full rounds carry 1,120 writes and the last 80 (4 full batches) are spread over more writers.
    assert 60 < len(sizes) <= 63
    assert max(sizes[-7:]) < 20
    assert all(len(events(fake.store.resolve(f"{n}@clinic.example"))) == 30 for n in people)


async def test_signing_in_ahead_of_the_plan_is_best_effort(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publish signs in while it loads its plan; if that fails, the first request signs in (and would
    report a real failure), so the publish goes on as before."""
    from adapters.graph.client import GraphClient

    calls = {"n": 0}

    async def broken(self: GraphClient) -> None:
        calls["n"] += 1
        raise RuntimeError("sign-in service hiccup")

    monkeypatch.setattr(GraphClient, "sign_in", broken)
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await run_import(core, schedule(f"Ann Lee,LB1,ann@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes"))
    result = await service.publish(core, None, actor="cli:admin")
    assert calls["n"] == 1
    assert (result.created, result.failed) == (1, 0)
    assert len(events(people["ann"])) == 1
