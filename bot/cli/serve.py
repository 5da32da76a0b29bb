"""`clinicbot serve`: prepare the database and run the server until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging

import click

from bot.cli import get_settings
from bot.cli.demo import PLAYGROUND
from bot.cli.output import fail
from bot.logs import configure_logging
from sync.store.crypto import KeyError_
from sync.store.database import StoreError

log = logging.getLogger("clinicbot.serve")


@click.command()
@click.option("--host", default=None, help="Listen address (default CLINICBOT_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Listen port (default CLINICBOT_PORT, 3978).")
def serve(host: str | None, port: int | None) -> None:
    """Run the clinicbot server."""
    # The web server and its chat SDKs (aiohttp, botbuilder, slack-bolt: seconds to import) load for `serve`
    # only, not for every admin command.
    from aiohttp import web

    from bot.app import build_app, prepare_database, tune_for_serving  # lazy: the server's SDKs, see above
    from bot.keys import CORE  # lazy: aiohttp, see above

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    if host or port:
        settings = settings.model_copy(update={k: v for k, v in (("host", host), ("port", port)) if v})
    try:
        app = build_app(settings)
    except KeyError_ as exc:
        fail(str(exc), code=2)
    tune_for_serving(app)

    async def check() -> None:
        try:
            await prepare_database(app[CORE])
        finally:
            # The server runs on a new event loop: drop connections bound to this one.
            await app[CORE].store.engine.dispose()

    try:
        asyncio.run(check())
    except (StoreError, KeyError_) as exc:
        fail(str(exc), code=2)
    if settings.is_sqlite:
        log.info("embedded SQLite database: single process; use PostgreSQL to run several replicas")
    log.info("clinicbot listening", extra={"url": f"http://{settings.host}:{settings.port}"})
    if not settings.teams_auth_enabled and not settings.slack_enabled:
        _print_try_it(settings.host, settings.port)
    web.run_app(app, host=settings.host, port=settings.port, print=None, shutdown_timeout=10,
                access_log=None, handle_signals=True)
    log.info("clinicbot stopped")


def _print_try_it(host: str, port: int) -> None:
    """With no chat platform configured, say how to talk to this server locally (the Teams playground)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104  (reading, not binding)
    click.echo(
        "No chat platform is configured. Try the bot locally in the Microsoft 365 Agents Playground "
        "(needs Node.js; `clinicbot demo` adds a demo practice first):\n"
        f"  {PLAYGROUND.format(url=f'http://{shown}:{port}')}\n"
        "then type `today` or `help` in its chat.",
        err=True,
    )
