"""`clinicbot connection add google`: connect a Google Calendar account from the command line.

Without --code it starts the OAuth flow and prints the consent URL (the /oauth/google/callback
route finishes it). With --state and --code, pasted from the callback URL, it finishes the flow
here, for servers that Google cannot reach.

Registration (lead): add ("bot.cli.google_commands", ["connection"]) to _COMMAND_MODULES.
"""

from __future__ import annotations

import click

from bot.cli import with_core
from bot.cli.output import emit, fail, json_option
from sync.runtime.core import Core

SEND_UPDATES_CHOICES = ("none", "all", "externalOnly")


@click.group()
def connection() -> None:
    """Calendar connections."""


@connection.group("add")
def add() -> None:
    """Connect an account."""


@add.command("google")
@click.option("--practice", "practice_name", default=None, help="Practice name (default: the first).")
@click.option("--practitioner", "practitioner_ref", default=None, help="Practitioner handle, name or id.")
@click.option(
    "--send-updates",
    type=click.Choice(SEND_UPDATES_CHOICES),
    default="none",
    show_default=True,
    help="Whether Google emails attendees about clinicbot's changes.",
)
@click.option("--state", default=None, help="Finish: the state parameter of the callback URL.")
@click.option("--code", default=None, help="Finish: the code parameter of the callback URL.")
@json_option
@with_core
async def add_google(
    core: Core,
    practice_name: str | None,
    practitioner_ref: str | None,
    send_updates: str,
    state: str | None,
    code: str | None,
    as_json: bool,
) -> None:
    """Connect a Google Calendar account (OAuth with PKCE)."""
    from sync.contract import ProviderError
    from adapters.google.connect import begin_connect, finish_connect
    from sync.services.practices import PracticeError, find_practitioner, practice_by_name

    if bool(state) != bool(code):
        fail("give both --state and --code to finish a connection, or neither to start one")
    try:
        async with core.store.session() as session:
            if state and code:
                conn = await finish_connect(session, core.settings, state=state, code=code)
                emit(
                    {"id": conn.id, "provider": "google", "account": conn.account, "status": conn.status},
                    ["id", "provider", "account", "status"],
                    as_json,
                )
                return
            practice = await practice_by_name(session, practice_name)
            practitioner_id = None
            if practitioner_ref:
                found = await find_practitioner(session, practice.id, practitioner_ref)
                if found is None:
                    fail(f"no practitioner {practitioner_ref!r} in {practice.name}")
                    return
                practitioner_id = found.id
            pending = await begin_connect(
                session,
                core.settings,
                practice_id=practice.id,
                chat_identity_id=None,
                practitioner_id=practitioner_id,
                send_updates=send_updates,
            )
    except PracticeError as exc:
        fail(str(exc))
        return
    except ProviderError as exc:
        fail(str(exc))
        return
    if as_json:
        emit({"url": pending.url, "state": pending.state, "expires_at": pending.expires_at}, None, True)
        return
    # A table would cut the URL; print it whole on its own line.
    click.echo("Open this URL, sign in with the Google account and allow access:")
    click.echo(pending.url)
    emit({"state": pending.state, "expires_at": pending.expires_at}, ["state", "expires_at"], False)
