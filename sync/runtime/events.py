"""Change events: every accepted change to an appointment emits exactly one domain event.

Subscribers (mirror pushes through the outbox, reminder rescheduling, practitioner DMs, staff
notices) register on an `EventBus`. Events are dispatched inside the transaction that made the
change, so a subscriber's own writes (outbox rows, ledger rows) commit or roll back with it; a
subscriber that talks to the outside world must only enqueue work, never send directly.
Subscribers are idempotent on (appointment id, version).

A change that makes many events at once (a sync page: up to 500 imports) hands them over with
`emit_many`. A subscriber registered with `subscribe_batch` gets the whole batch in one call, so it
asks its questions ("does this practice log to a CRM?", "does this practitioner work by shifts?")
once per batch, not once per appointment: a 10,000-item import must not cost 10,000 queries per
subscriber. A plain `subscribe`r still gets the events one by one. Each subscriber sees the batch's
events in order; subscribers run one after another, each over the whole batch (they share no state).
A sync applying many pages in one transaction opens `answers_per_sync`: what no page changes (a
practice's settings, its CRM connections) is kept in `sync_memo` and asked once per sync.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["AppointmentEvent", "BatchSubscriber", "EventBus", "EventKind", "Subscriber", "answers_per_sync",
           "sync_memo"]

log = logging.getLogger("clinicbot.events")

EventKind = Literal["created", "updated", "rescheduled", "cancelled", "no_show", "completed"]


@dataclass(frozen=True, slots=True)
class AppointmentEvent:
    kind: EventKind
    appointment_id: int
    version: int
    practice_id: int
    practitioner_id: int | None
    actor: str
    #: Changed fields before and after (values, not scrubbed: subscribers stay in-process).
    before: dict[str, object] = field(default_factory=dict)
    after: dict[str, object] = field(default_factory=dict)
    #: The calendar the change came from, when it came from a sync (so it is not echoed back).
    origin_calendar_id: int | None = None
    at: datetime | None = None

    @property
    def dedupe_key(self) -> str:
        return f"{self.appointment_id}:{self.version}:{self.kind}"


Subscriber = Callable[[AsyncSession, AppointmentEvent], Awaitable[None]]
BatchSubscriber = Callable[[AsyncSession, Sequence[AppointmentEvent]], Awaitable[None]]


def _one_by_one(subscriber: Subscriber) -> BatchSubscriber:
    async def each(session: AsyncSession, events: Sequence[AppointmentEvent]) -> None:
        for event in events:
            await subscriber(session, event)

    return each


class EventBus:
    """In-process, transactional fan-out of appointment events."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[str, BatchSubscriber]] = []

    def subscribe(self, name: str, subscriber: Subscriber) -> None:
        """Register a subscriber that takes one event per call."""
        self.subscribe_batch(name, _one_by_one(subscriber))

    def subscribe_batch(self, name: str, subscriber: BatchSubscriber) -> None:
        """Register a subscriber that takes a batch of events (in order) per call."""
        if any(n == name for n, _ in self._subscribers):
            raise ValueError(f"subscriber {name!r} is already registered")
        self._subscribers.append((name, subscriber))

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self._subscribers]

    async def emit(self, session: AsyncSession, event: AppointmentEvent) -> None:
        """Run every subscriber in the caller's transaction; any failure rolls the change back."""
        await self.emit_many(session, (event,))

    async def emit_many(self, session: AsyncSession, events: Sequence[AppointmentEvent]) -> None:
        """`emit` for several events of one transaction: each subscriber gets them in one call."""
        if not events:
            return
        for name, subscriber in self._subscribers:
            log.debug("dispatch", extra={"subscriber": name, "events": len(events), "event": events[0].kind,
                                         "appointment": events[0].appointment_id})
            await subscriber(session, events)


_SYNC_MEMO = "clinicbot.events.sync_memo"


@contextmanager
def answers_per_sync(session: AsyncSession) -> Iterator[None]:
    """While a sync applies its pages in `session`'s one transaction, what subscribers (and the
    engine) ask of every batch and the sync itself never changes (a practice's notice settings,
    its CRM connections, its locations) is asked once per sync, not once per page: `sync_memo`."""
    session.info[_SYNC_MEMO] = {}
    try:
        yield
    finally:
        session.info.pop(_SYNC_MEMO, None)


def sync_memo(session: AsyncSession) -> dict[Any, Any]:
    """The memo of the sync applying in `session` (`answers_per_sync`); outside one, a fresh dict
    each time, so nothing is remembered beyond the batch."""
    memo: dict[Any, Any] | None = session.info.get(_SYNC_MEMO)
    return memo if memo is not None else {}
