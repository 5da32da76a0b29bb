"""`clinicbot demo`: a demo practice with a day of appointments, for trying clinicbot in chat."""

from __future__ import annotations

import click

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from bot.cli.people import cli_actor
from sync.runtime.core import Core
from sync.services.demo import create_demo, is_fresh_install
from sync.services.practices import PracticeError

#: How to try the Teams front end locally (Microsoft 365 Agents Playground, from npm).
PLAYGROUND = "npx -y -p @microsoft/m365agentsplayground agentsplayground -e {url}/api/messages -c msteams"


def _local_zone() -> str:
    """This machine's IANA zone, for a demo day that matches the clock on the wall (UTC if unknown)."""
    try:
        from tzlocal import get_localzone_name

        return get_localzone_name() or "UTC"
    except Exception:  # tzlocal refuses odd setups (no /etc/localtime, a bare offset): the demo still runs
        return "UTC"


@click.command()
@click.option("--tz", "tz", default=None, help="IANA time zone of the demo practice (default: this machine's).")
@click.option("--try-out", is_flag=True,
              help="Only on a fresh database with no chat platform configured (what `make run` uses).")
@json_option
@with_core
async def demo(core: Core, tz: str | None, try_out: bool, as_json: bool) -> None:
    """Create a demo practice: two practitioners and today's appointments, to try `today` in chat."""
    if try_out:
        # A try-out server is one nobody but this machine's playground can talk to; a configured
        # Teams or Slack app, or a database in use, is a real clinic's, and gets no demo data.
        if core.settings.teams_auth_enabled or core.settings.slack_enabled:
            return
        async with core.store.session() as s:
            if not await is_fresh_install(s):
                return
    try:
        async with core.store.session() as s:
            made = await create_demo(s, tz=tz or _local_zone(), now=core.clock(), actor=cli_actor())
    except PracticeError as exc:
        fail(str(exc))
        return
    if as_json:
        emit({"practice": made.practice, "timezone": made.timezone, "day": made.day.isoformat(),
              "practitioners": list(made.practitioners), "appointments": [f"A-{i}" for i in made.appointment_ids],
              "created": made.created}, None, True)
        return
    what = "booked" if made.created else "already has"
    click.echo(f"{made.practice} ({made.timezone}) {what} {len(made.appointment_ids)} appointments on "
               f"{made.day:%a %d %b %Y} with {' and '.join(made.practitioners)}.")
    url = f"http://{core.settings.host}:{core.settings.port}"
    click.echo("Next: `make run` (or `clinicbot serve`), then in another terminal:")
    click.echo(f"  {PLAYGROUND.format(url=url)}")
    click.echo("and type `today` in the chat.")
