"""`clinicbot db upgrade|downgrade|current`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bot.cli import get_settings, run_async
from bot.cli.output import emit, fail, json_option
from sync.boot import open_core
from sync.store import migrate
from sync.store.crypto import KeyError_
from sync.store.database import StoreError

if TYPE_CHECKING:
    from sync.runtime.core import Core


@click.group()
def db() -> None:
    """Database schema migrations."""


async def _open() -> Core:
    try:
        return open_core(get_settings(integrations=False), domains=False)
    except KeyError_ as exc:
        fail(str(exc), code=2)
        raise  # unreachable: fail exits


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Upgrade the schema (default: to the newest revision)."""
    @run_async
    async def go() -> None:
        core = await _open()
        try:
            await migrate.upgrade(core.store, revision)
            state = await migrate.schema_state(core.store)
            click.echo(f"database is at revision {state.current} (head {state.head})")
        except StoreError as exc:
            fail(str(exc), code=2)
        finally:
            await core.close()

    go()


@db.command()
@click.argument("revision", default="-1")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def downgrade(revision: str, yes: bool) -> None:
    """Downgrade the schema (default: one revision). Data in dropped tables is lost."""
    if not yes:
        click.confirm(f"Downgrade the database to {revision}? Data may be lost", abort=True)

    @run_async
    async def go() -> None:
        core = await _open()
        try:
            await migrate.downgrade(core.store, revision)
            state = await migrate.schema_state(core.store)
            click.echo(f"database is at revision {state.current or 'base'}")
        finally:
            await core.close()

    go()


@db.command()
@json_option
def current(as_json: bool) -> None:
    """Show the schema revision and whether it is current."""
    @run_async
    async def go() -> None:
        core = await _open()
        try:
            state = await migrate.schema_state(core.store)
        except StoreError as exc:
            fail(str(exc), code=2)
        finally:
            await core.close()
        emit({"current": state.current, "head": state.head, "up_to_date": state.up_to_date},
             ["current", "head", "up_to_date"], as_json)

    go()
