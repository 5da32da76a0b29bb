"""`clinicbot practitioner opt-out|opt-in` and `clinicbot connection set`: settings changed after creation,
audited as the CLI user (the chat's `opt`, `calendar` and `window` commands call the same services)."""

from __future__ import annotations

from typing import Any

import click

from bot.cli import with_core
from bot.cli.options import LateOptions
from bot.cli.output import emit, fail, json_option
from bot.cli.people import cli_actor
from sync.contract.integration import ConnectOption
from sync.integrations import registry
from sync.runtime.core import Core
from sync.services.errors import ServiceError
from sync.services.practices import the_practice
from sync.services.settings import set_opt_out, set_option, set_window

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
    """Leave PRACTITIONER (handle, name or id) out of reminders, agenda messages and practice-wide connections."""
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


def _option_flags() -> list[click.Parameter]:
    """A flag for each option some integration declares (`--summary-pattern`, `--send-updates`)."""
    seen: dict[str, ConnectOption] = {}
    for integration in registry.integrations():
        for option in integration.connect.options:
            seen.setdefault(option.name, option)
    return [click.Option([option.flag, option.name], default=None, metavar="|".join(option.choices) or "VALUE",
                         help=option.help) for option in seen.values()]


# The integrations' options come after --days-ahead and before --json (`after=1`), read when the command is used.
@connection.command("set", cls=LateOptions, late=_option_flags, after=1)
@click.argument("connection_id", type=int)
@click.option("--days-back", type=int, default=None, help="Sync this many days into the past (0-3650).")
@click.option("--days-ahead", type=int, default=None, help="Sync this many days ahead (1-3650).")
@json_option
@with_core
async def connection_set(core: Core, connection_id: int, days_back: int | None, days_ahead: int | None,
                         as_json: bool, **options: str | None) -> None:
    """Change a connection's sync window or an option of its integration; it is read in full at its next sync."""
    given = {k: v for k, v in options.items() if v is not None}
    if days_back is None and days_ahead is None and not given:
        fail("say what to change: --days-back N, --days-ahead N or an option (`--help` lists them)")
    row: dict[str, Any] = {"id": connection_id}
    try:
        if days_back is not None or days_ahead is not None:
            done = await set_window(core, None, connection_id, days_back=days_back, days_ahead=days_ahead,
                                    actor=cli_actor())
            row.update(connection=done.label, days_back=done.days_back, days_ahead=done.days_ahead,
                       changed=done.changed)
        for name, value in given.items():
            set_to = await set_option(core, None, connection_id, name, value, actor=cli_actor())
            row.update({"connection": set_to.label, name: set_to.value,
                        "changed": bool(row.get("changed")) or set_to.changed})
    except ServiceError as exc:
        fail(str(exc))
        return
    emit(row, list(row), as_json)
