"""Change events: every accepted change to an appointment emits exactly one domain event.

Subscribers (mirror pushes through the outbox, reminder rescheduling, practitioner DMs, staff
notices) register on an `EventBus`. Events are dispatched inside the transaction that made the
change, so a subscriber's own writes (outbox rows, ledger rows) commit or roll back with it; a
subscriber that talks to the outside world must only enqueue work, never send directly.
Subscribers are idempotent on (appointment id, version).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["AppointmentEvent", "EventBus", "EventKind", "Subscriber"]

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


class EventBus:
    """In-process, transactional fan-out of appointment events."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[str, Subscriber]] = []

    def subscribe(self, name: str, subscriber: Subscriber) -> None:
        if any(n == name for n, _ in self._subscribers):
            raise ValueError(f"subscriber {name!r} is already registered")
        self._subscribers.append((name, subscriber))

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self._subscribers]

    async def emit(self, session: AsyncSession, event: AppointmentEvent) -> None:
        """Run every subscriber in the caller's transaction; any failure rolls the change back."""
        for name, subscriber in self._subscribers:
            log.debug("dispatch", extra={"subscriber": name, "event": event.kind, "appointment": event.appointment_id})
            await subscriber(session, event)
