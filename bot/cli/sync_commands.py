"""`clinicbot connection|calendar|sync|appointments ...`: the sync engine's admin commands.

Registration (lead): add ("bot.cli.sync_commands", ["connection", "calendar", "sync", "appointments"])
to _COMMAND_MODULES; the `connection add` group merges with the other adapters' `add` commands.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import click

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from bot.cli.people import cli_actor
from sync.runtime.core import Core

if TYPE_CHECKING:
    from sync.engine.run import Progress

CAL_COLUMNS = ["id", "name", "connection", "provider", "role", "projection", "sync_enabled", "practitioner", "url"]


@click.group()
def connection() -> None:
    """Calendar connections."""


@connection.group("add")
def add() -> None:
    """Connect an account."""


async def _add(core: Core, provider: str, url: str, username: str | None, password_env: str | None,
               practitioner: str | None, as_json: bool) -> None:
    from sync.services.connections import ConnectionError_, add_connection

    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            fail(f"environment variable {password_env} is not set (it should hold the password)")
    try:
        added = await add_connection(core, provider, url, username=username, password=password,
                                     practitioner=practitioner, actor=cli_actor())
    except ConnectionError_ as exc:
        fail(str(exc))
        return
    if as_json:
        emit({"connection": added.connection_id, "calendars": added.calendars}, None, True)
        return
    emit(added.calendars, CAL_COLUMNS, False, title=f"Connection {added.connection_id}: calendars found")
    click.echo("Give each calendar its role: `clinicbot calendar set ID --role source|mirror|busy`.")


@add.command("caldav")
@click.option("--url", required=True, help="CalDAV server or account URL (iCloud: https://caldav.icloud.com).")
@click.option("--username", default=None, help="Login (iCloud: the Apple ID).")
@click.option("--password-env", default=None, metavar="VAR",
              help="Name of the environment variable holding the password (iCloud: an app-specific "
                   "password from appleid.apple.com > Sign-In and Security > App-Specific Passwords).")
@click.option("--practitioner", default=None, help="Practitioner handle, name or id the calendars belong to.")
@json_option
@with_core
async def add_caldav(core: Core, url: str, username: str | None, password_env: str | None,
                     practitioner: str | None, as_json: bool) -> None:
    """Connect a CalDAV account (iCloud, Fastmail, Nextcloud, Radicale ...) and list its calendars."""
    await _add(core, "caldav", url, username, password_env, practitioner, as_json)


@add.command("ics")
@click.option("--url", required=True, help="Feed URL (http, https or webcal).")
@click.option("--practitioner", default=None, help="Practitioner handle, name or id.")
@json_option
@with_core
async def add_ics(core: Core, url: str, practitioner: str | None, as_json: bool) -> None:
    """Subscribe to a read-only ICS feed (Jane App, SimplePractice ...) as a booking source."""
    await _add(core, "ics", url, None, None, practitioner, as_json)


@connection.command("list")
@json_option
@with_core
async def connection_list(core: Core, as_json: bool) -> None:
    """List connections with their health."""
    from sync.services.status import connection_status

    rows = [{"id": s.connection_id, "provider": s.provider, "account": s.account, "status": s.status,
             "sync_enabled": s.sync_enabled, "last_success_at": s.last_success_at, "last_error": s.last_error}
            for s in await connection_status(core)]
    emit(rows, ["id", "provider", "account", "status", "sync_enabled", "last_success_at", "last_error"], as_json,
         title="Connections")


@connection.command("remove")
@click.argument("connection_id", type=int)
@json_option
@with_core
async def connection_remove(core: Core, connection_id: int, as_json: bool) -> None:
    """Disconnect an account: stop its push channels and forget it with its calendars."""
    from sync.services.connections import ConnectionError_, remove_connection

    try:
        gone = await remove_connection(core, connection_id, actor=cli_actor())
    except ConnectionError_ as exc:
        fail(str(exc))
        return
    if as_json:
        emit(gone, None, True)
        return
    emit([gone], ["id", "provider", "account", "calendars", "push_channels_stopped"], False, title="Connection removed")


@click.group()
def calendar() -> None:
    """Calendars inside connections."""


@calendar.command("list")
@json_option
@with_core
async def calendar_list(core: Core, as_json: bool) -> None:
    """List calendars with their role, projection and sync switch."""
    from sync.services.connections import calendar_rows

    emit(await calendar_rows(core), CAL_COLUMNS, as_json, title="Calendars")


@calendar.command("set")
@click.argument("calendar_id", type=int)
@click.option("--role", type=click.Choice(["source", "mirror", "busy"]), default=None)
@click.option("--projection", type=click.Choice(["busy", "initials", "full"]), default=None)
@click.option("--sync", "sync_switch", type=click.Choice(["on", "off"]), default=None)
@click.option("--practitioner", default=None, help="Practitioner handle, name or id.")
@json_option
@with_core
async def calendar_set(core: Core, calendar_id: int, role: str | None, projection: str | None,
                       sync_switch: str | None, practitioner: str | None, as_json: bool) -> None:
    """Change a calendar's role, privacy projection, sync switch or practitioner."""
    from sync.services.connections import ConnectionError_, set_calendar

    try:
        row = await set_calendar(core, calendar_id, role=role, projection=projection,
                                 sync_enabled=None if sync_switch is None else sync_switch == "on",
                                 practitioner=practitioner, actor=cli_actor())
    except ConnectionError_ as exc:
        fail(str(exc))
        return
    emit(row, CAL_COLUMNS, as_json)


