"""The mapping card (Slack and Teams): a person mapped to a UPN typed on the card (checked with Graph,
audited), and the second-writer warning from the bounded check (stored; the card never asks Graph)."""

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
from sqlalchemy import select

from adapters.graph import INTEGRATION
from bot.cli import main
from bot.commands import decode, handle
from bot.commands.actions import MapShiftUpn, OpenShiftMapping
from bot.slack.elements import input_action
from bot.slack.shift_render import blocks_for
from bot.teams.shift_cards import parts_for
from bot.views import ShiftMappingCard
from sync.integrations import registry
from sync.runtime.core import Core
from sync.services import shifts as service
from sync.store.model import AuditEntry, Connection
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.adapters.shifts.conftest import CLIENT_ID, CLIENT_SECRET, ZONE
from tests.adapters.shifts.test_publish import _PublishThroughFake
from tests.bot.clinic import make_actor
from tests.conftest import TEST_KEY

HEADER = "Person,UniqueID,Custom1,Assignment,Start,End,Notes,Published\n"


def day(offset: int) -> str:
    return (datetime.now(ZoneInfo(ZONE)) + timedelta(days=offset)).strftime("%Y-%m-%d")


def events(mbx: Mailbox) -> list[Any]:
    return [e for c in mbx.calendars.values() for e in c.events.values()]


async def _import(core: Core, rows: list[str]) -> None:
    data = (HEADER + "".join(r + "\n" for r in rows)).encode()
    await service.import_schedule(core, None, await service.parse_upload(core, None, "s.csv", data),
                                  actor="cli:admin")


def _slack_boxes(card: ShiftMappingCard) -> list[dict[str, Any]]:
    return [b for b in blocks_for(card)[1] if b["type"] == "input"]


async def test_a_person_is_mapped_to_a_sign_in_typed_on_the_card(
    core: Core, fake: GraphFake, people: dict[str, Mailbox]
) -> None:
    admin = await make_actor(core, "UADMIN", ("admin", "staff"))
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await _import(core, [f"Cy Roe,LB3,,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes",
                         f"Ann Lee,LB1,ann@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes"])
    card = await handle(core, admin, OpenShiftMapping())
    assert isinstance(card, ShiftMappingCard)
    assert card.upn_boxes == (MapShiftUpn("Cy Roe", ""), None)  # only the person who gets nothing has a box

    # Slack: a text box that dispatches on Enter; its block carries the action, the typed text is the "u".
    [box] = _slack_boxes(card)
    assert box["dispatch_action"] is True and box["element"]["type"] == "plain_text_input"
    assert box["element"]["dispatch_action_config"] == {"trigger_actions_on": ["on_enter_pressed"]}
    action_id = box["element"]["action_id"].removeprefix("clinic.")
    typed = decode(action_id, input_action(box["block_id"], " Ghost@Clinic.example "))
    assert typed == MapShiftUpn("Cy Roe", " Ghost@Clinic.example ")
    # Teams: an Input.Text "u" next to its button; the button's data has the person, the box the sign-in.
    body, _actions = parts_for(card)
    text_box = next(x for x in body if x.get("type") == "Input.Text")
    assert text_box["id"] == "u" and text_box["style"] == "Email"
    button = next(a for x in body if x.get("type") == "ActionSet" for a in x["actions"]
                  if a["title"] == "Map to sign-in")
    assert decode(button["verb"], {**button["data"], "u": "dee@clinic.example"}) == MapShiftUpn(
        "Cy Roe", "dee@clinic.example")

    # Not a sign-in: refused on the card, nothing changes.
    bad = await handle(core, admin, MapShiftUpn("Cy Roe", "not an address"))
    assert isinstance(bad, ShiftMappingCard) and "is not a Microsoft sign-in" in bad.problem
    # Microsoft 365 does not know it: refused with a clear message, nothing stored, nothing audited.
    unknown = await handle(core, admin, typed)
    assert isinstance(unknown, ShiftMappingCard)
    assert unknown.problem == ("Cy Roe: Microsoft 365 has no user ghost@clinic.example; check the spelling "
                               "(their sign-in, as name@domain) and try again")
    assert "Microsoft 365 has no user" in json.dumps(blocks_for(unknown)[1])
    assert "Microsoft 365 has no user" in json.dumps(parts_for(unknown)[0])
    async with core.store.session() as s:
        assert await s.scalar(select(AuditEntry).where(AuditEntry.action == "shifts.map_person")) is None
    assert (await service.publish(core, None, actor="cli:admin")).created == 1  # Ann's only

    done = await handle(core, admin, MapShiftUpn("Cy Roe", "Dee@clinic.example"))
    assert isinstance(done, ShiftMappingCard) and done.problem == ""
    assert done.notice.startswith("Cy Roe's shifts go to dee@clinic.example: 1 future shift change;")
    assert [(p.name, p.how, p.mailbox) for p in done.people if p.name == "Cy Roe"] == [
        ("Cy Roe", "mapped", "dee@clinic.example")]
    assert _slack_boxes(done) == []  # everyone gets their shifts now
    async with core.store.session() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "shifts.map_person"))
        assert entry is not None and entry.actor == admin.audit_name
        assert (entry.before, entry.after["upn"]) == ({"person": "Cy Roe"}, "dee@clinic.example")
    assert (await service.publish(core, None, actor="cli:admin")).created == 1
    assert [e.fields["subject"] for e in events(people["dee"])] == ["Day clinic"]


