"""Mount the conflict-notice delivery loop (sync.notify.conflict_notices) in the server's lifecycle.

Conflicts the engine records are sent to staff through the ChatNotifier (Slack and Teams senders)
once the sync transaction that found them commits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bot.keys import CORE
from bot.notify import chat_notifier
from sync.notify.conflict_notices import ConflictNoticeWorker
from sync.runtime.settings import Settings

__all__ = ["WORKER_SERVICE", "setup_conflict_alerts"]

#: core.services key of the running ConflictNoticeWorker.
WORKER_SERVICE = "conflict_notice_worker"


def setup_conflict_alerts(app: web.Application, settings: Settings) -> str | None:
    """Start the delivery loop with the server; never disabled (no settings of its own)."""
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        core = app[CORE]
        worker = ConflictNoticeWorker(core, lambda: chat_notifier(core))
        core.services.conflict_notice_worker = worker
        await worker.start()
        yield
        await worker.stop()
        core.services.conflict_notice_worker = None

    app.cleanup_ctx.append(lifecycle)
    return None