@click.group("sync")
def sync_group() -> None:
    """Run the sync and see its health."""


sync_group.name = "sync"


@contextmanager
def _progress_bar(*, enabled: bool) -> Iterator[tuple[Progress | None, Callable[[str], None]]]:
    """A rich progress bar on a terminal; nothing (and rich not even imported) otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield None, lambda _: None
        return
    from rich.console import Console
    from rich.progress import Progress as Bar

    with Bar(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("sync", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=f"{stage} ({total} items)" if total else f"{stage} ({done} read)",
                       completed=done, total=total or None)

        yield progress, lambda text: bar.update(task, description=text, total=None)


@sync_group.command("run")
@click.option("--connection", "connection_id", type=int, default=None, help="Only this connection.")
@click.option("--outbox/--no-outbox", default=True, show_default=True, help="Also perform queued remote writes.")
@json_option
@with_core
async def sync_run(core: Core, connection_id: int | None, outbox: bool, as_json: bool) -> None:
    """Sync now: read every calendar's changes, then write the queued copies."""
    from sync.engine.run import sync_all, sync_connection
    from sync.runtime.locks import SyncBusy
    from sync.engine.outbox import OutboxConfig, run_once

    with _progress_bar(enabled=not as_json) as (progress, describe):
        try:
            if connection_id is not None:
                report = await sync_connection(core, connection_id, progress=progress, wait=30)
            else:
                report = await sync_all(core, progress=progress)
        except SyncBusy as exc:
            fail(str(exc))
            return
        failed_ops = 0
        if outbox:
            describe("writing copies")
            stats = await run_once(core, config=OutboxConfig(), connection_id=None)
            failed_ops = stats.failed
    result: dict[str, Any] = report.as_dict()
    result["failed"] += failed_ops
    if as_json:
        emit(result, None, True)
        return
    click.echo(f"{result['created']} created, {result['updated']} updated, {result['deleted']} deleted, "
               f"{result['conflicts']} conflicts, {result['failed']} failed in {result['seconds']:.2f} s")


@sync_group.command("status")
@json_option
@with_core
async def sync_status(core: Core, as_json: bool) -> None:
    """Per connection: last success, cursor age, pending and failed outbox operations, token health."""
    from sync.services.status import connection_status

    rows = [s.as_dict() for s in await connection_status(core)]
    if not as_json:  # the table names the state (a failing sync is not "active"), says why, and counts skipped events
        rows = [{**r, "status": r["state"], "error": r["last_error"] or r["last_failed_error"],
                 "read_notes": f"{len(r['read_notes'])}: {r['read_notes'][0]}" if r["read_notes"] else ""}
                for r in rows]
    columns = ["connection_id", "provider", "account", "status", "last_success_at", "pending_ops", "failed_ops",
               "conflicts", "error"]
    if as_json or any(r.get("read_notes") for r in rows):  # a column of blanks only narrows the reason
        columns.append("read_notes")
    emit(rows, columns, as_json, title="Sync status")


sync = sync_group


@click.group()
def appointments() -> None:
    """Canonical appointments."""


@appointments.command("list")
@click.option("--date", "day", default=None, help="YYYY-MM-DD (default: today in the practice's zone).")
@click.option("--practitioner", default=None, help="Practitioner handle, name or id.")
@json_option
@with_core
async def appointments_list(core: Core, day: str | None, practitioner: str | None, as_json: bool) -> None:
    """List one day's appointments (client names are shown as initials)."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from sync.engine.projection import initials
    from sync.services.appointments import list_day
    from sync.services.practices import PracticeError, default_practice, find_practitioner
    from sync.store.model import Practitioner

    async with core.store.session() as s:
        try:
            practice = await default_practice(s)
        except PracticeError as exc:
            fail(str(exc))
            return
        pr_id = None
        if practitioner is not None:
            pr = await find_practitioner(s, practice.id, practitioner)
            if pr is None:
                fail(f"there is no practitioner {practitioner!r}")
                return
            pr_id = pr.id
        try:
            when = date.fromisoformat(day) if day else datetime.now(ZoneInfo(practice.timezone)).date()
        except ValueError:
            fail(f"{day!r} is not a date; use YYYY-MM-DD, e.g. 2026-03-02")
            return
        appts = await list_day(s, practice.id, when, practice.timezone, pr_id, include_cancelled=True)
        zone = ZoneInfo(practice.timezone)
        names = dict((await s.execute(select(Practitioner.id, Practitioner.name).where(
            Practitioner.id.in_({a.practitioner_id for a in appts if a.practitioner_id})))).tuples().all())
        rows = []
        for a in appts:
            start, end = a.start.astimezone(zone), a.end.astimezone(zone)
            row: dict[str, Any] = {
                "id": a.ref, "start": start.isoformat(), "end": end.isoformat(),
                "practitioner": names.get(a.practitioner_id or 0, ""), "practitioner_id": a.practitioner_id,
                "service": a.service, "client": initials(a.client_name), "status": a.status, "version": a.version,
            }
            if not a.service and not a.client_name:
                # Nothing structured came with it (a plain calendar event): its summary says what it is.
                row["summary"] = a.title
            if not as_json:
                row |= {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}" if end.date() == start.date()
                        else f"{end:%a %H:%M}", "service": a.service or a.title}
            rows.append(row)
    emit(rows, ["id", "start", "end", "practitioner", "service", "client", "status"], as_json,
         title=f"Appointments on {when:%a %d %b %Y} ({practice.timezone})")