async def test_without_outlook_the_sign_in_is_stored_and_checked_at_publish(
    core: Core, fake: GraphFake, people: dict[str, Mailbox]
) -> None:
    admin = await make_actor(core, "UADMIN", ("admin", "staff"))
    await _import(core, [f"Cy Roe,,,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes"])
    async with core.store.session() as s:
        graph = await s.scalar(select(Connection).where(Connection.provider == "graph"))
        assert graph is not None
        graph.status = "disabled"
    assert await service.check_people(core, None, ["nobody@clinic.example"]) is None
    done = await handle(core, admin, MapShiftUpn("Cy Roe", "nobody@clinic.example"))
    assert isinstance(done, ShiftMappingCard) and done.problem == ""
    assert [p.mailbox for p in done.people] == ["nobody@clinic.example"]


async def test_the_second_writer_check_is_bounded_stored_and_shown_on_the_card(
    core: Core, fake: GraphFake, people: dict[str, Mailbox]
) -> None:
    admin = await make_actor(core, "UADMIN", ("admin", "staff"))
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await _import(core, [
        f"Ann X,LB1,ann@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes",
        f"Bob X,LB2,bob@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes",
        f"Bob X,LB2,bob@clinic.example,Day clinic,{day(3)} 08:00,{day(3)} 16:00,,Yes",
    ])
    await service.publish(core, None, actor="cli:admin")
    assert await service.stored_second_writers(core, None) is None
    start = datetime.fromisoformat(f"{day(2)}T08:00").replace(tzinfo=ZoneInfo(ZONE)).astimezone(UTC)
    fake.put_event(people["bob"], {  # the scheduler's own Outlook integration wrote Bob's shift too
        "subject": "Day clinic",
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
    })
    card = await handle(core, admin, OpenShiftMapping())
    assert isinstance(card, ShiftMappingCard) and card.second_writers == ()

    # No time left: nothing looked at, and it says it stopped.
    stopped = await service.check_second_writers(core, None, seconds=0)
    assert (stopped.checked, stopped.of, stopped.complete, stopped.found) == (0, 2, False, ())
    # A sample of one calendar: the busiest (Bob, two shifts) first.
    check = await service.check_second_writers(core, None, mailboxes=1)
    assert (check.checked, check.of, check.complete) == (1, 2, True)
    assert [(f.mailbox, f.person, f.lookalikes) for f in check.found] == [("bob@clinic.example", "Bob X", 1)]
    assert await service.stored_second_writers(core, None) == check

    mark = len(fake.operations)
    card = await handle(core, admin, OpenShiftMapping())
    assert len(fake.operations) == mark  # the card reads the stored answer; it never waits on Graph
    assert isinstance(card, ShiftMappingCard)
    assert card.second_writers[0] == ("Bob X (bob@clinic.example): 1 event with a shift's subject and times that "
                                      "clinicbot did not write")
    assert "in 1 of 2 calendars" in card.second_writers[-1]
    assert "Another writer already puts these shifts in Outlook" in json.dumps(blocks_for(card)[1])
    assert "Bob X (bob@clinic.example): 1 event" in json.dumps(parts_for(card)[0])

    # The periodic job looks again (a sample of 10: both calendars).
    await service.second_writer_job(core)
    again = await service.stored_second_writers(core, None)
    assert again is not None and (again.checked, again.of, len(again.found)) == (2, 2, 1)


async def test_doctor_warns_of_a_second_writer(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if core.settings.database_schema:
        pytest.skip("the CLI reads its database from the environment; the PostgreSQL run uses a schema")
    monkeypatch.setitem(registry.OVERRIDES, "graph", replace(INTEGRATION, publishing=_PublishThroughFake(fake)))
    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await _import(core, [f"Ann X,LB1,ann@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes"])
    await service.publish(core, None, actor="cli:admin")
    env = {"CLINICBOT_DATABASE_URL": core.settings.database_url, "CLINICBOT_SECRET_KEY": TEST_KEY,
           "CLINICBOT_GRAPH_CLIENT_ID": CLIENT_ID, "CLINICBOT_GRAPH_CLIENT_SECRET": CLIENT_SECRET,
           "CLINICBOT_GRAPH_URL": fake.url}
    runner = CliRunner()
    clean = await asyncio.to_thread(runner.invoke, main, ["doctor"], env=env, catch_exceptions=False)
    assert "shift schedule: no second writer in 1 of 1 calendars" in clean.output

    start = datetime.fromisoformat(f"{day(2)}T08:00").replace(tzinfo=ZoneInfo(ZONE)).astimezone(UTC)
    fake.put_event(people["ann"], {
        "subject": "Day clinic",
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
    })
    warned = await asyncio.to_thread(runner.invoke, main, ["doctor"], env=env, catch_exceptions=False)
    assert warned.exit_code == 1
    assert "another writer already puts the shifts in Outlook: Ann X (1) (1 of 1 calendars)" in warned.output
    assert "turn off the scheduler's own Outlook integration" in warned.output
