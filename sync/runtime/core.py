"""The sync core's context object: what every service function needs, built once per process."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sync.runtime.settings import Settings
from sync.store.crypto import install_key, load_or_create_key
from sync.runtime.events import EventBus
from sync.store.model import utcnow
from sync.store.database import Store

__all__ = ["Core", "open_core"]

log = logging.getLogger("clinicbot.core")


@dataclass
class Core:
    settings: Settings
    store: Store
    bus: EventBus = field(default_factory=EventBus)
    clock: Callable[[], datetime] = utcnow
    #: Late-bound collaborators (outbox worker, scheduler, notifier ...), keyed by name.
    services: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        await self.store.dispose()


def open_core(settings: Settings) -> Core:
    """Install the secret key and open the store; no I/O beyond reading/creating the key file."""
    key, where = load_or_create_key(settings.secret_key, settings.secret_key_file, generate=settings.is_sqlite)
    install_key(key)
    log.debug("secret key loaded", extra={"key_source": where})
    store = Store(settings.database_url, settings.database_schema)
    return Core(settings=settings, store=store)
