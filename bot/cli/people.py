"""`clinicbot practice ...` and `clinicbot practitioner ...`."""

from __future__ import annotations

import getpass

import click

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from sync.runtime.core import Core


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


@click.group()
def practice() -> None:
    """Practices (clinics)."""


@practice.command("create")
@click.argument("name")
@click.option("--tz", "tz", required=True, help="IANA time zone, e.g. Europe/London.")
@json_option
@with_core
async def practice_create(core: Core, name: str, tz: str, as_json: bool) -> None:
    """Create a practice."""
    from sync.services.practices import PracticeError, create_practice

    try:
        async with core.store.session() as s:
            p = await create_practice(s, name, tz, cli_actor())
    except PracticeError as exc:
        fail(str(exc))
    emit({"id": p.id, "name": p.name, "timezone": p.timezone}, ["id", "name", "timezone"], as_json)


@practice.command("list")
@json_option
@with_core
async def practice_list(core: Core, as_json: bool) -> None:
    """List practices."""
    from sync.services.practices import list_practices

    async with core.store.session() as s:
        rows = [{"id": p.id, "name": p.name, "timezone": p.timezone, "teams_tenant": p.teams_tenant_id,
                 "slack_team": p.slack_team_id} for p in await list_practices(s)]
    emit(rows, ["id", "name", "timezone", "teams_tenant", "slack_team"], as_json, title="Practices")


@click.group()
def practitioner() -> None:
    """Practitioners."""


@practitioner.command("add")
@click.argument("name")
@click.option("--email", default=None)
@click.option("--tz", "tz", default=None, help="IANA time zone (default: the practice's).")
@click.option("--handle", default=None, help="Chat handle, e.g. dr-lee (default: made from the name).")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@json_option
@with_core
async def practitioner_add(core: Core, name: str, email: str | None, tz: str | None, handle: str | None,
                           practice_name: str | None, as_json: bool) -> None:
    """Add a practitioner."""
    from sync.services.practices import PracticeError, add_practitioner, practice_by_name

    try:
        async with core.store.session() as s:
            p = await practice_by_name(s, practice_name)
            pr = await add_practitioner(s, p, name, email=email, tz=tz, actor=cli_actor(), handle=handle)
    except PracticeError as exc:
        fail(str(exc))
    emit({"id": pr.id, "name": pr.name, "handle": pr.handle, "email": pr.email, "timezone": pr.timezone},
         ["id", "name", "handle", "email", "timezone"], as_json)


@practitioner.command("list")
@click.option("--practice", "practice_name", default=None)
@json_option
@with_core
async def practitioner_list(core: Core, practice_name: str | None, as_json: bool) -> None:
    """List practitioners."""
    from sync.services.practices import PracticeError, list_practitioners, practice_by_name

    try:
        async with core.store.session() as s:
            p = await practice_by_name(s, practice_name) if practice_name else None
            rows = [{"id": x.id, "name": x.name, "handle": x.handle, "email": x.email, "timezone": x.timezone,
                     "upn": x.upn, "opted_out": x.opted_out}
                    for x in await list_practitioners(s, p.id if p else None)]
    except PracticeError as exc:
        fail(str(exc))
    emit(rows, ["id", "name", "handle", "email", "timezone", "upn", "opted_out"], as_json, title="Practitioners")
