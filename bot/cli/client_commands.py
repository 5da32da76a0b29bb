"""`clinicbot clients optout|status|settings`: clients who want no messages, what was sent to clients, and
what the practice tells them (channels, reminders, quiet hours, details, templates)."""

from __future__ import annotations

import click
from sqlalchemy import func, select

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from bot.cli.people import cli_actor
from sync.notify.client_optouts import normal_phone
from sync.notify.clients import opt_out
from sync.runtime.core import Core
from sync.services.client_notices import change_client_notices, parse_change, practice_id_named
from sync.services.errors import ServiceError
from sync.services.practices import PracticeError, practice_by_name
from sync.store.model import ClientNotice

__all__ = ["clients"]


@click.group()
def clients() -> None:
    """Messages to clients about their visits (email invitations when a visit moves or is cancelled)."""


@clients.command("optout")
@click.argument("address")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@with_core
async def clients_optout(core: Core, address: str, practice_name: str | None) -> None:
    """Send ADDRESS (an email address, or a phone number as +447700900123) no more messages from the practice."""
    if len(address) > 320 or ("@" not in address and normal_phone(address) is None):
        fail(f"{address!r} is not an email address or an international phone number (+44...)")
        return
    try:
        async with core.store.session() as s:
            practice_id = (await practice_by_name(s, practice_name)).id
    except PracticeError as exc:
        fail(str(exc))
        return
    added = await opt_out(core, practice_id, address, actor=cli_actor())
    click.echo("opted out" if added else "already opted out")


@clients.command("status")
@json_option
@with_core
async def clients_status(core: Core, as_json: bool) -> None:
    """Client messages by state (pending, sent, failed, skipped), for each channel, and the last failure."""
    async with core.store.session() as s:
        rows = (await s.execute(select(ClientNotice.channel, ClientNotice.status, func.count())
                                .group_by(ClientNotice.channel, ClientNotice.status))).all()
        last = (await s.execute(select(ClientNotice.channel, ClientNotice.last_error)
                                .where(ClientNotice.status == "failed")
                                .order_by(ClientNotice.id.desc()).limit(1))).first()
    states = ("pending", "sending", "sent", "failed", "bounced", "skipped")
    counts = {k: 0 for k in states}
    by_channel: dict[str, dict[str, int]] = {}
    for channel, status, n in rows:
        counts[str(status)] = counts.get(str(status), 0) + int(n)
        by_channel.setdefault(str(channel), {k: 0 for k in states})[str(status)] = int(n)
    summary: dict[str, object] = dict(counts)
    for channel, numbers in sorted(by_channel.items()):
        summary[channel] = ", ".join(f"{k} {v}" for k, v in numbers.items() if v) or "-"
    summary["last_failure"] = f"{last[0]}: {last[1]}" if last is not None else "-"
    emit(summary, [*states, *sorted(by_channel), "last_failure"], as_json)


@clients.command("settings")
@click.argument("words", nargs=-1)
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@with_core
async def clients_settings(core: Core, words: tuple[str, ...], practice_name: str | None) -> None:
    """Show or change what the practice tells its clients (the chat's `client-notices`).

    WORDS: nothing (show), on|off, channel email|sms|both, new on|off, reminders on|off,
    quiet 21:00-08:00|off, details on|off, language en|es, prefix +44|off, template KIND TEXT,
    template KIND reset
    (KIND: booked, moved, cancelled, reminder; placeholders {practice} {practitioner} {client}
    {date} {time} {zone} {location} {service}).
    """
    try:
        change = parse_change(list(words), " ".join(words))
        practice_id = await practice_id_named(core, practice_name)
        found = await change_client_notices(core, practice_id, change, actor=cli_actor())
    except (ServiceError, PracticeError) as exc:
        fail(str(exc))
        return
    for line in found.lines():
        click.echo(line)
