"""`clinicbot practitioner map`: a practitioner's Microsoft 365 mailbox (UPN or object id).

Connecting is `clinicbot connection add graph` (bot.cli.sync_commands), like every integration; the
mapping is kept in the external-identity table (sync.services.connections.map_identities), checked by
the Graph integration's staff-identities slot.
"""

from __future__ import annotations

import click

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from bot.cli.people import cli_actor
from sync.contract import ProviderError
from sync.runtime.core import Core
from sync.services.connections import ConnectionError_, map_identities
from sync.services.practices import PracticeError, find_practitioner, practice_by_name
from sync.services.staff import StaffError


@click.group()
def practitioner() -> None:
    """Practitioners."""


@practitioner.command("map")
@click.argument("practitioner_ref")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@click.option("--upn", default=None, help="User principal name, e.g. dr.lee@clinic.example.")
@click.option("--object-id", "object_id", default=None, help="Entra object id (a GUID).")
@click.option("--clear", is_flag=True, help="Remove the mapping: the practitioner is opted out of Outlook sync.")
@json_option
@with_core
async def practitioner_map(
    core: Core,
    practitioner_ref: str,
    practice_name: str | None,
    upn: str | None,
    object_id: str | None,
    clear: bool,
    as_json: bool,
) -> None:
    """Map a practitioner to their Microsoft 365 mailbox (by UPN or object id)."""
    if clear == bool(upn or object_id):
        fail("give --upn and/or --object-id, or --clear")
    try:
        async with core.store.session() as session:
            practice = await practice_by_name(session, practice_name)
            found = await find_practitioner(session, practice.id, practitioner_ref)
            if found is None:
                fail(f"no practitioner {practitioner_ref!r} in {practice.name}")
                return
            mapped = await map_identities(session, "graph", found, {"upn": upn, "object_id": object_id},
                                          actor=cli_actor())
            row = {
                "id": mapped.practitioner_id,
                "name": mapped.name,
                "upn": mapped.identities.get("upn"),
                "object_id": mapped.identities.get("object_id"),
                "outlook_sync": "on" if mapped.addressed else "opted out",
                "connections_updated": len(mapped.connections_updated),
            }
    except (PracticeError, ProviderError, StaffError, ConnectionError_) as exc:
        fail(str(exc))
        return
    emit(row, list(row), as_json)
