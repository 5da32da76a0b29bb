"""Square's webhooks: the signature exactly as Square defines it, and the subscriptions clinicbot manages.

`x-square-hmacsha256-signature` is base64(HMAC-SHA256(signature key, notification URL + raw body)),
compared in constant time. The URL is the one the subscription was made with, byte for byte, so it
is kept with the channel (its resource id). Square signs no timestamp: a replay is recognised by
its `event_id` in the connection's persisted replay memory and refused. A delivery only says to
look: it requests a sync of the connection, which reads the booking from the API.

Subscriptions are made per booking calendar through the Webhook Subscriptions API when the
connection syncs (push channels), with booking.created and booking.updated (Square's cancel is an
update); they do not expire, so the renewal job only checks that each still exists and is enabled,
and makes a new one when Square disabled or lost it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from datetime import timedelta

from adapters.kit.webhooks import posted_channels
from adapters.square.client import PROVIDER, SquareClient
from adapters.square.settings import SQUARE_VERSION, square_settings
from sync.contract import BadPayload, CalendarProvider, NotFound, Refused
from sync.contract.booking import BookingCalendar
from sync.contract.integration import (
    Channel,
    ChannelDesk,
    ChannelOpened,
    HostSettings,
    WebhookAnswer,
    WebhookRequest,
)

__all__ = ["EVENT_TYPES", "SIGNATURE_HEADER", "SquarePush", "SquareWebhooks", "sign", "verify_signature"]

log = logging.getLogger("clinicbot.square")
SIGNATURE_HEADER = "x-square-hmacsha256-signature"
EVENT_TYPES = ("booking.created", "booking.updated")
#: How often the renewal job checks a subscription is still there (Square's do not expire).
CHECK_EVERY = timedelta(days=7)


def sign(body: bytes, key: str, url: str) -> str:
    """Square's signature of a delivery: base64 HMAC-SHA256 over the notification URL plus the body."""
    digest = hmac.new(key.encode("utf-8"), url.encode("utf-8") + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(body: bytes, header: str, key: str, url: str) -> bool:
    """True when `header` is Square's signature of `body` sent to `url`; empty key or URL is a setup error."""
    if not key or not url:
        raise ValueError("a Square signature check needs the signature key and the notification URL")
    if not body or not header:
        return False
    return hmac.compare_digest(sign(body, key, url).encode("ascii"), header.strip().encode("ascii", "replace"))


class SquareWebhooks:
    """Square's signed-webhook capability: verify against the connection's subscriptions, dedupe, request a sync."""

    max_body = 256 * 1024

    async def handle(self, request: WebhookRequest, desk: ChannelDesk) -> WebhookAnswer:
        channels = await posted_channels(request, desk)
        if isinstance(channels, WebhookAnswer):
            return channels
        header = request.headers.get(SIGNATURE_HEADER, "")
        channel = next((c for c in channels if c.resource_id and c.secret
                        and verify_signature(request.body, header, c.secret, c.resource_id)), None)
        if channel is None:
            log.warning("square webhook with a bad signature", extra={"connection": desk.connection_id})
            return WebhookAnswer(401, "bad signature")
        try:
            event = json.loads(request.body)
        except ValueError:
            return WebhookAnswer(400, "body is not JSON")
        if not isinstance(event, dict):
            return WebhookAnswer(400, "body is not a JSON object")
        event_id = event.get("event_id")
        # Square sends every event to each subscription (one per booking calendar): each subscription's
        # delivery is accepted once (the syncs they request coalesce); a second copy to one is a replay.
        key = f"event:{event_id}:{channel.remote_id}" if isinstance(event_id, str) and event_id else \
            "sha256:" + hashlib.sha256(request.body).hexdigest()
        if not await desk.first_delivery(key):
            log.info("square webhook replayed", extra={"connection": desk.connection_id})
            return WebhookAnswer(401, "replayed delivery")
        kind = str(event.get("type") or "")
        if kind.startswith("booking."):
            await desk.sync(channel, kind)
        return WebhookAnswer(200, "ok")


def _client(provider: CalendarProvider) -> SquareClient:
    if not isinstance(provider, BookingCalendar) or not isinstance(getattr(provider.source, "client", None),
                                                                   SquareClient):
        raise Refused("square push needs a Square booking calendar", provider=PROVIDER)
    client: SquareClient = provider.source.client  # type: ignore[attr-defined]
    return client


class SquarePush:
    """Square's webhook subscriptions as push channels: made with the notification URL, checked, deleted."""

    renew_margin = timedelta(days=1)

    def api_url(self, host: HostSettings) -> str:
        return square_settings(host).square_api_url

    async def open(self, provider: CalendarProvider, url: str, current: Channel | None) -> ChannelOpened:
        from datetime import UTC, datetime

        client = _client(provider)
        now = datetime.now(UTC)
        if current is not None and current.resource_id == url:
            try:
                body = await client.request("GET", f"/v2/webhooks/subscriptions/{current.remote_id}")
                sub = body.get("subscription") or {}
                if sub.get("enabled") and sub.get("notification_url") == current.resource_id:
                    kept = Channel(current.remote_id, current.resource_id, current.secret, now + CHECK_EVERY,
                                   current.calendar_remote_id)
                    return ChannelOpened(kept, renewed=True, in_place=True)
            except NotFound:
                pass
        payload = {"idempotency_key": secrets.token_hex(16), "subscription": {
            "name": "clinicbot bookings", "enabled": True, "event_types": list(EVENT_TYPES),
            "notification_url": url, "api_version": SQUARE_VERSION}}
        body = await client.request("POST", "/v2/webhooks/subscriptions", json=payload)
        sub = body.get("subscription") or {}
        sub_id, key = sub.get("id"), sub.get("signature_key")
        if not isinstance(sub_id, str) or not isinstance(key, str) or not sub_id or not key:
            raise BadPayload("square: the new subscription has no id or signature key", provider=PROVIDER)
        channel = Channel(sub_id, str(sub.get("notification_url") or url), key, now + CHECK_EVERY,
                          provider.staff_id if isinstance(provider, BookingCalendar) else "")
        return ChannelOpened(channel, renewed=current is not None, retire=current)

    async def stop(self, provider: CalendarProvider, channel: Channel) -> None:
        try:
            await _client(provider).request("DELETE", f"/v2/webhooks/subscriptions/{channel.remote_id}")
        except NotFound:
            return
