"""`clinicbot shifts ...`: import a published schedule, say who gets it, set assignment flags, publish."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from bot.cli.people import cli_actor
from bot.commands.errors import ParseError
from bot.commands.shift_target import parse_shift_target
from sync.contract.shifts import IDENTITY_FIELDS
from sync.runtime.core import Core
from sync.services import shift_mapping, shift_sources
from sync.services import shifts as service
from sync.services.errors import ServiceError

__all__ = ["shifts"]

#: Read at most this much of a file (the reader refuses anything larger with a clear message).
READ_LIMIT = 50 * 1024 * 1024 + 1


@click.group()
def shifts() -> None:
    """Shift schedules (Lightning Bolt, QGenda, Deputy exports) published to staff Outlook calendars."""


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(READ_LIMIT)
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")
        raise


def _import_lines(summary: service.ImportSummary) -> dict[str, object]:
    return {
        "origin": summary.origin, "shifts": summary.shifts, "published": summary.published,
        "window": f"{summary.window[0]:%Y-%m-%d} - {summary.window[1]:%Y-%m-%d}",
        "create": summary.to_create, "update": summary.to_update, "delete": summary.to_delete,
        "unchanged": summary.unchanged, "identity_field": summary.identity_field,
        "no_identity": ", ".join(summary.unmapped) or "-",
    }


def _publish_lines(summary: service.PublishSummary) -> dict[str, object]:
    return {
        "created": summary.created, "updated": summary.updated, "deleted": summary.deleted,
        "failed": summary.failed, "not_mapped": summary.skipped_unmapped,
        "unknown_people": ", ".join(summary.unknown_people) or "-",
    } | ({"teams_created": summary.teams_created, "teams_updated": summary.teams_updated,
          "teams_deleted": summary.teams_deleted, "teams_failed": summary.teams_failed} if summary.teams_ran else {})


@shifts.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@click.option("--dry-run", is_flag=True, help="Show what would change; store and publish nothing.")
@click.option("--no-publish", is_flag=True, help="Store the schedule; publish later with `clinicbot shifts publish`.")
@json_option
@with_core
async def shifts_import(core: Core, file: Path, practice_name: str | None, dry_run: bool, no_publish: bool,
                        as_json: bool) -> None:
    """Import a published schedule export (CSV) and publish the changes to people's calendars."""
    data = _read(file)
    try:
        snapshot = await service.parse_upload(core, practice_name, file.name, data)
        summary = await service.import_schedule(core, practice_name, snapshot, actor=cli_actor(), dry_run=dry_run)
    except ServiceError as exc:
        fail(str(exc))
        return
    out: dict[str, object] = {
        "file": file.name, "shifts": summary.shifts, "published": summary.published,
        "window": f"{summary.window[0]:%Y-%m-%d} - {summary.window[1]:%Y-%m-%d}",
        "create": summary.to_create, "update": summary.to_update, "delete": summary.to_delete,
        "unchanged": summary.unchanged, "identity_field": summary.identity_field,
        "no_identity": ", ".join(summary.unmapped) or "-", "dry_run": dry_run,
    }
    if not (dry_run or no_publish):
        try:
            out |= _publish_lines(await service.publish(core, practice_name, actor=cli_actor()))
        except ServiceError as exc:
            emit(out, list(out), as_json)
            fail(f"the schedule is stored; publishing it failed: {exc}")
            return
    emit(out, list(out), as_json)


@shifts.command("publish")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@json_option
@with_core
async def shifts_publish(core: Core, practice_name: str | None, as_json: bool) -> None:
    """Write what is still pending (after a failure, a mapping or flag change) to people's calendars."""
    try:
        summary = await service.publish(core, practice_name, actor=cli_actor())
    except ServiceError as exc:
        fail(str(exc))
        return
    out = _publish_lines(summary)
    emit(out, list(out), as_json)
    if summary.failed or summary.teams_failed:
        fail(f"{summary.failed + summary.teams_failed} shift(s) could not be written; they stay pending: "
             f"{'; '.join(summary.errors[:3])}")


@shifts.command("identity-field")
@click.argument("field_name", type=click.Choice([*IDENTITY_FIELDS, "uniqueid"], case_sensitive=False))
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@with_core
async def shifts_identity_field(core: Core, field_name: str, practice_name: str | None) -> None:
    """Which person field holds the Microsoft sign-in (UPN or object id); empty means no shifts in Outlook."""
    try:
        changed = await service.set_identity_field(core, practice_name, field_name, actor=cli_actor())
    except ServiceError as exc:
        fail(str(exc))
        return
    click.echo(f"identity field set; {changed} future shift(s) change target. Run `clinicbot shifts publish`.")


