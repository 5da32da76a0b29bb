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
