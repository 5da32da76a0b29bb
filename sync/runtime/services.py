"""The typed container of a Core's late-bound collaborators, replacing a dict of string keys.

Whoever starts a collaborator (the server, the sync worker, a test, an embedder) sets its field;
whoever needs one reads the field, so a misspelt name is a type error, not a silent miss. Fields
hold runtime-level types or protocols: the collaborators of higher layers (the scheduler, the
conflict-notice worker) are typed by what the runtime asks of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sync.contract import CalendarProvider
from sync.contract.leads import LeadInput, LeadOutcome
from sync.runtime.notifier import Notifier
from sync.runtime.syncqueue import Runner, SyncQueue
from sync.store.model import Calendar, Connection

__all__ = ["ActorCacheLike", "ConnectUrl", "DeliveryLog", "FaultInjector", "LeadIntake", "ProviderFactory", "Services",
           "Stoppable"]

#: Opens a provider for one calendar instead of its adapter (tests, embedders).
ProviderFactory = Callable[[Connection, Calendar], CalendarProvider]
#: Called with a checkpoint's name between two outbox steps; tests raise there to simulate a crash.
FaultInjector = Callable[[str], None]
#: (connection id, integration name, submission) -> what the lead intake did with it.
LeadIntake = Callable[[int, str, LeadInput], Awaitable[LeadOutcome]]
#: (core, provider, practice id, chat identity id, practitioner id) -> a single-use sign-in URL.
ConnectUrl = Callable[[Any, str, int, int, int | None], Awaitable[str]]


class ActorCacheLike(Protocol):
    """A front end's cache of who is who, emptied when a role changes."""

    def forget_all(self) -> None: ...


class DeliveryLog(Protocol):
    """The webhook replay memory (sync.integrations.deliveries): keys checked in memory, written in batches."""

    async def flush(self) -> None: ...

    async def stop(self) -> None: ...


class Stoppable(Protocol):
    """A background loop started with the server (the reminder scheduler, the conflict-notice worker)."""

    async def stop(self) -> None: ...


@dataclass(eq=False, slots=True)
class Services:
    #: The queue every requested sync goes through, and the function it runs per connection.
    sync_queue: SyncQueue | None = None
    sync_runner: Runner | None = None
    #: The webhook replay memory, made on the first delivery; stopped (its keys written) by Core.close.
    deliveries: DeliveryLog | None = None
    #: Each connection's webhook channels as last read (sync.integrations.push_channels.ChannelCache).
    webhook_channels: Any = None
    #: This process's per-connection sync locks (SQLite; PostgreSQL uses advisory locks).
    sync_locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    #: This process's per-connection token-refresh locks (SQLite; PostgreSQL uses advisory locks).
    credential_locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    #: Where reminders, agendas and notices go; the chat notifier unless a test installed another.
    notifier: Notifier | None = None
    #: The chat notifier (Slack and Teams senders), and the platform notifiers by platform name.
    chat_notifier: Notifier | None = None
    notifiers: dict[str, Notifier] = field(default_factory=dict)
    #: Wakes the conflict-notice delivery loop after a commit that queued a notice.
    conflict_notices_wake: Callable[[], None] | None = None
    conflict_notice_worker: Stoppable | None = None
    #: Wakes the alarm loop (after a sync that failed), and the loop itself.
    alarms_wake: Callable[[], None] | None = None
    alarm_worker: Stoppable | None = None
    scheduler: Stoppable | None = None
    #: Takes verified form submissions as leads (sync.notify.leads, registered when the Core opens).
    lead_intake: LeadIntake | None = None
    #: Sends new leads' staff cards after the form's answer (sync.notify.leads.CardSender); stopped by Core.close.
    lead_cards: Stoppable | None = None
    #: When each connection's account was last looked up in vain for an app-wide delivery
    #: (sync.integrations.app_webhooks.settle_accounts): deliveries retry it only now and then.
    account_lookups: dict[int, datetime] = field(default_factory=dict)
    #: Test and embedder hooks.
    provider_factory: ProviderFactory | None = None
    http_transport: Any = None
    fault_injector: FaultInjector | None = None
    connect_url: ConnectUrl | None = None
    #: Front ends' caches of chat people, emptied on a role change from any front end.
    actor_caches: list[ActorCacheLike] = field(default_factory=list)
