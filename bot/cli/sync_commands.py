"""`clinicbot connection|calendar|sync|appointments ...`: the sync engine's admin commands.

Registration (lead): add ("bot.cli.sync_commands", ["connection", "calendar", "sync", "appointments"])
to _COMMAND_MODULES. `connection add INTEGRATION` is one command for every integration, built from
the registry's connect specs.
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
from bot.cli.options import LateOptions
from bot.cli.output import emit, fail, json_option
from bot.cli.people import cli_actor
from sync.contract import ProviderError
from sync.contract.integration import ConnectOption, Integration
from sync.engine.outbox import OutboxConfig, run_once
from sync.engine.projection import initials
from sync.engine.run import sync_all, sync_connection
from sync.integrations import registry
from sync.integrations.connect import begin_oauth, finish_oauth, refresh_calendars
from sync.runtime.core import Core
from sync.runtime.locks import SyncBusy
from sync.services import shifts as shift_service
from sync.services.appointments import list_day
from sync.services.connections import (
    ConnectionError_,
    add_connection,
    add_practice_wide,
    calendar_rows,
    set_calendar,
)
from sync.services.errors import ServiceError
from sync.services.form_connections import add_signed_form
from sync.services.practices import PracticeError, default_practice, find_practitioner, the_practice
from sync.services.removals import remove_connection
from sync.services.settings import calendar_settings
from sync.services.staff import identities_of
from sync.services.status import backfill_progress, connection_status, webhook_health
from sync.store.model import Practitioner

if TYPE_CHECKING:
    from sync.engine.run import Progress
    from sync.integrations.connect import SavedConnection

CAL_COLUMNS = ["id", "name", "connection", "provider", "role", "projection", "sync_enabled", "practitioner", "url"]


@click.group()
def connection() -> None:
    """Calendar connections."""


async def _add(core: Core, provider: str, url: str, username: str | None, password_env: str | None,
               practitioner: str | None, practice_name: str | None, as_json: bool,
               options: dict[str, str] | None = None, secret_envs: tuple[str, ...] = ()) -> None:
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            fail(f"environment variable {password_env} is not set (it should hold the password)")
    given: dict[str, str] = {}
    for pair in secret_envs:
        field_name, _, variable = pair.partition("=")
        if not field_name or not variable:
            fail(f"--secret-env takes FIELD=VARIABLE, not {pair[:60]!r}")
        value = os.environ.get(variable)
        if not value:
            fail(f"environment variable {variable} is not set (it should hold the {field_name})")
        given[field_name] = value or ""
    try:
        added = await add_connection(core, provider, url, username=username, password=password,
                                     practitioner=practitioner, practice=practice_name, options=options,
                                     secrets_given=given, actor=cli_actor())
    except (ConnectionError_, PracticeError) as exc:
        fail(str(exc))
        return
    if as_json:
        extra = {"webhook_url": added.webhook_url} if added.webhook_url else {}
        emit({"connection": added.connection_id, "calendars": added.calendars, **extra}, None, True)
        return
    emit(added.calendars, CAL_COLUMNS, False, title=f"Connection {added.connection_id}: calendars found")
    click.echo("Give each calendar its role: `clinicbot calendar set ID --role source|mirror|busy|work`.")
    if added.webhook_url:
        click.echo(f"Webhook address (shown only now; it is the secret, keep it like a password): "
                   f"{added.webhook_url}")


def _connect_options() -> list[ConnectOption]:
    """Every option some integration's connect declares, once by name (the first declaration wins)."""
    seen: dict[str, ConnectOption] = {}
    for integration in registry.integrations():
        for option in integration.connect.options:
            seen.setdefault(option.name, option)
    return list(seen.values())


def _connect_option_params() -> list[click.Parameter]:
    """A click option for each integration's declared connect option (`--send-updates`...)."""
    return [click.Option([option.flag, option.name], default=None, metavar="|".join(option.choices) or "VALUE",
                         help=option.help + (f" (default: {option.default})" if option.default else ""))
            for option in _connect_options()]


# The integrations' options come after --code and before --json (`after=1`), read when the command is used.
@connection.command("add", cls=LateOptions, late=_connect_option_params, after=1)
@click.argument("integration_name", metavar="INTEGRATION")
@click.option("--url", default=None, help="Server, account or feed URL (CalDAV, ICS; iCloud has its own default).")
@click.option("--username", default=None, help="Login (iCloud: the Apple ID).")
@click.option("--password-env", default=None, metavar="VAR",
              help="Name of the environment variable holding the password (iCloud: an app-specific "
                   "password from appleid.apple.com > Sign-In and Security > App-Specific Passwords).")
