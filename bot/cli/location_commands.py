"""`clinicbot location add|list`: a practice's locations (chat: `locations`, `location add`)."""

from __future__ import annotations

import click

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from bot.cli.people import cli_actor
from sync.runtime.core import Core
from sync.services.errors import ServiceError
from sync.services.locations import add_location, list_locations
from sync.services.practices import the_practice

__all__ = ["location"]

COLUMNS = ["id", "name", "address", "timezone", "refs"]


@click.group()
def location() -> None:
    """The practice's locations."""


@location.command("add")
@click.argument("name")
@click.option("--address", default=None, help="The street address (shown in appointment details).")
@click.option("--tz", "timezone", default=None, help="IANA time zone when it differs from the practice's.")
@click.option("--ref", "refs", multiple=True,
              help="Another name or a platform's id for it (Square location id, \"Northside Clinic\"); repeatable.")
@click.option("--practice", "practice_name", default=None, help="Practice name (needed when there are several).")
@json_option
@with_core
async def location_add(core: Core, name: str, address: str | None, timezone: str | None, refs: tuple[str, ...],
                       practice_name: str | None, as_json: bool) -> None:
    """Add a location (again with --ref: give it more names); bookings at it are placed there."""
    try:
        async with core.store.session() as s:
            practice_id = (await the_practice(s, practice_name)).id
        row = await add_location(core, practice_id, name, address=address, timezone=timezone, refs=refs,
                                 actor=cli_actor())
    except ServiceError as exc:
        fail(str(exc))
        return
    emit({"id": row.id, "name": row.name, "address": row.address, "timezone": row.timezone,
          "refs": ", ".join(row.refs)}, COLUMNS, as_json)


@location.command("list")
@click.option("--practice", "practice_name", default=None, help="Practice name (needed when there are several).")
@json_option
@with_core
async def location_list(core: Core, practice_name: str | None, as_json: bool) -> None:
    """List the practice's locations."""
    try:
        async with core.store.session() as s:
            practice_id = (await the_practice(s, practice_name)).id
    except ServiceError as exc:
        fail(str(exc))
        return
    rows = [{"id": r.id, "name": r.name, "address": r.address, "timezone": r.timezone, "refs": ", ".join(r.refs)}
            for r in await list_locations(core, practice_id)]
    emit(rows, COLUMNS, as_json, title="Locations")
