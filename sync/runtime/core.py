"""The sync core's context object: what every service function needs, built once per process.

`sync.boot.open_core` builds one with its domain subscribers registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sync.runtime.events import EventBus
from sync.runtime.services import Services
from sync.runtime.settings import Settings
from sync.store.database import Store
from sync.store.model import utcnow

__all__ = ["Core"]


@dataclass
class Core:
    settings: Settings
    store: Store
    bus: EventBus = field(default_factory=EventBus)
    clock: Callable[[], datetime] = utcnow
    #: Late-bound collaborators (sync queue, notifier, scheduler, test hooks ...), typed.
    services: Services = field(default_factory=Services)

    async def close(self) -> None:
        """Write what must outlive the process (accepted webhook deliveries), then close the database."""
        cards, self.services.lead_cards = self.services.lead_cards, None
        if cards is not None:  # staff cards still going out (they need the database)
            await cards.stop()
        channels = self.services.webhook_channels
        if channels is not None:  # first: its reads ahead use the replay memory
            await channels.close()
        deliveries, self.services.deliveries = self.services.deliveries, None
        if deliveries is not None:
            await deliveries.stop()
        await self.store.dispose()

