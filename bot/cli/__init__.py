"""The `clinicbot` command: serve, db, audit, doctor and the admin commands.

Each command group lives in its own module and is registered in `_register`.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click

from bot.cli.output import fail
from bot.logs import configure_logging
from sync.boot import open_core
from sync.integrations import registry
from sync.runtime.settings import ConfigError, Settings, load_settings
from sync.store.crypto import KeyError_
from sync.store.database import StoreError
from sync.store.migrate import prepare_database

__all__ = ["main", "run_async", "with_core"]

T = TypeVar("T")


def get_settings() -> Settings:
    """The settings, with every integration's section checked: a wrong value exits naming the variable."""
    try:
        settings = load_settings()
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="clinicbot", message="clinicbot %(version)s")
def main() -> None:
    """clinicbot: calendars, bookings and reminders for clinics, from Teams and Slack."""
    configure_logging("text", "WARNING")


#: modules that define click commands/groups to add to `main` (attribute names listed).
_COMMAND_MODULES: list[tuple[str, list[str]]] = [
    ("bot.cli.serve", ["serve"]),
    ("bot.cli.db", ["db"]),
    ("bot.cli.audit", ["audit"]),
    ("bot.cli.doctor", ["doctor"]),
    ("bot.cli.people", ["practice", "practitioner", "role"]),
    ("bot.cli.teams_commands", ["teams"]),
    ("bot.cli.sync_commands", ["connection", "calendar", "sync_group", "appointments"]),
    ("bot.cli.graph_commands", ["practitioner"]),
    ("bot.cli.demo", ["demo"]),
    ("bot.cli.staff_commands", ["staff"]),
    ("bot.cli.mirror_commands", ["practice"]),
    ("bot.cli.settings_commands", ["practitioner", "connection"]),
    ("bot.cli.location_commands", ["location"]),
    ("bot.cli.shift_commands", ["shifts"]),
    ("bot.cli.client_commands", ["clients"]),
]


def _merge(into: click.Group, cmd: click.Command) -> None:
    """Add `cmd` to `into`; groups of the same name from several modules are merged, at any depth."""
    existing = into.commands.get(cmd.name or "")
    if isinstance(existing, click.Group) and isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            _merge(existing, sub)
    elif existing is not None and existing is not cmd:
        raise RuntimeError(f"two modules define the command {into.name} {cmd.name}")
    else:
        into.add_command(cmd)


def _register() -> None:
    for module_name, names in _COMMAND_MODULES:
        module = importlib.import_module(module_name)
        for name in names:
            _merge(main, getattr(module, name))


_register()
