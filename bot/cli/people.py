"""`clinicbot practice ...` and `clinicbot practitioner ...`."""

from __future__ import annotations

import getpass

import click

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from sync.runtime.core import Core
from sync.services.practices import (
    PracticeError,
    add_practitioner,
    create_practice,
    default_practice,
    list_practices,
    list_practitioners,
    practice_by_name,
)
from sync.services.roles import RoleError, find_person, grant_role, list_roles, revoke_role
from sync.services.staff import identities_of
from sync.store.model import ChatIdentity


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
    try:
        async with core.store.session() as s:
            p = await practice_by_name(s, practice_name) if practice_name else None
            people = await list_practitioners(s, p.id if p else None)
            graph = await identities_of(s, [x.id for x in people], "graph")
            rows = [{"id": x.id, "name": x.name, "handle": x.handle, "email": x.email, "timezone": x.timezone,
                     "upn": graph.get(x.id, {}).get("upn"), "opted_out": x.opted_out}
                    for x in people]
    except PracticeError as exc:
        fail(str(exc))
    emit(rows, ["id", "name", "handle", "email", "timezone", "upn", "opted_out"], as_json, title="Practitioners")


@click.group()
def role() -> None:
    """Roles of the people clinicbot has seen in chat (admin, staff, practitioner)."""


async def _person_and_practice(core: Core, person: str) -> tuple[int, int]:
    async with core.store.session() as s:
        try:
            practice = await default_practice(s)
            found = await find_person(s, practice.id, person)
        except (PracticeError, RoleError) as exc:
            fail(f"{exc}; `clinicbot role list` shows who has a role")
            raise  # unreachable: fail exits
        return practice.id, found.id


@role.command("grant")
@click.argument("role_name", metavar="ROLE", type=click.Choice(["admin", "staff", "practitioner"]))
@click.argument("person", nargs=-1, required=True)
@with_core
async def role_grant(core: Core, role_name: str, person: tuple[str, ...]) -> None:
    """Give PERSON (their chat display name) a role, e.g. `clinicbot role grant staff Alex Wilber`."""
    _, person_id = await _person_and_practice(core, " ".join(person))
    async with core.store.session() as s:
        found = await s.get(ChatIdentity, person_id)
        assert found is not None
        changed = await grant_role(s, found, role_name, cli_actor())
        name = found.display_name
    click.echo(f"{name} now has the {role_name} role." if changed else f"{name} already has the {role_name} role.")


@role.command("revoke")
@click.argument("role_name", metavar="ROLE", type=click.Choice(["admin", "staff", "practitioner"]))
@click.argument("person", nargs=-1, required=True)
@with_core
async def role_revoke(core: Core, role_name: str, person: tuple[str, ...]) -> None:
    """Take a role from PERSON (their chat display name)."""
    _, person_id = await _person_and_practice(core, " ".join(person))
    async with core.store.session() as s:
        found = await s.get(ChatIdentity, person_id)
        assert found is not None
        try:
            changed = await revoke_role(s, found, role_name, cli_actor())
        except RoleError as exc:
            fail(str(exc))
            return
        name = found.display_name
    click.echo(f"{name} no longer has the {role_name} role." if changed
               else f"{name} does not have the {role_name} role.")


@role.command("list")
@json_option
@with_core
async def role_list(core: Core, as_json: bool) -> None:
    """Everyone holding a role in the practice."""
    async with core.store.session() as s:
        practice = await default_practice(s)
        rows = [{"person": p.display_name or p.user_id, "platform": p.platform, "role": r}
                for p, r in await list_roles(s, practice.id)]
    emit(rows, ["person", "platform", "role"], as_json, title="Roles")
