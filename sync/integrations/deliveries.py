"""The webhook replay memory: every accepted delivery's key, persisted and bounded per connection.

Square and Acuity sign no timestamp, so a captured delivery could be replayed forever; remembering
its platform event id (or the body's hash where there is none) stops that, across restarts. A
unique key per (integration, connection, key) makes the check and the insert one atomic step, so
two copies arriving at once cannot both pass. Each connection keeps its newest `KEEP` keys; the
trim runs now and then in the same small transaction, so the table never grows without bound.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from sync.runtime.core import Core
from sync.store.model import WebhookDelivery

__all__ = ["KEEP", "body_key", "first_delivery"]

#: Keys kept per connection: far more than any platform retries within its retry period.
KEEP = 5000
#: Look at the size (and trim to KEEP) when a delivery's row id is a multiple of this: about once every
#: TRIM_SLACK deliveries, so a connection holds about KEEP + TRIM_SLACK rows at most.
TRIM_SLACK = 500


def body_key(body: bytes) -> str:
    """The key of a delivery without an event id: its body's SHA-256."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


async def first_delivery(core: Core, integration: str, connection_id: int, key: str) -> bool:
    """Store `key`; True when it is new, False when this connection saw it before."""
    key = key if len(key) <= 128 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    try:
        async with core.store.session() as s:
            row = WebhookDelivery(integration=integration, connection_id=connection_id, key=key, seen_at=core.clock())
            s.add(row)
            await s.flush()
            if row.id % TRIM_SLACK:
                return True  # the trim runs once every TRIM_SLACK deliveries, not on every one
            count = await s.scalar(select(func.count()).select_from(WebhookDelivery)
                                   .where(WebhookDelivery.connection_id == connection_id))
            if (count or 0) > KEEP:
                keep = (select(WebhookDelivery.id).where(WebhookDelivery.connection_id == connection_id)
                        .order_by(WebhookDelivery.id.desc()).limit(KEEP).scalar_subquery())
                await s.execute(delete(WebhookDelivery).where(
                    WebhookDelivery.connection_id == connection_id, WebhookDelivery.id.not_in(keep)))
    except IntegrityError:
        return False
    return True
