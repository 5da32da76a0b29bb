"""`clinicbot practitioner opt-out|opt-in` and `clinicbot connection set`: settings changed after creation,
audited as the CLI user (the chat's `opt`, `calendar` and `window` commands call the same services)."""

from __future__ import annotations

import click

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from bot.cli.people import cli_actor
from sync.runtime.core import Core
from sync.services.errors import ServiceError
from sync.services.practices import the_practice
from sync.services.settings import set_opt_out, set_window

__all__ = ["connection", "practitioner"]


@click.group()
def practitioner() -> None:
    """Practitioners."""


async def _opt(core: Core, ref: str, practice_name: str | None, opted_out: bool, as_json: bool) -> None:
    try:
        async with core.store.session() as s:
            practice_id = (await the_practice(s, practice_name)).id
        done = await set_opt_out(core, practice_id, ref, opted_out=opted_out, actor=cli_actor())
    except ServiceError as exc:
        fail(str(exc))
        return
    emit({"id": done.practitioner_id, "name": done.name, "opted_out": done.opted_out, "changed": done.changed},
         ["id", "name", "opted_out", "changed"], as_json)


@practitioner.command("opt-out")
@click.argument("ref", metavar="PRACTITIONER")
@click.option("--practice", "practice_name", default=None, help="Practice name (needed when there are several).")
@json_option
@with_core
async def practitioner_opt_out(core: Core, ref: str, practice_name: str | None, as_json: bool) -> None:
    """Leave PRACTITIONER (handle, name or id) out of reminders, agenda messages and copies."""
    await _opt(core, ref, practice_name, True, as_json)


@practitioner.command("opt-in")
@click.argument("ref", metavar="PRACTITIONER")
@click.option("--practice", "practice_name", default=None, help="Practice name (needed when there are several).")
@json_option
@with_core
async def practitioner_opt_in(core: Core, ref: str, practice_name: str | None, as_json: bool) -> None:
    """Bring an opted-out PRACTITIONER back."""
    await _opt(core, ref, practice_name, False, as_json)


@click.group()
def connection() -> None:
    """Calendar connections."""


@connection.command("set")
@click.argument("connection_id", type=int)
@click.option("--days-back", type=int, default=None, help="Sync this many days into the past (0-3650).")
@click.option("--days-ahead", type=int, default=None, help="Sync this many days ahead (1-3650).")
@json_option
@with_core
async def connection_set(core: Core, connection_id: int, days_back: int | None, days_ahead: int | None,
                         as_json: bool) -> None:
    """Change a connection's sync window; its calendars are read in full at the next sync."""
    if days_back is None and days_ahead is None:
        fail("say what to change: --days-back N and/or --days-ahead N")
    try:
        done = await set_window(core, None, connection_id, days_back=days_back, days_ahead=days_ahead,
                                actor=cli_actor())
    except ServiceError as exc:
        fail(str(exc))
        return
    emit({"id": done.connection_id, "connection": done.label, "days_back": done.days_back,
          "days_ahead": done.days_ahead, "changed": done.changed},
         ["id", "connection", "days_back", "days_ahead", "changed"], as_json)