@click.option("--secret-env", "secret_envs", multiple=True, metavar="FIELD=VAR",
              help="A further secret the integration takes, from an environment variable (SimplyBook.me: "
                   "api_key=VAR and secret_key=VAR for its signed booking reads); stored encrypted.")
@click.option("--practice", "practice_name", default=None,
              help="Practice name (needed when there are several; with one, that one).")
@click.option("--practitioner", default=None, help="Practitioner handle, name or id the calendars belong to.")
@click.option("--application", is_flag=True, help="Practice-wide connection after an admin's consent (with --tenant).")
@click.option("--tenant", default=None, help="The tenant id the admin consented for (with --application).")
@click.option("--state", default=None, help="Finish a sign-in: the state parameter of the callback URL.")
@click.option("--code", default=None, help="Finish a sign-in: the code parameter of the callback URL.")
@json_option
@with_core
async def connection_add(core: Core, integration_name: str, url: str | None, username: str | None,
                         password_env: str | None, secret_envs: tuple[str, ...], practice_name: str | None,
                         practitioner: str | None,
                         application: bool, tenant: str | None, state: str | None, code: str | None,
                         as_json: bool, **options: str | None) -> None:
    """Connect an account of INTEGRATION (`clinicbot doctor` lists them) and store the calendars it has.

    A sign-in integration prints its sign-in URL (the server's /oauth/INTEGRATION/callback finishes
    it, or paste --state and --code here), unless it also takes credentials and --username or
    --password-env is given (Nylas: an existing grant); a server or feed needs --url (and --username
    with --password-env); a practice-wide one needs --application --tenant.
    """
    integration = registry.resolve(integration_name)
    if integration is None:
        try:
            integration = registry.get(integration_name)
        except ProviderError as exc:
            fail(str(exc))
            return
    if integration.is_route:
        # Nothing to store for a route: its steps name the integration that works, and exit 2 tells a script so.
        click.echo(f"{integration.title} connects through " + " or ".join(integration.connect.via) + ":")
        for number, step in enumerate(integration.connect.steps, 1):
            click.echo(f"  {number}. {step}")
        raise SystemExit(2)
    integration_name = integration.name
    spec = integration.connect
    if "signed_form" in spec.kinds:
        await _add_signed_form(core, integration, practice_name, as_json)
        return
    given = {k: v for k, v in options.items() if v is not None}
    declared = {o.name: o for o in spec.options}
    for name, value in given.items():
        option = declared.get(name)
        if option is None:
            fail(f"{integration.name} has no option --{name.replace('_', '-')}")
            return
        if option.choices and value not in option.choices:
            fail(f"--{name.replace('_', '-')} must be one of {', '.join(option.choices)}")
            return
    if application or tenant:
        if "tenant_consent" not in spec.kinds:
            fail(f"{integration.name} has no practice-wide connection")
        if not (application and tenant):
            fail("--application needs --tenant (the tenant id the admin consented for)")
        await _add_practice_wide(core, integration_name, practice_name, tenant or "", as_json)
    elif "oauth2" in spec.kinds and not ("credentials" in spec.kinds and (username or password_env)):
        if bool(state) != bool(code):
            fail("give both --state and --code to finish a sign-in, or neither to start one")
        if state and code:
            await _finish_sign_in(core, integration_name, state, code, as_json)
        else:
            await _start_sign_in(core, integration, practice_name, practitioner, given, as_json)
    else:
        target = url or spec.defaults.get("url")
        if not target:
            fail(f"{integration.name} needs --url")
            return
        await _add(core, integration_name, target, username, password_env, practitioner, practice_name, as_json,
                   given, secret_envs)


async def _add_signed_form(core: Core, integration: Integration, practice_name: str | None, as_json: bool) -> None:
    try:
        made = await add_signed_form(core, integration.name, practice_name=practice_name, actor=cli_actor())
    except (PracticeError, ProviderError, ServiceError) as exc:
        fail(str(exc))
        return
    if as_json:
        emit({"id": made.connection_id, "provider": integration.name, "url": made.url, "secret": made.secret},
             None, True)
        return
    click.echo(f"Connection {made.connection_id}: {integration.title}. Post each submission to:")
    click.echo(made.url)
    click.echo("Signing secret (shown this once; clinicbot keeps only an encrypted copy):")
    click.echo(made.secret)
    for number, step in enumerate(integration.connect.steps[1:], 1):
        click.echo(f"  {number}. {step}")


