"""Connecting a signed form endpoint (`signed_form` integrations such as `leadform`).

There is nothing to sign in to and no calendar to find: connecting makes the connection and its
signing secret, stored encrypted as the connection's one webhook channel, and answers the form's
address and the secret once. Sync stays off for it (nothing to read); `rotate` makes a new secret
and retires the old one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from sync.integrations import registry
from sync.integrations.push_channels import forget_channels
from sync.runtime.core import Core
from sync.services.errors import Invalid
from sync.services.practices import the_practice
from sync.store import audit
from sync.store.model import Connection, Practice, WebhookSubscription

__all__ = ["SECRET_BYTES", "SignedForm", "add_signed_form"]

#: The signing secret's random bytes (256 bits).
SECRET_BYTES = 32
#: A form's secret does not expire by itself (the renewal job never touches it).
NEVER = timedelta(days=365 * 100)


@dataclass(frozen=True, slots=True)
class SignedForm:
    """A connected form: where it posts, and its secret (shown once, here; only kept encrypted)."""

    connection_id: int
    url: str
    secret: str


async def add_signed_form(core: Core, integration_name: str, *, actor: str, practice_id: int | None = None,
                          practice_name: str | None = None, label: str = "") -> SignedForm:
    """Make a form connection of `integration_name` for a practice (by id, or by name as the CLI gives it)."""
    integration = registry.get(integration_name)
    if "signed_form" not in integration.connect.kinds or integration.signed_webhooks is None:
        raise Invalid(f"{integration.title} is not a signed form")
    secret = secrets.token_urlsafe(SECRET_BYTES)
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id) if practice_id is not None \
            else await the_practice(s, practice_name)
        if practice is None:
            raise Invalid("that practice no longer exists")
        conn = Connection(practice_id=practice.id, provider=integration.name, account=label[:200] or "web form",
                          config={}, credentials=None, sync_enabled=False, status="active")
        s.add(conn)
        await s.flush()
        s.add(WebhookSubscription(connection_id=conn.id, calendar_id=None, provider=integration.name,
                                  remote_id=f"form-{conn.id}", resource_id="", secret=secret,
                                  expires_at=core.clock() + NEVER, status="active"))
        await audit.record(s, actor=actor, action="connection.add", practice_id=practice.id,
                           details={"connection_id": conn.id, "provider": integration.name, "calendars": 0})
        connection_id = conn.id
    forget_channels(core, [connection_id])
    url = f"{core.settings.base_url().rstrip('/')}/webhooks/{integration.name}/{connection_id}"
    return SignedForm(connection_id, url, secret)


async def form_secret_count(core: Core, connection_id: int) -> int:
    """How many active secrets a form connection has (doctor, tests)."""
    async with core.store.session() as s:
        return len((await s.scalars(select(WebhookSubscription.id).where(
            WebhookSubscription.connection_id == connection_id, WebhookSubscription.status == "active"))).all())
