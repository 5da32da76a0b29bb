"""A practice with one practitioner in Europe/Berlin, a controllable clock, a recording notifier
and a dispatcher driven the way the scheduler drives it (woken at each next due time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sync.notify.reminders import Dispatcher, ReminderSubscriber
from sync.runtime.core import Core
from sync.runtime.events import AppointmentEvent
from sync.runtime.notifier import DeliveryError, Notification
from sync.services.practices import add_practitioner, create_practice
from sync.store.model import Appointment


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class TimedNotifier:
    """Records (clock time, notification); can be told to fail the next N sends."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[tuple[datetime, Notification]] = []
        self.fail_next = 0

    async def notify(self, notification: Notification) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise DeliveryError("platform said 503")
        self.sent.append((self.clock(), notification))


@dataclass
class World:
    core: Core
    clock: FakeClock
    notifier: TimedNotifier
    dispatcher: Dispatcher
    practice_id: int
    practitioner_id: int
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Berlin"))

    def local(self, text: str) -> datetime:
        """'2025-03-30 09:00' in the practitioner's zone, as an aware datetime."""
        return datetime.fromisoformat(text).replace(tzinfo=self.zone)

    async def book(self, start: str, minutes: int = 30, **fields: object) -> int:
        begin = self.local(start)
        async with self.core.store.session() as s:
            appt = Appointment(
                practice_id=self.practice_id,
                practitioner_id=self.practitioner_id,
                start=begin,
                end=begin + timedelta(minutes=minutes),
                tzid=str(self.zone),
                status="confirmed",
                version=1,
                title="Check-up",
                **fields,
            )
            s.add(appt)
            await s.flush()
            await self.core.bus.emit(
                s,
                AppointmentEvent(
                    kind="created",
                    appointment_id=appt.id,
                    version=1,
                    practice_id=self.practice_id,
                    practitioner_id=self.practitioner_id,
                    actor="test",
                ),
            )
            return appt.id

    async def run_until(self, until: datetime) -> None:
        """Advance the clock from due time to due time, dispatching at each, then to `until`."""
        for _ in range(10_000):
            nxt = await self.dispatcher.next_due()
            if nxt is None or nxt > until:
                break
            self.clock.now = max(self.clock.now, nxt)
            await self.dispatcher.run_due()
        self.clock.now = max(self.clock.now, until)

    def sends(self, kind: str = "reminder") -> list[tuple[datetime, Notification]]:
        return [(t, n) for t, n in self.notifier.sent if n.kind == kind]


@pytest.fixture
async def world(core: Core) -> World:
    clock = FakeClock(datetime(2025, 3, 20, 12, 0, tzinfo=UTC))
    core.clock = clock
    notifier = TimedNotifier(clock)
    core.services.notifier = notifier
    core.bus.subscribe("reminders", ReminderSubscriber(clock))
    dispatcher = Dispatcher(
        core.store,
        lambda: core.services.notifier,
        clock,
        grace=timedelta(minutes=15),
        backoff=timedelta(seconds=30),
    )
    async with core.store.session() as s:
        practice = await create_practice(s, "Clinic", "Europe/Berlin", "test")
        person = await add_practitioner(s, practice, "Dr Lee", email=None, tz="Europe/Berlin", actor="test")
        # No quiet hours and no follow-ups unless a test asks: keeps the expected sends plain.
        person.reminder_prefs = {
            "quiet_start": None,
            "quiet_end": None,
            "followups": False,
            "agenda_time": None,
        }
    return World(core, clock, notifier, dispatcher, practice.id, person.id)