async def _start_sign_in(core: Core, integration: Integration, practice_name: str | None,
                         practitioner_ref: str | None, options: dict[str, str], as_json: bool) -> None:
    defaults = {o.name: o.default for o in integration.connect.options if o.default is not None}
    try:
        async with core.store.session() as session:
            practice = await the_practice(session, practice_name)
            practitioner_id, login_hint = None, None
            if practitioner_ref:
                found = await find_practitioner(session, practice.id, practitioner_ref)
                if found is None:
                    fail(f"no practitioner {practitioner_ref!r} in {practice.name}")
                    return
                upn = (await identities_of(session, [found.id], "graph")).get(found.id, {}).get("upn")
                practitioner_id, login_hint = found.id, upn or found.email
            practice_id = practice.id
        hint = {"login_hint": login_hint} if login_hint else {}
        pending = await begin_oauth(core, integration.name, practice_id=practice_id, chat_identity_id=None,
                                    practitioner_id=practitioner_id, options={**defaults, **hint, **options})
    except (PracticeError, ProviderError) as exc:
        fail(str(exc))
        return
    if as_json:
        emit({"url": pending.url, "state": pending.state, "expires_at": pending.expires_at}, None, True)
        return
    # A table would cut the URL; print it whole on its own line.
    click.echo(f"Open this URL, sign in to {integration.title} with the account to connect and allow access:")
    click.echo(pending.url)
    emit({"state": pending.state, "expires_at": pending.expires_at}, ["state", "expires_at"], False)


async def _finish_sign_in(core: Core, name: str, state: str, code: str, as_json: bool) -> None:
    try:
        saved = await finish_oauth(core, name, {"state": state, "code": code}, actor=cli_actor())
    except ProviderError as exc:
        fail(str(exc))
        return
    _emit_saved(saved, as_json)


async def _add_practice_wide(core: Core, name: str, practice_name: str | None, tenant: str, as_json: bool) -> None:
    try:
        saved = await add_practice_wide(core, name, practice_name, tenant, actor=cli_actor())
    except (PracticeError, ProviderError, ConnectionError_) as exc:
        fail(str(exc))
        return
    _emit_saved(saved, as_json)


def _emit_saved(saved: SavedConnection, as_json: bool) -> None:
    connection_id = saved.connection_id
    if as_json:
        emit({"id": connection_id, "provider": saved.integration, "account": saved.account, "status": "active",
              "config": saved.config, "calendars": saved.calendars}, None, True)
        return
    emit(saved.calendars, CAL_COLUMNS, False, title=f"Connection {connection_id} ({saved.account}): calendars found")
    click.echo("Change a calendar's role with `clinicbot calendar set ID --role source|mirror|busy|work`; "
               "`clinicbot connection refresh " + str(connection_id) + "` finds calendars added later.")


@connection.command("refresh")
@click.argument("connection_id", type=int)
@json_option
@with_core
async def connection_refresh(core: Core, connection_id: int, as_json: bool) -> None:
    """Find the connection's calendars again: new ones are added with the default roles, known ones keep theirs."""
    try:
        saved = await refresh_calendars(core, connection_id, actor=cli_actor())
    except ProviderError as exc:
        fail(str(exc))
        return
    if as_json:
        emit({"connection": connection_id, "added": saved.added, "calendars": saved.calendars}, None, True)
        return
    emit(saved.calendars, CAL_COLUMNS, False,
         title=f"Connection {connection_id}: {saved.added} new calendar{'' if saved.added == 1 else 's'}")


@connection.command("list")
@json_option
@with_core
async def connection_list(core: Core, as_json: bool) -> None:
    """List connections with their health."""
    rows = [{"id": s.connection_id, "practice": s.practice_id, "provider": s.provider, "account": s.account,
             "status": s.status, "sync_enabled": s.sync_enabled, "last_success_at": s.last_success_at,
             "last_error": s.last_error}
            for s in await connection_status(core)]
    emit(rows, ["id", "practice", "provider", "account", "status", "sync_enabled", "last_success_at", "last_error"],
         as_json, title="Connections")


@connection.command("remove")
@click.argument("connection_id", type=int)
@json_option
@with_core
async def connection_remove(core: Core, connection_id: int, as_json: bool) -> None:
    """Disconnect an account: stop its push channels and forget it with its calendars."""
    try:
        removal = await remove_connection(core, connection_id, actor=cli_actor())
    except ConnectionError_ as exc:
        fail(str(exc))
        return
    if as_json:
        emit(removal.as_row(), None, True)
        return
    emit([removal.as_row()], ["id", "provider", "account", "calendars", "push_channels_stopped", "state"], False,
         title="Connection removed" if removal.done else "Connection being removed")
    if not removal.done:
        click.echo(f"The platform did not delete {removal.pending} webhook subscription(s): "
                   f"{'; '.join(removal.errors)}. The connection no longer syncs; clinicbot retries the delete "
                   "every 10 minutes and forgets the connection when it is done.")


