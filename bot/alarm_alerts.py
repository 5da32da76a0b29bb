"""Mount the alarm loop (sync.notify.alarms) in the server's lifecycle.

Expired sign-ins, failing connections, lost push channels and writes that failed for good are
told to the practice's staff channel (or its admins by DM) through the ChatNotifier. Only the
process that leads the scheduler sweeps and sends; on SQLite that is the one server process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bot.keys import CORE
from bot.notify import chat_notifier
from sync.jobs.scheduler import ClinicScheduler
from sync.notify.alarms import AlarmWorker
from sync.runtime.core import Core
from sync.runtime.settings import Settings

__all__ = ["alarm_interval", "setup_alarm_alerts"]

#: The longest gap between two sweeps, whatever the poll interval.
MAX_INTERVAL = 60.0


def alarm_interval(settings: Settings) -> float:
    """Sweep at least once per sync poll interval, so a problem is told within one interval."""
    poll = float(settings.sync_poll_seconds or MAX_INTERVAL)
    return max(1.0, min(poll, MAX_INTERVAL))


def _leading(core: Core) -> bool:
    scheduler = core.services.scheduler
    return isinstance(scheduler, ClinicScheduler) and scheduler.is_leader


def setup_alarm_alerts(app: web.Application, settings: Settings) -> str | None:
    """Start the alarm loop with the server; it sends only while this process leads the scheduler."""
    if not settings.scheduler_enabled:
        return "CLINICBOT_SCHEDULER is off: the process that runs the scheduler sends alarms"

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        core = app[CORE]
        worker = AlarmWorker(core, lambda: chat_notifier(core), interval=alarm_interval(settings),
                             leading=lambda: _leading(core))
        core.services.alarm_worker = worker
        core.services.alarms_wake = worker.wake
        await worker.start()
        yield
        await worker.stop()
        core.services.alarms_wake = None
        core.services.alarm_worker = None

    app.cleanup_ctx.append(lifecycle)
    return None