@shifts.command("flags")
@click.argument("assignment", required=False)
@click.option("--send/--no-send", default=None, help="Send this assignment's shifts to Outlook.")
@click.option("--notes/--no-notes", default=None, help="Put the shift's schedule notes in the event.")
@click.option("--info/--no-info", default=None, help="Put the assignment's name and times in the event.")
@click.option("--free/--busy", default=None, help="Show the time as free (default busy).")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@json_option
@with_core
async def shifts_flags(core: Core, assignment: str | None, send: bool | None, notes: bool | None,
                       info: bool | None, free: bool | None, practice_name: str | None, as_json: bool) -> None:
    """Show the assignments' flags, or set ASSIGNMENT's."""
    columns = ["assignment", "send", "notes", "info", "free"]
    try:
        if assignment is None:
            rows = [{"assignment": name, **flags.as_dict()}
                    for name, flags in await service.known_assignments(core, practice_name)]
            emit(rows, columns, as_json)
            return
        flags, changed = await service.set_flags(core, practice_name, assignment, actor=cli_actor(),
                                                 send=send, notes=notes, info=info, free=free)
    except ServiceError as exc:
        fail(str(exc))
        return
    emit({"assignment": assignment, **flags.as_dict(), "shifts_changed": changed}, [*columns, "shifts_changed"],
         as_json)


@shifts.command("target", context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1)
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@json_option
@with_core
async def shifts_target(core: Core, words: tuple[str, ...], practice_name: str | None, as_json: bool) -> None:
    """Where shifts are published: [outlook|teams|both] [team TEAM_ID] [as OWNER_UPN] (the chat command's words)."""
    columns = ["target", "team_id", "acts_as"]
    try:
        cmd = parse_shift_target(list(words))
        if cmd.target is None:
            found = await service.shift_target(core, practice_name)
            emit(found.as_dict(), columns, as_json)
            return
        before, after = await service.set_shift_target(core, practice_name, cmd.target, actor=cli_actor(),
                                                       team_id=cmd.team_id, acts_as=cmd.acts_as)
    except ParseError as exc:
        fail(str(exc))
        return
    except ServiceError as exc:
        fail(str(exc))
        return
    emit({**after.as_dict(), "before": before.target}, [*columns, "before"], as_json)