@click.group()
def calendar() -> None:
    """Calendars inside connections."""


@calendar.command("list")
@json_option
@with_core
async def calendar_list(core: Core, as_json: bool) -> None:
    """List calendars with their role, projection and sync switch."""
    emit(await calendar_rows(core), CAL_COLUMNS, as_json, title="Calendars")


@calendar.command("set")
@click.argument("calendar_id", type=int)
@click.option("--role", type=click.Choice(["source", "mirror", "busy", "work"]), default=None)
@click.option("--projection", type=click.Choice(["busy", "initials", "full"]), default=None,
              help="How copies look; the copies already there are rewritten.")
@click.option("--show-as-free", "show_as_free", type=click.Choice(["on", "off"]), default=None,
              help="Copies show as free (on) or busy (off); the copies already there are rewritten.")
@click.option("--sync", "sync_switch", type=click.Choice(["on", "off"]), default=None)
@click.option("--practitioner", default=None, help="Practitioner handle, name or id.")
@json_option
@with_core
async def calendar_set(core: Core, calendar_id: int, role: str | None, projection: str | None,
                       show_as_free: str | None, sync_switch: str | None, practitioner: str | None,
                       as_json: bool) -> None:
    """Change a calendar's role, privacy projection, show-as-free, sync switch or practitioner."""
    try:
        row = await set_calendar(core, calendar_id, role=role,
                                 sync_enabled=None if sync_switch is None else sync_switch == "on",
                                 practitioner=practitioner, actor=cli_actor())
        if projection is not None or show_as_free is not None:
            await calendar_settings(core, None, calendar_id, projection=projection,
                                    show_as_free=None if show_as_free is None else show_as_free == "on",
                                    actor=cli_actor())
            row = {**row, "projection": projection or row["projection"]}
    except (ConnectionError_, ServiceError) as exc:
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
    backfills = await backfill_progress(core)
    result["backfill"] = [b.as_dict() for b in backfills]
    if as_json:
        emit(result, None, True)
        return
    click.echo(f"{result['created']} created, {result['updated']} updated, {result['deleted']} deleted, "
               f"{result['conflicts']} conflicts, {result['failed']} failed in {result['seconds']:.2f} s")
    if result["backfilled"]:
        click.echo(f"{result['backfilled']} existing appointment{'' if result['backfilled'] == 1 else 's'} "
                   "queued for copying to new mirror calendars")
    for b in backfills:  # the copies are written by the outbox, here or by the server's worker
        click.echo(f"Calendar {b.calendar_id} ({b.calendar}): {b.describe()}")


@sync_group.command("status")
@json_option
@with_core
async def sync_status(core: Core, as_json: bool) -> None:
    """Per connection: last success, cursor age, outbox operations, token health, webhook health, backfills."""
    hooks = {h.connection_id: h for h in await webhook_health(core)}
    rows = [s.as_dict() | {"webhooks": hooks[s.connection_id].as_dict() if s.connection_id in hooks else None}
            for s in await connection_status(core)]
    backfills = await backfill_progress(core)
    for r in rows:
        mine = [b for b in backfills if b.connection_id == r["connection_id"]]
        r["backfill"] = ([b.as_dict() for b in mine] if as_json
                         else "; ".join(f"{b.calendar}: {b.copied}/{b.total if b.state == 'pending' else b.queued}"
                                        for b in mine))
    if not as_json:  # the table names the state (a failing sync is not "active"), says why, and counts skipped events
        rows = [{**r, "status": r["state"], "error": r["last_error"] or r["last_failed_error"],
                 "read_notes": f"{len(r['read_notes'])}: {r['read_notes'][0]}" if r["read_notes"] else "",
                 "webhooks": r["webhooks"]["summary"] if r["webhooks"] else ""}
                for r in rows]
    columns = ["connection_id", "provider", "account", "status", "last_success_at", "pending_ops", "failed_ops",
               "conflicts", "error"]
    if any(r["webhooks"] for r in rows):
        columns.append("webhooks")
    if as_json or any(r.get("read_notes") for r in rows):  # a column of blanks only narrows the reason
        columns.append("read_notes")
    if as_json or backfills:
        columns.append("backfill")
    shifts = await shift_service.last_publishes(core)
    if as_json:
        for r in rows:
            published = [p for p in shifts if p.source_id == r["connection_id"]]
            r["shift_publish"] = published[0].as_dict() if published else None
    emit(rows, columns, as_json, title="Sync status")
    if not as_json:
        for p in shifts:
            click.echo(f"Shift publish (connection {p.source_id}): {p.describe()}")


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
