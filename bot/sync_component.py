"""Mount the sync worker (outbox, polling, webhook-requested syncs) in the server's lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bot.keys import CORE
from sync.jobs.worker import SyncWorker
from sync.runtime.settings import Settings

__all__ = ["setup_sync"]


def setup_sync(app: web.Application, settings: Settings) -> str | None:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        worker = SyncWorker(app[CORE])
        await worker.start()
        yield
        await worker.stop()

    app.cleanup_ctx.append(lifecycle)
    return None
