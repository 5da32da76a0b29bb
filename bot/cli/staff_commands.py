"""`clinicbot staff map|unmap|list`: which practitioner a booking platform's staff id names."""

from __future__ import annotations

import click

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from bot.cli.people import cli_actor
from sync.runtime.core import Core
from sync.services.practices import PracticeError, find_practitioner, practice_by_name
from sync.services.staff import StaffError, list_mappings, unassigned_calendars
from sync.services.staff_mapping import map_staff_member, unmap_staff_member

COLUMNS = ["id", "integration", "kind", "external_id", "practitioner"]


@click.group()
def staff() -> None:
    """Staff mapping: a booking platform's staff ids (Square team member, Acuity calendar...) to practitioners."""


@staff.command("map")
@click.argument("integration")
@click.argument("external_id")
@click.argument("practitioner")
@click.option("--kind", default=None, help="The kind of id (default: the integration's, e.g. team_member).")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@json_option
@with_core
async def staff_map(core: Core, integration: str, external_id: str, practitioner: str, kind: str | None,
                    practice_name: str | None, as_json: bool) -> None:
    """Map INTEGRATION's staff EXTERNAL_ID to PRACTITIONER (handle, name or id); waiting bookings get them.

    A directory identity (graph: --kind upn or object_id) is checked by its integration, and the
    practice-wide connections then address the practitioner."""
    try:
        async with core.store.session() as s:
            practice = await practice_by_name(s, practice_name)
            found = await find_practitioner(s, practice.id, practitioner)
            if found is None:
                fail(f"no practitioner {practitioner!r} (see `clinicbot practitioner list`)")
                return
            mapping = await map_staff_member(s, found, integration, external_id, actor=cli_actor(), kind=kind)
    except (PracticeError, StaffError) as exc:
        fail(str(exc))
        return
    emit({"id": mapping.id, "integration": mapping.integration, "kind": mapping.kind,
          "external_id": mapping.external_id, "practitioner": mapping.practitioner}, COLUMNS, as_json)


@staff.command("unmap")
@click.argument("integration")
@click.argument("external_id")
@click.option("--kind", default=None, help="The kind of id (default: the integration's).")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@json_option
@with_core
async def staff_unmap(core: Core, integration: str, external_id: str, kind: str | None, practice_name: str | None,
                      as_json: bool) -> None:
    """Remove a mapping; new bookings for that staff id are listed as unassigned again."""
    try:
        async with core.store.session() as s:
            practice = await practice_by_name(s, practice_name)
            mapping = await unmap_staff_member(s, practice.id, integration, external_id, actor=cli_actor(), kind=kind)
    except (PracticeError, StaffError) as exc:
        fail(str(exc))
        return
    emit({"removed": mapping.id, "integration": mapping.integration, "external_id": mapping.external_id,
          "practitioner": mapping.practitioner}, ["removed", "integration", "external_id", "practitioner"], as_json)


@staff.command("list")
@click.option("--integration", default=None, help="Only this integration's mappings.")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@json_option
@with_core
async def staff_list(core: Core, integration: str | None, practice_name: str | None, as_json: bool) -> None:
    """List the mappings, then the platform staff with bookings that nobody is mapped to."""
    try:
        async with core.store.session() as s:
            practice = await practice_by_name(s, practice_name)
            rows = await list_mappings(s, practice.id, integration)
            waiting = await unassigned_calendars(s, practice.id)
    except PracticeError as exc:
        fail(str(exc))
        return
    mapped = [{"id": m.id, "integration": m.integration, "kind": m.kind, "external_id": m.external_id,
               "practitioner": m.practitioner} for m in rows]
    unassigned = [{"integration": i, "external_id": e, "name": n, "bookings": c} for i, e, n, c in waiting]
    if as_json:
        emit({"mappings": mapped, "unassigned": unassigned}, None, True)
        return
    emit(mapped, COLUMNS, False, title="Staff mappings")
    if unassigned:
        emit(unassigned, ["integration", "external_id", "name", "bookings"], False,
             title="Unassigned staff (map them with `clinicbot staff map`)")
