"""`clinicbot practitioner map`: a practitioner's Microsoft 365 mailbox (UPN or object id).

Connecting is `clinicbot connection add graph` (bot.cli.sync_commands), like every integration; this
mapping moves to the external-identity table with the staff-identities capability.
"""

from __future__ import annotations

import click

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from sync.runtime.core import Core


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
    from adapters.graph.connect import graph_user_ref, map_practitioner
    from sync.contract import ProviderError
    from sync.services.practices import PracticeError, find_practitioner, practice_by_name

    if clear == bool(upn or object_id):
        fail("give --upn and/or --object-id, or --clear")
    try:
        async with core.store.session() as session:
            practice = await practice_by_name(session, practice_name)
            found = await find_practitioner(session, practice.id, practitioner_ref)
            if found is None:
                fail(f"no practitioner {practitioner_ref!r} in {practice.name}")
                return
            changed = await map_practitioner(session, found, upn=upn, object_id=object_id)
            row = {
                "id": found.id,
                "name": found.name,
                "upn": found.upn,
                "object_id": found.graph_object_id,
                "outlook_sync": "on" if graph_user_ref(found) and not found.opted_out else "opted out",
                "connections_updated": len(changed),
            }
    except (PracticeError, ProviderError) as exc:
        fail(str(exc))
        return
    emit(row, list(row), as_json)
