"""The scheduler component: plans reminders in every process, runs the scheduler in the leader."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from bot.keys import CORE
from sync.integrations.push import RENEW_EVERY_SECONDS, renew_push
from sync.jobs.audit_checkpoints import checkpoint_job
from sync.jobs.scheduler import ClinicScheduler
from sync.notify.client_reminders import send_job
from sync.notify.clients import SEND_EVERY_SECONDS
from sync.notify.crm import LOG_EVERY_SECONDS, log_job
from sync.notify.lead_forms import POLL_EVERY_SECONDS, poll_forms_job
from sync.notify.leads import RESEND_EVERY_SECONDS, resend_cards
from sync.runtime.settings import Settings
from sync.services.attachments import PURGE_EVERY_SECONDS, purge_job
from sync.services.removals import RETRY_EVERY_SECONDS, retry_removals
from sync.services.shift_sources import pull_feeds_job
from sync.services.shifts import (
    PUBLISH_EVERY_SECONDS,
    SECOND_WRITER_EVERY_SECONDS,
    publish_pending_job,
    second_writer_job,
)

__all__ = ["SCHEDULER", "setup_scheduler"]

log = logging.getLogger("clinicbot.scheduler")

SCHEDULER = "scheduler"  # key in Core.services


def setup_scheduler(app: web.Application, settings: Settings) -> str | None:
    """Subscribe the reminder planner to appointment events; start/stop the scheduler with the app."""
    # APScheduler logs every add/remove at INFO; the dispatcher re-arms its job after each run.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)
    core = app[CORE]
    scheduler = ClinicScheduler(core, grace=timedelta(seconds=settings.reminder_grace_seconds))
    core.services.scheduler = scheduler

    scheduler.add_periodic("push.renew", RENEW_EVERY_SECONDS, renew_push)
    scheduler.add_periodic("connections.removals", RETRY_EVERY_SECONDS, retry_removals)
    scheduler.add_periodic("shifts.feeds", PUBLISH_EVERY_SECONDS, pull_feeds_job)
    scheduler.add_periodic("shifts.publish", PUBLISH_EVERY_SECONDS, publish_pending_job)
    scheduler.add_periodic("shifts.second_writers", SECOND_WRITER_EVERY_SECONDS, second_writer_job)
    scheduler.add_periodic("clients.send", SEND_EVERY_SECONDS, send_job)
    scheduler.add_periodic("attachments.purge", PURGE_EVERY_SECONDS, purge_job)
    scheduler.add_periodic("crm.log", LOG_EVERY_SECONDS, log_job)
    scheduler.add_periodic("leads.cards", RESEND_EVERY_SECONDS, resend_cards)
    scheduler.add_periodic("leads.forms", POLL_EVERY_SECONDS, poll_forms_job)

    scheduler.add_periodic("audit.checkpoint", settings.audit_checkpoint_seconds, checkpoint_job)
    # Every process plans (any replica may reschedule); only the leader sends.
    if "reminders" not in core.bus.names:  # one core may serve several apps (tests, embedders)
        core.bus.subscribe_batch("reminders", scheduler.subscriber.batch)  # a sync page replans at once
    if not settings.scheduler_enabled:
        return "CLINICBOT_SCHEDULER is off: this process plans reminders, another one must send them"

    async def _run(app: web.Application) -> AsyncIterator[None]:
        await scheduler.start()
        yield
        await scheduler.stop()

    app.cleanup_ctx.append(_run)
    return None
