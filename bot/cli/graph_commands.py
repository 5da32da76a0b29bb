"""`clinicbot connection add graph` and `clinicbot practitioner map`: Outlook from the command line.

`connection add graph` without --application starts a practitioner's own sign-in and prints the
Microsoft sign-in URL (the /oauth/graph/callback route finishes it; or paste --state and --code
from the callback URL here). With --application --tenant it adds the practice-wide connection,
which needs an admin's consent first.

Registration (lead): add ("bot.cli.graph_commands", ["connection", "practitioner"]) to _COMMAND_MODULES.
"""

from __future__ import annotations

import click

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from sync.runtime.core import Core

CONNECTION_COLUMNS = ["id", "provider", "mode", "account", "users", "status"]


@click.group()
def connection() -> None:
    """Calendar connections."""


@connection.group("add")
def add() -> None:
    """Connect an account."""


@add.command("graph")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@click.option("--practitioner", "practitioner_ref", default=None, help="Practitioner handle, name or id.")
@click.option("--application", is_flag=True, help="Practice-wide connection with application permissions.")
@click.option("--tenant", default=None, help="Microsoft 365 tenant id (with --application).")
@click.option("--state", default=None, help="Finish: the state parameter of the callback URL.")
@click.option("--code", default=None, help="Finish: the code parameter of the callback URL.")
@json_option
@with_core
async def add_graph(
    core: Core,
    practice_name: str | None,
    practitioner_ref: str | None,
    application: bool,
    tenant: str | None,
    state: str | None,
    code: str | None,
    as_json: bool,
) -> None:
    """Connect Microsoft 365 / Outlook.com calendars through Microsoft Graph."""
    from sync.contract import ProviderError
    from adapters.graph.connect import add_application_connection, begin_connect, finish_connect
    from sync.services.practices import PracticeError, find_practitioner, practice_by_name

    if bool(state) != bool(code):
        fail("give both --state and --code to finish a sign-in, or neither to start one")
    if application and not tenant:
        fail("--application needs --tenant (the Microsoft 365 tenant id the admin consented for)")
    try:
        async with core.store.session() as session:
            if state and code:
                conn = await finish_connect(session, core.settings, params={"state": state, "code": code})
                emit(_connection_row(conn), CONNECTION_COLUMNS, as_json)
                return
            practice = await practice_by_name(session, practice_name)
            if application:
                conn = await add_application_connection(session, practice.id, tenant or "")
                emit(_connection_row(conn), CONNECTION_COLUMNS, as_json)
                return
            practitioner_id, login_hint = None, None
            if practitioner_ref:
                found = await find_practitioner(session, practice.id, practitioner_ref)
                if found is None:
                    fail(f"no practitioner {practitioner_ref!r} in {practice.name}")
                    return
                practitioner_id, login_hint = found.id, found.upn or found.email
            pending = await begin_connect(
                session,
                core.settings,
                practice_id=practice.id,
                chat_identity_id=None,
                practitioner_id=practitioner_id,
                login_hint=login_hint,
            )
    except (PracticeError, ProviderError) as exc:
        fail(str(exc))
        return
    if as_json:
        emit({"url": pending.url, "state": pending.state, "expires_at": pending.expires_at}, None, True)
        return
    click.echo("Open this URL and sign in with the Microsoft account whose calendar to connect:")
    click.echo(pending.url)
    emit({"state": pending.state, "expires_at": pending.expires_at}, ["state", "expires_at"], False)


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
    from sync.contract import ProviderError
    from adapters.graph.connect import graph_user_ref, map_practitioner
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


def _connection_row(conn: object) -> dict[str, object]:
    config = getattr(conn, "config", None) or {}
    return {
        "id": getattr(conn, "id", None),
        "provider": "graph",
        "mode": config.get("mode"),
        "account": getattr(conn, "account", ""),
        "users": len(config.get("users") or []),
        "status": getattr(conn, "status", ""),
    }
