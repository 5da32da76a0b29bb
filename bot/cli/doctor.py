"""`clinicbot doctor`: one ✓ or ✗ line per check, with a hint on every ✗."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click
from sqlalchemy import select

from sync.boot import open_core
from sync.contract import ProviderError
from sync.contract.troubleshooting import advice
from sync.integrations import registry
from sync.runtime.core import Core
from sync.runtime.settings import ConfigError, load_settings
from sync.services import shifts as shift_service
from sync.services.errors import Conflict, ServiceError
from sync.services.status import webhook_health
from sync.store.crypto import KeyError_
from sync.store.database import StoreError
from sync.store.migrate import schema_state
from sync.store.model import Calendar, Connection

if TYPE_CHECKING:
    from sync.runtime.settings import Settings


def _line(ok: bool | None, label: str, hint: str = "") -> None:
    mark = "✓" if ok else ("-" if ok is None else "✗")
    text = f"{mark} {label}"
    if hint and not ok:
        text += f"  — {hint}"
    click.echo(text)


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def _bot_connector_sign_in(settings: Settings) -> str | None:
    """Why the bot cannot get its outbound Bot Connector token, or None when it can."""
    from botframework.connector.auth import AuthenticationConstants

    from bot.teams.auth import BotTokenCredentials, TokenError, _authority  # lazy: the Teams SDK, for this check only

    creds = BotTokenCredentials(settings.microsoft_app_id or "", settings.microsoft_app_password or "",
                                _authority(settings), AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE)
    try:
        await asyncio.wait_for(creds.ensure_token(), 30)
    except TokenError as exc:
        return str(exc).removeprefix("Bot Framework sign-in failed: ")[:200]
    except TimeoutError:
        return "no answer from the sign-in endpoint within 30 s"
    return None


async def _second_writer_checks(core: Core) -> int:
    """Per practice with a shift schedule: the bounded second-writer check (a sample of calendars, a time
    limit); a second writer is a failure (every shift shows twice). Returns the failures."""
    bad = 0
    async with core.store.session() as s:
        practices = list(dict.fromkeys((await s.scalars(
            select(Connection.practice_id).where(Connection.provider == shift_service.INTEGRATION)
            .order_by(Connection.id))).all()))
    for practice_id in practices:
        where = f"practice {practice_id} shift schedule"
        try:
            check = await shift_service.check_second_writers(core, practice_id)
        except Conflict:
            continue  # no practice-wide Outlook: nothing is published, nothing to compare
        except (ServiceError, ProviderError) as exc:
            _line(None, f"{where}: the second-writer check could not run ({exc})", "`clinicbot shifts check`")
            continue
        if not check.of:
            continue
        sample = f"{check.checked} of {check.of} calendars" + ("" if check.complete else ", stopped at the time limit")
        outlook = [f for f in check.found if f.where != "teams"]
        teams = [f for f in check.found if f.where == "teams"]
        if outlook:
            names = ", ".join(f"{f.person} ({f.lookalikes})" for f in outlook[:5])
            _line(False, f"{where}: another writer already puts the shifts in Outlook: {names} ({sample})",
                  "turn off the scheduler's own Outlook integration, or each shift shows twice; "
                  "`clinicbot shifts check` lists them all")
        if teams:
            names = ", ".join(f"{f.person} ({f.lookalikes})" for f in teams[:5])
            _line(False, f"{where}: the team's Teams Shifts schedule already holds shifts clinicbot did not write "
                  f"at the times of its own: {names} ({sample})",
                  "remove them in the Shifts app (a manager's by hand, or another connector's), or turn that "
                  "connector off, or publish to Outlook only (`clinicbot shifts target outlook`): each shift "
                  "shows twice")
        if check.found:
            bad += 1
        else:
            _line(True if check.complete and not check.error else None,
                  f"{where}: no second writer in {sample}" + (f"; {check.error}" if check.error else ""),
                  "`clinicbot shifts check` looks in every calendar")
    return bad


async def _teams_shifts_checks(core: Core) -> int:
    """Per practice whose shift schedule goes to Teams Shifts: can the app write the team's schedule (the
    Schedule.ReadWrite.All application permission, and the owner it acts as)? Returns the failures."""
    bad = 0
    async with core.store.session() as s:
        practices = list(dict.fromkeys((await s.scalars(
            select(Connection.practice_id).where(Connection.provider == shift_service.INTEGRATION)
            .order_by(Connection.id))).all()))
    for practice_id in practices:
        try:
            check = await shift_service.check_teams_access(core, practice_id)
        except (ServiceError, ProviderError) as exc:
            _line(None, f"practice {practice_id} shift schedule: the Teams Shifts check could not run ({exc})")
            continue
        if check is None:
            continue  # Teams is not a target
        bad += check.ok is False
        _line(check.ok, f"practice {practice_id} shift schedule: {check.words}", check.fix)
    return bad


@click.command()
@click.option("--integration", "only", multiple=True, metavar="NAME",
              help="Check only this integration (repeatable; default: all), e.g. `--integration graph`: the "
                   "others are not loaded.")
def doctor(only: tuple[str, ...]) -> None:
    """Check configuration, database, migrations, key, front ends and providers."""
    failures = 0
    chosen = sorted(set(only)) if only else None
    unknown = [name for name in chosen or () if name not in registry.names()]
    if unknown:
        click.echo(f"error: no integration is named {unknown[0]!r}; the names are: {', '.join(registry.names())}",
                   err=True)
        raise SystemExit(2)
    try:
        settings = load_settings()
        registry.check_settings(settings, chosen)
    except ConfigError as exc:
        _line(False, "configuration", str(exc))
        raise SystemExit(1) from None
    _line(True, "configuration is valid")


    try:
        core = open_core(settings)
        _line(True, "secret key loaded" + ("" if settings.secret_key else f" from {settings.secret_key_file}"))
    except KeyError_ as exc:
        _line(False, "secret key", str(exc))
        raise SystemExit(1) from None

    async def db_checks() -> int:
        bad = 0
        try:
            state = await schema_state(core.store)
            _line(True, f"database reachable ({core.store.engine.dialect.name})")
            if state.up_to_date:
                _line(True, f"schema is current ({state.head})")
            else:
                bad += 1
                where = f"is at {state.current}" if state.current else "has no clinicbot tables yet"
                _line(False, f"schema: the database {where}, and this version needs {state.head}",
                      "run `clinicbot db upgrade`")
            if state.current is not None:
                from sqlalchemy import select


                async with core.store.session() as s:
                    try:
                        for conn in (await s.scalars(select(Connection))).all():
                            _ = conn.credentials
                        _line(True, "credentials decrypt with this key")
                    except KeyError_ as exc:
                        bad += 1
                        _line(False, "credentials do not decrypt", str(exc))

                async with core.store.session() as s:
                    for cid, name, notes in (await s.execute(
                            select(Calendar.connection_id, Calendar.name, Calendar.read_notes)
                            .where(Calendar.sync_enabled.is_(True)).order_by(Calendar.id))).tuples():
                        if notes:  # a warning, not a failure: the rest of the calendar syncs
                            _line(None, f"connection {cid} calendar {name!r}: {len(notes)} events skipped or "
                                  f"repaired on reading, e.g. {notes[0]}", "fix them in the calendar they come from")


                async with core.store.session() as s:
                    for cid, provider, account, last_error in (await s.execute(
                            select(Connection.id, Connection.provider, Connection.account, Connection.last_error)
                            .where(Connection.last_error.is_not(None)).order_by(Connection.id))).tuples():
                        found = advice(last_error)
                        if found is not None:  # a failure no retry fixes: the person or their IT must act
                            bad += 1
                            _line(False, f"connection {cid} ({provider} {account}): {found.title}", found.words)

                for health in await webhook_health(core):
                    where = f"connection {health.connection_id} ({health.provider}) webhooks"
                    if health.polling_only:  # a warning: bookings still arrive, a poll later
                        _line(None, f"{where}: no subscription, bookings arrive by polling only",
                              "set CLINICBOT_PUBLIC_URL to this server's public https address; the next sync "
                              "subscribes")
                        continue
                    _line(health.active > 0 and not health.stale_urls and not health.failures_24h,
                          f"{where}: {health.summary}",
                          ("subscribed at " + ", ".join(health.stale_urls) + ", not at this server's "
                           "CLINICBOT_PUBLIC_URL: the platform signs the URL it delivers to, so deliveries there fail "
                           "or go elsewhere; the renewal job makes new ones at the current URL at its next check")
                          if health.stale_urls else
                          ("deliveries were refused (a wrong signing key or URL, a clock more than 3 minutes off, "
                           "or someone else's requests); the poll keeps bookings current meanwhile")
                          if health.failures_24h else "the poll keeps bookings current meanwhile")

                bad += await _second_writer_checks(core)
                bad += await _teams_shifts_checks(core)
        except StoreError as exc:
            bad += 1
            _line(False, "database", f"{exc}; check CLINICBOT_DATABASE_URL")
        finally:
            await core.close()
        return bad

    failures += asyncio.run(db_checks())
    # Authentication off is how the local playground talks to the bot: a note on loopback, a
    # failure on any address other machines can reach.
    teams_ok = settings.teams_auth_enabled or (None if _loopback(settings.host) else False)
    if teams_ok is False:
        failures += 1
    _line(teams_ok, "Teams: authentication " + ("on" if settings.teams_auth_enabled else "OFF"),
          "fine on loopback (the local playground); set MicrosoftAppId and MicrosoftAppPassword before exposing it")
    if settings.teams_auth_enabled:
        problem = asyncio.run(_bot_connector_sign_in(settings))
        if problem is None:
            _line(True, "Teams: signs in to the Bot Connector")
        else:
            failures += 1
            _line(False, f"Teams: cannot sign in to the Bot Connector ({problem})",
                  "check MicrosoftAppPassword (and MicrosoftAppTenantId for a single-tenant bot); "
                  "without it every Teams message goes unanswered")
    _line(settings.slack_enabled or None, "Slack " + ("configured" if settings.slack_enabled else "not configured"),
          "set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN (or SLACK_CLIENT_ID/SECRET)")
    plain = []
    for integration in registry.integrations(chosen):
        if integration.is_route:
            continue  # reached through the integrations listed here; nothing of its own to set up
        if integration.configured is None:
            plain.append(integration.title)
            continue
        ready = integration.is_configured(settings)
        _line(ready or None, f"{integration.title} " + ("configured" if ready else "not configured"),
              integration.connect.setup_hint)
    if plain:
        names = plain[0] if len(plain) == 1 else ", ".join(plain[:-1]) + " and " + plain[-1]
        _line(True, f"{names} need{'s' if len(plain) == 1 else ''} no app registration")
    for name, why in sorted(registry.broken(chosen).items()):
        failures += 1
        _line(False, f"integration {name} does not load", why)
    _line(bool(settings.public_url) or None, "public URL " + (settings.public_url or "not set"),
          "set CLINICBOT_PUBLIC_URL for OAuth redirects and webhooks")
    raise SystemExit(1 if failures else 0)