@shifts.command("list")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The day (default: today in the practice's zone).")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@json_option
@with_core
async def shifts_list(core: Core, day: object, practice_name: str | None, as_json: bool) -> None:
    """Who is on: the published shifts of a day."""
    try:
        practice_id, zone = await service.practice_ref(core, practice_name)
        when: date = day.date() if day is not None else service.today(zone)  # type: ignore[attr-defined]
        start, end = service.day_bounds(when, zone)
        found = await service.shifts_between(core, practice_id, start, end)
    except ServiceError as exc:
        fail(str(exc))
        return
    emit([{"person": v.person, "assignment": v.assignment, "start": v.start.astimezone(start.tzinfo),
           "end": v.end.astimezone(start.tzinfo)} for v in found], ["person", "assignment", "start", "end"], as_json)


@shifts.command("check")
@click.option("--days", default=14, show_default=True, help="How many days ahead to compare.")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@json_option
@with_core
async def shifts_check(core: Core, days: int, practice_name: str | None, as_json: bool) -> None:
    """Warn where the scheduler's own Outlook integration also writes the shifts (two writers, double events)."""
    try:
        found = await service.second_writers(core, practice_name, days=days)
    except ServiceError as exc:
        fail(str(exc))
        return
    rows = [{"mailbox": f.mailbox, "person": f.person, "lookalike_events": f.lookalikes, "where": f.where}
            for f in found]
    if as_json:
        emit(rows, None, True)
        return
    if not rows:
        click.echo(f"No second writer found in the next {days} days: only clinicbot writes these shifts.")
        return
    emit(rows, ["mailbox", "person", "lookalike_events", "where"], False)
    click.echo("These calendars already hold events with the shifts' subjects and times that clinicbot did not "
               "write: turn off the scheduler's own Outlook integration for them (where: outlook), remove the "
               "shifts another writer puts in the team's Teams Shifts schedule (where: teams), or the shifts "
               "show twice.")


async def _then_publish(core: Core, practice_name: str | None, out: dict[str, object], publish: bool,
                        as_json: bool) -> None:
    if publish:
        try:
            out |= _publish_lines(await service.publish(core, practice_name, actor=cli_actor()))
        except ServiceError as exc:
            emit(out, list(out), as_json)
            fail(f"the schedule is stored; publishing it failed: {exc}")
            return
    emit(out, list(out), as_json)


@shifts.command("feed")
@click.argument("url")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@click.option("--no-publish", is_flag=True, help="Store the schedule; publish later with `clinicbot shifts publish`.")
@json_option
@with_core
async def shifts_feed(core: Core, url: str, practice_name: str | None, no_publish: bool, as_json: bool) -> None:
    """Read the published schedule from the scheduler's iCalendar feed URL (kept encrypted, read every 5 minutes)."""
    try:
        summary = await shift_sources.set_feed(core, practice_name, url, actor=cli_actor())
    except ServiceError as exc:
        fail(f"the feed is not set: {exc}")
        return
    await _then_publish(core, practice_name, _import_lines(summary), not no_publish, as_json)


@shifts.command("pull")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@click.option("--no-publish", is_flag=True, help="Store the schedule; publish later with `clinicbot shifts publish`.")
@json_option
@with_core
async def shifts_pull(core: Core, practice_name: str | None, no_publish: bool, as_json: bool) -> None:
    """Read the schedule feed now (instead of waiting for the next 5-minute read) and publish the changes."""
    try:
        summary = await shift_sources.pull_feed(core, practice_name, actor=cli_actor())
    except ServiceError as exc:
        fail(str(exc))
        return
    await _then_publish(core, practice_name, _import_lines(summary), not no_publish, as_json)


@shifts.command("push-secret")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@with_core
async def shifts_push_secret(core: Core, practice_name: str | None) -> None:
    """Make a new secret for signed schedule pushes (the old one stops working) and print where to push."""
    try:
        connection_id, secret = await shift_sources.push_secret(core, practice_name, actor=cli_actor())
    except ServiceError as exc:
        fail(str(exc))
        return
    click.echo(f"POST the schedule as JSON to {core.settings.base_url()}/webhooks/shifts/{connection_id}")
    click.echo("with the header X-Clinicbot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of t + '.' + body>")
    click.echo(f"under this secret (shown once; stored encrypted): {secret}")


@shifts.command("map")
@click.argument("person")
@click.option("--upn", default=None, help="Send their shifts to this Microsoft sign-in (name@domain or object id).")
@click.option("--practitioner", "practitioner_id", type=int, default=None,
              help="Send their shifts to this practitioner's calendar (their sign-in, else e-mail).")
@click.option("--undo", is_flag=True, help="Forget the hand mapping: the identity field decides again.")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@with_core
async def shifts_map(core: Core, person: str, upn: str | None, practitioner_id: int | None, undo: bool,
                     practice_name: str | None) -> None:
    """Send PERSON's shifts (named as the schedule names them) to a UPN or a practitioner, by hand."""
    if undo == bool(upn or practitioner_id is not None) or (upn and practitioner_id is not None):
        fail("give exactly one of --upn, --practitioner or --undo")
        return
    try:
        target, changed = await shift_mapping.map_person(core, practice_name, person, actor=cli_actor(), upn=upn,
                                                         practitioner_id=practitioner_id)
    except ServiceError as exc:
        fail(str(exc))
        return
    where = f"go to {target}" if target else "follow the identity field again"
    click.echo(f"{person}'s shifts {where}; {changed} future shift(s) change. Run `clinicbot shifts publish`.")


@shifts.command("people")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@json_option
@with_core
async def shifts_people(core: Core, practice_name: str | None, as_json: bool) -> None:
    """Everyone on a future published shift, and where their shifts go (none: no sign-in, so nothing sent)."""
    try:
        state = await shift_mapping.mapping_state(core, practice_name)
    except ServiceError as exc:
        fail(str(exc))
        return
    rows = [{"person": p.name, "shifts": p.shifts, "mailbox": p.mailbox or "-", "how": p.how,
             "known_to_microsoft": "no" if p.unknown else ("-" if not p.mailbox else "yes")} for p in state.people]
    emit(rows, ["person", "shifts", "mailbox", "how", "known_to_microsoft"], as_json)
