"""The event bus: per-event and batch subscribers both see every event, in order, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from sync.runtime.events import AppointmentEvent, EventBus


def _event(appointment_id: int) -> AppointmentEvent:
    return AppointmentEvent("created", appointment_id, 1, practice_id=1, practitioner_id=None, actor="test")


async def test_a_batch_reaches_batch_subscribers_whole_and_the_others_one_by_one() -> None:
    bus = EventBus()
    calls: list[tuple[str, list[int]]] = []

    async def one(_session: Any, event: AppointmentEvent) -> None:
        calls.append(("one", [event.appointment_id]))

    async def many(_session: Any, events: Sequence[AppointmentEvent]) -> None:
        calls.append(("many", [e.appointment_id for e in events]))

    bus.subscribe("one", one)
    bus.subscribe_batch("many", many)
    session: Any = object()
    await bus.emit_many(session, [_event(1), _event(2), _event(3)])
    await bus.emit(session, _event(4))
    await bus.emit_many(session, [])  # nothing changed: nobody is called
    assert calls == [("one", [1]), ("one", [2]), ("one", [3]), ("many", [1, 2, 3]), ("one", [4]), ("many", [4])]
    with pytest.raises(ValueError, match="already registered"):
        bus.subscribe_batch("one", many)


async def test_a_failing_subscriber_fails_the_emit() -> None:
    bus = EventBus()

    async def broken(_session: Any, _events: Sequence[AppointmentEvent]) -> None:
        raise RuntimeError("subscriber failed")

    bus.subscribe_batch("broken", broken)
    with pytest.raises(RuntimeError, match="subscriber failed"):
        await bus.emit_many(object(), [_event(1)])  # type: ignore[arg-type]
