"""`clinicbot practice mirror-edits [card|follow|keep]`: what a hand edit of a mirror copy does."""

from __future__ import annotations

import click

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from bot.cli.people import cli_actor
from sync.runtime.core import Core
from sync.services.errors import ServiceError
from sync.services.mirror_edits import MIRROR_EDITS, mirror_edits_of_named, set_mirror_edits_named


@click.group()
def practice() -> None:
    """Practices (clinics)."""


@practice.command("mirror-edits")
@click.argument("mode", required=False, type=click.Choice(MIRROR_EDITS, case_sensitive=False))
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@json_option
@with_core
async def practice_mirror_edits(core: Core, mode: str | None, practice_name: str | None, as_json: bool) -> None:
    """Show or set what a hand edit of a calendar copy does: card (staff decide; the default), follow (a
    practitioner's move in their own calendar reschedules the appointment) or keep (the copy is put back).
    Bookings from a booking platform or a read-only feed always get the card."""
    try:
        if mode is None:
            found = await mirror_edits_of_named(core, practice_name)
        else:
            found = await set_mirror_edits_named(core, practice_name, mode, actor=cli_actor())
    except ServiceError as exc:
        fail(str(exc))
        return
    if as_json:
        emit({"practice": found.practice, "mirror_edits": found.after, "before": found.before,
              "changed": found.changed}, None, True)
        return
    click.echo(found.sentence())
