"""`status` (Slack and Teams) and `clinicbot sync status` show the last shift publish: when, from which
file, the counts created/updated/deleted/skipped unmapped/failed, and what is still pending."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from bot.cli import main
from bot.commands import admin
from bot.slack import render as slack_render
from bot.teams import cards as teams_cards
from bot.views import Status
from sync.runtime.core import Core
from sync.services import shifts as service
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.graph.fakes.graph_store import Mailbox
from tests.adapters.shifts.conftest import ZONE
from tests.bot.clinic import make_actor
from tests.conftest import TEST_KEY

HEADER = "Person,UniqueID,Custom1,Assignment,Start,End,Notes,Published\n"


def day(offset: int) -> str:
    return (datetime.now(ZoneInfo(ZONE)) + timedelta(days=offset)).strftime("%Y-%m-%d")


async def _import(core: Core, name: str, rows: list[str]) -> None:
    data = (HEADER + "".join(r + "\n" for r in rows)).encode()
    await service.import_schedule(core, None, await service.parse_upload(core, None, name, data), actor="cli:admin")


async def test_status_shows_the_last_publish_and_what_is_pending(
    core: Core, fake: GraphFake, people: dict[str, Mailbox], backend: str, tmp_path: Path
) -> None:
    actor = await make_actor(core, "UADMIN", ("admin", "staff"))
    view = await admin.status(core, actor)
    assert isinstance(view, Status) and view.shift_publish == ""  # no shift schedule: nothing said

    await service.set_identity_field(core, None, "custom1", actor="cli:admin")
    await _import(core, "december.csv", [
        f"Ann Lee,LB1,ann@clinic.example,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes",
        f"Bob Ray,LB2,bob@clinic.example,Night call,{day(3)} 19:00,{day(4)} 07:00,,Yes",
        f"Cy Roe,LB3,,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes",
    ])
    [before] = await service.last_publishes(core)
    assert (before.at, before.pending, before.origin) == (None, 2, "december.csv")
    view = await admin.status(core, actor)
    assert isinstance(view, Status)
    assert view.shift_publish == "Shifts: never published to Outlook; 2 changes pending from december.csv"

    await service.publish(core, None, actor="cli:admin")
    # A second schedule: Bob's shift moved, Ann's removed; stored but not yet published.
    await _import(core, "december-v2.csv", [
        f"Bob Ray,LB2,bob@clinic.example,Night call,{day(3)} 20:00,{day(4)} 08:00,,Yes",
        f"Cy Roe,LB3,,Day clinic,{day(2)} 08:00,{day(2)} 16:00,,Yes",
    ])
    [last] = await service.last_publishes(core)
    assert last.at is not None and last.by == "cli:admin" and last.origin == "december.csv"
    assert (last.created, last.updated, last.deleted, last.skipped_unmapped, last.failed, last.pending) == (
        2, 0, 0, 1, 0, 2)

    view = await admin.status(core, actor)
    assert isinstance(view, Status)
    assert view.shift_publish.startswith("Last shift publish ")
    assert ("from december.csv: 2 created, 0 updated, 0 deleted, 1 skipped (no sign-in), 0 failed; 2 pending"
            in view.shift_publish)
    _text, blocks = slack_render.message(view)
    assert "2 created, 0 updated, 0 deleted, 1 skipped (no sign-in)" in json.dumps(blocks)
    card = json.dumps(teams_cards.render_parts(view))
    assert "2 created, 0 updated, 0 deleted, 1 skipped (no sign-in)" in card

    published = await service.publish(core, None, actor="system:shifts")
    assert (published.updated, published.deleted) == (1, 1)
    [last] = await service.last_publishes(core)
    assert (last.by, last.origin, last.updated, last.deleted, last.pending) == (
        "system:shifts", "december-v2.csv", 1, 1, 0)

    if backend != "sqlite":
        return  # the CLI reads its database from the environment; the PostgreSQL run uses a schema
    env = {"CLINICBOT_DATABASE_URL": core.settings.database_url, "CLINICBOT_SECRET_KEY": TEST_KEY}
    runner = CliRunner()
    out = await asyncio.to_thread(runner.invoke, main, ["sync", "status", "--json"], env=env,
                                  catch_exceptions=False)
    assert out.exit_code == 0, out.output
    rows = {r["provider"]: r for r in json.loads(out.output)}
    shift = rows["shifts"]["shift_publish"]
    assert (shift["origin"], shift["updated"], shift["deleted"], shift["pending"]) == ("december-v2.csv", 1, 1, 0)
    assert rows["graph"]["shift_publish"] is None
    table = await asyncio.to_thread(runner.invoke, main, ["sync", "status"], env=env, catch_exceptions=False)
    assert "from december-v2.csv by system:shifts: 0 created, 1 updated, 1 deleted" in table.output
