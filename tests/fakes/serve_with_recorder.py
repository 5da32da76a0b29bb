"""`clinicbot serve` with one extra component: a RecorderNotifier at $CLINICBOT_TEST_RECORDER_URL.

The failover test starts this as a subprocess; everything else is the real server and CLI.
"""

from __future__ import annotations

import os
import sys

from aiohttp import web

import bot.app
from bot.cli import main
from sync.runtime.settings import Settings
from tests.fakes.recorder import RecorderNotifier


def _recorder(app: web.Application, settings: Settings) -> str | None:
    app[bot.app.CORE].services.notifier = RecorderNotifier(os.environ["CLINICBOT_TEST_RECORDER_URL"])
    return None


def _components() -> list[tuple[str, bot.app.Component]]:
    # Last, so that it replaces the chat notifier the front ends install.
    return [*bot.app._components(), ("test-recorder", _recorder)]


if __name__ == "__main__":
    bot.app.COMPONENTS = _components
    sys.exit(main(["serve", *sys.argv[1:]]))
