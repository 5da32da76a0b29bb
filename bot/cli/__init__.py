"""The `clinicbot` command: serve, db, audit, doctor and the admin commands.

Each command group lives in its own module, named in `COMMANDS`. The top-level group is lazy: it lists the
commands (with their one-line help) from that table, and imports a command's modules only when that command
runs or shows its own help, so `clinicbot --version`, `--help` or `db upgrade` does not pay for the server,
the sync engine and every integration (issue 23: over a second of start-up, 1,200 modules).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bot.cli.output import fail
from bot.logs import configure_logging

if TYPE_CHECKING:
    from sync.runtime.settings import Settings

__all__ = ["COMMANDS", "main", "run_async", "with_core"]

T = TypeVar("T")


def get_settings(*, integrations: bool = True) -> Settings:
    """The settings, with every integration's section checked: a wrong value exits naming the variable.

    `integrations=False` checks clinicbot's own variables only, for a command that uses no integration (`db`):
    checking the others imports every adapter.
    """
    from sync.runtime.settings import ConfigError, load_settings  # lazy: pydantic-settings, read by commands only

    try:
        settings = load_settings()
        if integrations:
            from sync.integrations import registry  # lazy: checking the sections imports every adapter

            registry.check_settings(settings)
        return settings
    except ConfigError as exc:
        fail(str(exc), code=2)
        raise  # unreachable


def run_async(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async click callback to completion."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def with_core(fn: Callable[..., Awaitable[T]]) -> Callable[..., T]:
    """Give an async command a ready Core (settings, key, migrated store); map errors to one line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        # The core (SQLAlchemy, alembic, the engine) loads when a command runs, not when it is listed.
        from sync.boot import open_core  # lazy: the core, when a command runs
        from sync.store.crypto import KeyError_  # lazy: as open_core
        from sync.store.database import StoreError  # lazy: SQLAlchemy, as open_core
        from sync.store.migrate import prepare_database  # lazy: alembic, as open_core

        async def go() -> T:
            settings = get_settings()
            try:
                core = open_core(settings)
            except KeyError_ as exc:
                fail(str(exc), code=2)
            try:
                await prepare_database(core.store, auto_migrate=core.settings.auto_migrate)
                return await fn(core, *args, **kwargs)
            except (StoreError, KeyError_) as exc:
                fail(str(exc), code=2)
                raise
            finally:
                await core.close()

        return asyncio.run(go())

    return wrapper


#: Every top-level command: its one-line help (as `clinicbot --help` lists it) and the "module:attribute"
#: of each click command or group that makes it, merged in this order (several modules add subcommands
#: to `practice`, `practitioner` and `connection`). tests/bot/cli/test_lazy_cli.py checks this table
#: against the modules: a command missing here, or a help line that differs, fails there.
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "serve": ("Run the clinicbot server.", ("bot.cli.serve:serve",)),
    "db": ("Database schema migrations.", ("bot.cli.db:db",)),
    "audit": ("The tamper-evident audit log.", ("bot.cli.audit:audit",)),
    "doctor": ("Check configuration, database, migrations, key, front ends and providers.",
               ("bot.cli.doctor:doctor",)),
    "practice": ("Practices (clinics).", ("bot.cli.people:practice", "bot.cli.mirror_commands:practice")),
    "practitioner": ("Practitioners.", ("bot.cli.people:practitioner", "bot.cli.graph_commands:practitioner",
                                        "bot.cli.settings_commands:practitioner")),
    "role": ("Roles of the people clinicbot has seen in chat (admin, staff, practitioner).",
             ("bot.cli.people:role",)),
    "teams": ("Microsoft Teams app tools.", ("bot.cli.teams_commands:teams",)),
    "connection": ("Calendar connections.", ("bot.cli.sync_commands:connection",
                                             "bot.cli.settings_commands:connection")),
    "calendar": ("Calendars inside connections.", ("bot.cli.sync_commands:calendar",)),
    "sync": ("Run the sync and see its health.", ("bot.cli.sync_commands:sync_group",)),
    "appointments": ("Canonical appointments.", ("bot.cli.sync_commands:appointments",)),
    "demo": ("Create a demo practice: two practitioners and today's appointments, to try `today` in chat.",
             ("bot.cli.demo:demo",)),
    "staff": ("Staff mapping: a booking platform's staff ids (Square team member, Acuity calendar...) to "
              "practitioners.", ("bot.cli.staff_commands:staff",)),
    "location": ("The practice's locations.", ("bot.cli.location_commands:location",)),
    "shifts": ("Shift schedules (Lightning Bolt, QGenda, Deputy exports) published to staff Outlook calendars.",
               ("bot.cli.shift_commands:shifts",)),
    "clients": ("Messages to clients about their visits (email invitations when a visit moves or is cancelled).",
                ("bot.cli.client_commands:clients",)),
}


def _merge(into: click.Group, cmd: click.Command) -> None:
    """Add `cmd` to `into`; groups of the same name from several modules are merged, at any depth."""
    existing = into.commands.get(cmd.name or "")
    if existing is cmd:
        return
    if isinstance(existing, click.Group) and isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            _merge(existing, sub)
    elif existing is not None:
        raise RuntimeError(f"two modules define the command {into.name} {cmd.name}")
    else:
        into.add_command(cmd)


def load(target: str) -> click.Command:
    """The click command at "module:attribute", its module imported."""
    module_name, attribute = target.split(":")
    command = getattr(importlib.import_module(module_name), attribute)  # lazy: a command's module, when it runs
    assert isinstance(command, click.Command), target
    return command


class LazyGroup(click.Group):
    """A group whose commands come from `COMMANDS`, each imported on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: set[str] = set()

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self._loaded:
            for target in COMMANDS[cmd_name][1]:
                _merge(self, load(target))
            self._loaded.add(cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their one-line help, as click writes them, from `COMMANDS`: nothing is imported."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in COMMANDS:
                # a stand-in with the same help shortens it as click does, without importing the command
                rows.append((name, click.Command(name, help=COMMANDS[name][0]).get_short_help_str(limit)))
            else:  # added by an embedder or a test (`main.add_command`)
                command = self.commands[name]
                if not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="clinicbot", message="clinicbot %(version)s")
def main() -> None:
    """clinicbot: calendars, bookings and reminders for clinics, from Teams and Slack."""
    configure_logging("text", "WARNING")
