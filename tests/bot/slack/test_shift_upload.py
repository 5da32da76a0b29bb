"""A shift schedule export sent to the bot in its Slack DM, through the running server, to the fake Graph.

The admin's file arrives as Slack sends it (a signed `message` event with the file, and a
`file_shared` event naming it); the bot fetches `url_private` with its token from the fake Slack,
imports, publishes to the practice-wide Outlook connection, and answers with the summary card.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from adapters.graph import GraphTransports
from bot.commands.shift_upload import MAX_BYTES
from sync.runtime.settings import Settings
from sync.services import shifts
from sync.services.connections import add_practice_wide
from sync.store.model import AuditEntry, ConsentGrant, Practice, Practitioner, ShiftRow
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.bot.clinic import make_actor
from tests.bot.slack.conftest import SlackClient
from tests.conftest import drop_schema, make_settings
from tests.fakes.slack import BOT_TOKEN

CLIENT_ID = "00000000-aaaa-4bbb-8ccc-000000000001"
CLIENT_SECRET = "fake-secret-for-tests"
TENANT = "11111111-2222-4333-8444-555555555555"


def day(offset: int) -> str:
    return (datetime.now(ZoneInfo("Europe/London")) + timedelta(days=offset)).strftime("%Y-%m-%d")


EXPORT = (
    "Person,UniqueID,Custom1,Assignment,Start,End,Notes,Published\n"
    f"Dr Lee,LB1,lee@clinic.example,Night call,{day(2)} 19:00,{day(2)} 07:00,Ward B,Yes\n"
    f"Dr Kim,LB2,kim@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes\n"
    f"Cy Roe,LB3,,Day clinic,{day(3)} 08:00,{day(3)} 12:00,,Yes\n"
    f"Ghost,LB4,ghost@clinic.example,Day clinic,{day(3)} 08:00,{day(3)} 12:00,,Yes\n"
).encode()


@pytest.fixture
async def graph() -> AsyncIterator[GraphFake]:
    fake = GraphFake()
    await fake.start()
    fake.login.register_app(CLIENT_ID, CLIENT_SECRET)
    fake.login.grant_admin_consent(TENANT)
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def settings(backend: str, tmp_path: Path, graph: GraphFake) -> AsyncIterator[Settings]:
    s = make_settings(backend, tmp_path, graph_url=graph.url, graph_client_id=CLIENT_ID,
                      graph_client_secret=CLIENT_SECRET, allow_private_urls=True)
    yield s
    await drop_schema(s)


@pytest.fixture
async def outlook(slack: SlackClient, graph: GraphFake) -> dict[str, Mailbox]:
    """The seeded practice's practice-wide Outlook connection, after the tenant's consent."""
    core = slack.core
    core.services.http_transport = GraphTransports(login=graph.login.http_client(graph.url))
    async with core.store.session() as s:
        practice = await s.scalar(select(Practice).where(Practice.name == "default"))
        assert practice is not None
        s.add(ConsentGrant(practice_id=practice.id, tenant_id=TENANT, granted=True))
    await add_practice_wide(core, "graph", None, TENANT, actor="cli:admin")
    return {f"{n}@clinic.example": graph.add_user(f"{n}@clinic.example", tenant_id=TENANT) for n in ("lee", "kim")}


def file_event(file: dict[str, Any], *, user: str = "US", event_id: str = "Ev1") -> bytes:
    return json.dumps({
        "token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback", "event_id": event_id,
        "event_time": 1, "event": {"type": "message", "subtype": "file_share", "channel": f"D{user}",
                                   "channel_type": "im", "user": user, "text": "", "ts": "1.000100",
                                   "files": [file]},
    }).encode()


def shared_event(file_id: str, *, user: str = "US", event_id: str = "Ev2") -> bytes:
    return json.dumps({
        "token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback", "event_id": event_id,
        "event_time": 1, "event": {"type": "file_shared", "file_id": file_id, "user_id": user,
                                   "channel_id": f"D{user}", "file": {"id": file_id}, "event_ts": "1.000200"},
    }).encode()


async def send(slack: SlackClient, body: bytes) -> None:
    response = await slack.post(body, headers={"Content-Type": "application/json"})
    assert response.status == 200
    await slack.settle()


def answers(slack: SlackClient, channel: str = "DUS") -> list[str]:
    return [json.dumps(c.args) for c in slack.fake.calls_to("chat.postMessage") if c.args.get("channel") == channel]


def calendar(mailboxes: dict[str, Mailbox], upn: str) -> list[Any]:
    mbx = mailboxes[upn]
    return sorted((e for c in mbx.calendars.values() for e in c.events.values()), key=lambda e: e.start)


async def test_an_admin_sends_a_schedule_in_slack_and_outlook_gets_it(
    slack: SlackClient, outlook: dict[str, Mailbox]
) -> None:
    await make_actor(slack.core, "US", ("admin",))
    await shifts.set_identity_field(slack.core, None, "custom1", actor="cli:admin")
    await send(slack, file_event(slack.fake.add_file("december.csv", EXPORT)))
    [fetch] = slack.fake.file_fetches
    assert fetch[1] == BOT_TOKEN  # url_private with the bot token
    [card] = answers(slack)
    assert "4 shifts (4 published) read from december.csv" in card
    assert "Outlook: 2 added, 0 changed, 0 removed" in card
    assert "Cy Roe" in card and "ghost@clinic.example" in card and "clinic.shifts_map" in card
    [night] = calendar(outlook, "lee@clinic.example")
    assert night.fields["subject"] == "Night call" and night.end - night.start == timedelta(hours=12)
    assert [e.fields["subject"] for e in calendar(outlook, "kim@clinic.example")] == ["Day clinic"]
    async with slack.core.store.session() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "shifts.publish"))
        assert entry is not None and entry.actor.startswith("slack:")

    # "Map people" opens the mapping card; Cy Roe goes to Dr Kim's calendar from it.
    status, _ = await slack.interact_json(slack.action_payload("clinic.shifts_map", "{}", rid="map"))
    assert status == 200
    await slack.settle()
    mapping = json.dumps(slack.fake.responses["map"][-1])
    assert "Who gets the shifts" in mapping and "no sign-in: gets nothing" in mapping
    assert "Send to Outlook: on" in mapping and "Show as free: off" in mapping
    pick = next(o["value"] for b in slack.fake.responses["map"][-1]["blocks"]
                if b.get("block_id", "").startswith("shifts:person") and "Cy Roe" in b["text"]["text"]
                for o in b["accessory"]["options"] if "Dr Kim" in o["text"]["text"])
    payload = slack.action_payload("clinic.shifts_person", pick, rid="map")
    payload["actions"][0] = {"type": "static_select", "action_id": "clinic.shifts_person", "block_id": "b1",
                             "selected_option": {"value": pick}, "action_ts": "1"}
    await make_kim_reachable(slack)
    assert (await slack.interact_json(payload))[0] == 200
    await slack.settle()
    assert "Cy Roe's shifts go to kim@clinic.example" in json.dumps(slack.fake.responses["map"][-1])


async def make_kim_reachable(slack: SlackClient) -> None:
    """Dr Kim's e-mail on record: where the mapping sends a person's shifts when no sign-in is stored."""
    async with slack.core.store.session() as s:
        kim = await s.scalar(select(Practitioner).where(Practitioner.handle == "dr-kim"))
        assert kim is not None
        kim.email = "kim@clinic.example"


async def test_one_file_is_read_once_and_refusals_say_why(slack: SlackClient) -> None:
    await make_actor(slack.core, "US", ("admin",))
    await make_actor(slack.core, "UX", ("staff",))
    good = slack.fake.add_file("december.csv", EXPORT)
    # Both events Slack sends for one file in the DM: imported once.
    await send(slack, file_event(good))
    await send(slack, shared_event(good["id"]))
    assert len(slack.fake.file_fetches) == 1 and len(answers(slack)) == 1
    assert "not published" in answers(slack)[0]  # no Outlook connection: stored, and told so
    # file_shared alone (no message event): files.info gives the URL.
    other = slack.fake.add_file("january.csv", EXPORT)
    await send(slack, shared_event(other["id"], event_id="Ev3"))
    assert len(slack.fake.file_fetches) == 2 and len(answers(slack)) == 2

    huge = slack.fake.add_file("huge.csv", b"x", stated_size=MAX_BYTES + 1)
    await send(slack, file_event(huge, event_id="Ev4"))
    assert "larger than 10 MB" in answers(slack)[-1] and len(slack.fake.file_fetches) == 2
    bad = slack.fake.add_file("bad.csv", b"Person,Start\nAnn,soon\n")
    await send(slack, file_event(bad, event_id="Ev5"))
    assert "row 1" in answers(slack)[-1]
    await send(slack, file_event(slack.fake.add_file("good.csv", EXPORT), user="UX", event_id="Ev6"))
    assert "admin" in answers(slack, "DUX")[-1]
    # A file in a channel (not the bot's DM) is left alone.
    channel_msg = json.loads(file_event(slack.fake.add_file("chan.csv", EXPORT), event_id="Ev7"))
    channel_msg["event"].update(channel="C1", channel_type="channel")
    await send(slack, json.dumps(channel_msg).encode())
    async with slack.core.store.session() as s:
        imports = await s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "shifts.import"))
        assert imports == 2 and await s.scalar(select(func.count()).select_from(ShiftRow)) == 4
    assert len(slack.fake.file_fetches) == 3  # bad.csv fetched; the staff member's and the channel's not


async def test_a_sign_in_typed_in_the_mapping_card_maps_a_person(
    slack: SlackClient, outlook: dict[str, Mailbox], graph: GraphFake
) -> None:
    await make_actor(slack.core, "US", ("admin",))
    await shifts.set_identity_field(slack.core, None, "custom1", actor="cli:admin")
    # The scheduler's own Outlook integration already wrote Dr Kim's shift: a second writer.
    start = datetime.fromisoformat(f"{day(2)}T08:00").replace(tzinfo=ZoneInfo("Europe/London")).astimezone(UTC)
    graph.put_event(outlook["kim@clinic.example"], {
        "subject": "Day clinic",
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
    })
    await send(slack, file_event(slack.fake.add_file("december.csv", EXPORT)))
    [card] = answers(slack)
    assert "another writer already puts these shifts in Outlook" in card
    assert "Dr Kim (kim@clinic.example): 1 event with a shift's subject and times" in card
    assert (await slack.interact_json(slack.action_payload("clinic.shifts_map", "{}", rid="map")))[0] == 200
    await slack.settle()
    assert "Another writer already puts these shifts in Outlook" in json.dumps(slack.fake.responses["map"][-1])
    box = next(b for b in slack.fake.responses["map"][-1]["blocks"]
               if b["type"] == "input" and "Cy Roe" in b["label"]["text"])

    def typed(text: str) -> dict[str, Any]:
        """What Slack sends when Enter is pressed in the box: a block action with the text as its value."""
        payload = slack.action_payload(box["element"]["action_id"], "", rid="map")
        payload["actions"][0] = {"type": "plain_text_input", "action_id": box["element"]["action_id"],
                                 "block_id": box["block_id"], "value": text, "action_ts": "1"}
        return payload

    assert (await slack.interact_json(typed("nobody@clinic.example")))[0] == 200
    await slack.settle()
    refused = json.dumps(slack.fake.responses["map"][-1])
    assert "Microsoft 365 has no user nobody@clinic.example" in refused
    assert (await slack.interact_json(typed("Kim@Clinic.example")))[0] == 200
    await slack.settle()
    assert "Cy Roe's shifts go to kim@clinic.example" in json.dumps(slack.fake.responses["map"][-1])
    async with slack.core.store.session() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "shifts.map_person"))
        assert entry is not None and entry.actor.startswith("slack:") and entry.after["upn"] == "kim@clinic.example"
    published = await shifts.publish(slack.core, None, actor="cli:admin")
    assert published.created == 1 and len(calendar(outlook, "kim@clinic.example")) == 3  # 2 ours, 1 the scheduler's
    # A box whose block was tampered with is refused, not guessed at.
    bad = typed("kim@clinic.example")
    bad["actions"][0]["block_id"] = "clinic.in:u:{not json"
    assert (await slack.interact_json(bad))[0] == 200
    await slack.settle()
    assert "not valid" in json.dumps(slack.fake.responses["map"][-1])
