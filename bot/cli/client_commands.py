"""`clinicbot clients optout|status`: clients who want no messages, and what was sent to clients."""

from __future__ import annotations

import click
from sqlalchemy import func, select

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from bot.cli.people import cli_actor
from sync.notify.clients import opt_out
from sync.runtime.core import Core
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
    """Send ADDRESS no more messages from the practice (what the link in every message does)."""
    if "@" not in address or len(address) > 320:
        fail(f"{address!r} is not an email address")
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
    """Client messages by state (pending, sent, failed, skipped)."""
    async with core.store.session() as s:
        rows = (await s.execute(select(ClientNotice.status, func.count()).group_by(ClientNotice.status))).all()
        last_error = await s.scalar(select(ClientNotice.last_error).where(ClientNotice.status == "failed")
                                    .order_by(ClientNotice.id.desc()).limit(1))
    counts = {str(status): int(n) for status, n in rows}
    emit({k: counts.get(k, 0) for k in ("pending", "sent", "failed", "skipped")} | {"last_failure": last_error or "-"},
         ["pending", "sent", "failed", "skipped", "last_failure"], as_json)
