"""Webhook health for doctor: subscriptions by state, the last delivery, and subscriptions at an old URL."""

from __future__ import annotations

from datetime import timedelta

from sync.integrations.deliveries import delivery_memory, first_delivery
from sync.runtime.core import Core
from sync.services.status import webhook_health
from sync.store.model import Connection, WebhookSubscription


async def test_health_names_old_urls_and_the_last_delivery(core: Core) -> None:
    core.settings = core.settings.model_copy(update={"public_url": "https://clinic.example.org"})
    async with core.store.session() as s:
        conn = Connection(practice_id=1, provider="square", account="M1")
        s.add(conn)
        await s.flush()
        for n, (url, status) in enumerate([(f"https://clinic.example.org/webhooks/square/{conn.id}", "active"),
                                            (f"https://old.example.org/webhooks/square/{conn.id}", "active"),
                                            ("https://gone.example.org/x", "failed")]):
            s.add(WebhookSubscription(connection_id=conn.id, provider="square", remote_id=f"sub{n}", resource_id=url,
                                      secret="k", expires_at=core.clock() + timedelta(days=1), status=status))
        conn_id = conn.id
    (before,) = await webhook_health(core)
    assert (before.active, before.inactive, before.last_delivery_at) == (2, 1, None)
    assert before.stale_urls == (f"https://old.example.org/webhooks/square/{conn_id}",)
    assert await first_delivery(core, "square", conn_id, "event:1")
    await delivery_memory(core).flush()
    (after,) = await webhook_health(core)
    assert after.last_delivery_at is not None


async def test_every_booking_connection_is_listed_and_refusals_are_counted(core: Core) -> None:
    """A booking connection without a subscription says it is polled only; refusals show, replays do not."""
    async with core.store.session() as s:
        polled = Connection(practice_id=1, provider="acuity", account="A1")
        calendar = Connection(practice_id=1, provider="ics", account="feed")
        hooked = Connection(practice_id=1, provider="square", account="M1")
        s.add_all([polled, calendar, hooked])
        await s.flush()
        s.add(WebhookSubscription(connection_id=hooked.id, provider="square", remote_id="sub1", resource_id="u",
                                  secret="k", expires_at=core.clock() + timedelta(days=1), status="active"))
        polled_id, hooked_id = polled.id, hooked.id
    memory = delivery_memory(core)
    assert await first_delivery(core, "square", hooked_id, "event:1")
    memory.note_rejected("square", hooked_id, 401)
    memory.note_rejected("square", hooked_id, 400)
    await memory.flush()
    assert not await first_delivery(core, "square", hooked_id, "event:1")  # a replay: not a failure
    health = {h.connection_id: h for h in await webhook_health(core)}
    assert set(health) == {polled_id, hooked_id}  # the ICS feed has no webhooks to speak of
    assert health[polled_id].polling_only and health[polled_id].summary == "none: polled"
    square = health[hooked_id]
    assert (square.failures_24h, square.last_failure_status, square.states) == (2, 400, (("active", 1),))
    assert square.last_delivery_at is not None and "2 refused in 24 h (last HTTP 400)" in square.summary
    # Refusal rows never refuse a real delivery after a restart.
    await memory.stop()
    core.services.deliveries = None
    assert await first_delivery(core, "square", hooked_id, "event:2")
