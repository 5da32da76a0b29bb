"""Graph change-notification subscriptions: create, renew, delete, and the webhook handler.

- Each mailbox calendar gets a subscription on its events with a random clientState (256 bits),
  stored encrypted in WebhookSubscription.secret and compared in constant time.
- Outlook event subscriptions live at most 10080 minutes; we ask for a little less and renew
  `RENEW_MARGIN` before expiry. A renewal that finds the subscription gone (404) makes a new one.
- `handle_notification` serves /webhooks/graph/{connection_id} (as plain data, through the core's one
  webhook route and its ChannelDesk): it answers the validationToken
  handshake, checks every notification (known subscription of that connection, right clientState)
  before acting on any, then queues a delta sync and answers 202, well inside Graph's 3 s.
  Lifecycle notifications (reauthorizationRequired, subscriptionRemoved, missed) are queued the same
  way with their event as the reason; the engine renews or re-subscribes and runs the delta sync.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.graph.client import GraphClient
from adapters.graph.errors import PROVIDER
from adapters.graph.provider import GraphCalendar
from adapters.graph.settings import graph_settings
from sync.contract import BadPayload, CalendarProvider, NotFound, Refused
from sync.contract.integration import (
    Channel,
    ChannelDesk,
    ChannelOpened,
    HostSettings,
    WebhookAnswer,
    WebhookRequest,
)

__all__ = [
    "LIFECYCLE_EVENTS",
    "GraphPush",
    "GraphWebhooks",
    "SubscriptionManager",
    "SubscriptionRecord",
    "handle_notification",
]

log = logging.getLogger("clinicbot.graph.webhooks")

#: Outlook event subscriptions live at most 10080 minutes; ask for an hour less.
LIFETIME = timedelta(minutes=10080 - 60)
RENEW_MARGIN = timedelta(hours=12)
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
MAX_BODY = 1024 * 1024
#: What handle_notification may spend on queueing before it answers (Graph wants 202 within 3 s).
QUEUE_BUDGET = 2.0
_FRACTION = re.compile(r"\.([0-9]+)")


@dataclass(frozen=True)
class SubscriptionRecord:
    """A subscription as Graph confirmed it; the caller stores it as a WebhookSubscription row."""

    remote_id: str
    resource: str
    client_state: str
    expires_at: datetime


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _parse_expiry(text: Any) -> datetime:
    cleaned = _FRACTION.sub(lambda m: "." + m.group(1)[:6], str(text)).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise BadPayload(f"{PROVIDER}: unreadable subscription expiry", provider=PROVIDER) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def events_resource(calendar_path: str) -> str:
    """The subscription resource for a calendar path: "me/calendar" -> "me/events"."""
    if calendar_path.endswith("/calendar"):
        return calendar_path.removesuffix("/calendar") + "/events"
    return f"{calendar_path}/events"


class SubscriptionManager:
    """Subscribe, renew and unsubscribe the calendars of one connection."""

    def __init__(self, client: GraphClient, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.client = client
        self._now = now

    async def subscribe(self, calendar_path: str, notification_url: str) -> SubscriptionRecord:
        """Create a subscription; Graph validates notification_url before it answers."""
        client_state = secrets.token_urlsafe(32)
        body = {
            "changeType": "created,updated,deleted",
            "notificationUrl": notification_url,
            "lifecycleNotificationUrl": notification_url,
            "resource": events_resource(calendar_path),
            "expirationDateTime": _iso(self._now() + LIFETIME),
            "clientState": client_state,
        }
        answer = await self.client.json("POST", "/subscriptions", json=body, creating=True)
        if not isinstance(answer.get("id"), str):
            raise BadPayload(f"{PROVIDER}: subscription answer without an id", provider=PROVIDER)
        return SubscriptionRecord(
            answer["id"], body["resource"], client_state, _parse_expiry(answer.get("expirationDateTime"))
        )

    async def renew(self, record: SubscriptionRecord) -> SubscriptionRecord:
        """Extend the subscription's life; NotFound when Graph no longer has it."""
        body = {"expirationDateTime": _iso(self._now() + LIFETIME)}
        answer = await self.client.json("PATCH", f"/subscriptions/{record.remote_id}", json=body)
        return SubscriptionRecord(
            record.remote_id,
            record.resource,
            record.client_state,
            _parse_expiry(answer.get("expirationDateTime")),
        )

    async def ensure(
        self, record: SubscriptionRecord | None, calendar_path: str, notification_url: str
    ) -> SubscriptionRecord:
        """The renewal job's step: renew when due, re-subscribe when missing or gone."""
        if record is None:
            return await self.subscribe(calendar_path, notification_url)
        if record.expires_at - self._now() > RENEW_MARGIN:
            return record
        try:
            return await self.renew(record)
        except NotFound:
            log.info("graph subscription gone; subscribing again")
            return await self.subscribe(calendar_path, notification_url)

    async def unsubscribe(self, remote_id: str) -> None:
        """Delete a subscription; one that is already gone is fine."""
        try:
            await self.client.request("DELETE", f"/subscriptions/{remote_id}")
        except NotFound:
            pass


def _reject(status: int, why: str) -> WebhookAnswer:
    log.warning("graph notification rejected", extra={"why": why, "status": status})
    return WebhookAnswer(status, json.dumps({"error": why}), "application/json")


async def handle_notification(request: WebhookRequest, desk: ChannelDesk) -> WebhookAnswer:
    """Serve a Graph webhook POST: validation handshake, or verified notifications -> queued delta syncs."""
    token = request.query.get("validationToken")
    if token is not None:
        if not token or len(token) > 2048:
            return _reject(400, "bad validation token")
        # Echoed as given: a browser must not sniff it into HTML.
        return WebhookAnswer(200, token, "text/plain", {"X-Content-Type-Options": "nosniff"})
    if len(request.body) > MAX_BODY:
        return _reject(413, "body too large")
    try:
        payload = json.loads(request.body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # "[[[[..." nested too deep
        return _reject(400, "body is not JSON")
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        return _reject(400, "body has no notifications")
    accepted: list[tuple[Channel, str]] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("subscriptionId"), str):
            return _reject(400, "notification without a subscriptionId")
        reason = item.get("lifecycleEvent") or item.get("changeType")
        if reason not in LIFECYCLE_EVENTS and reason not in CHANGE_TYPES:
            return _reject(400, "notification without a known changeType or lifecycleEvent")
        known = await desk.channel(item["subscriptionId"])
        if known is None:
            return _reject(404, "unknown subscription")
        given = item.get("clientState")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), known.secret.encode()):
            return _reject(403, "clientState mismatch")
        accepted.append((known, str(reason)))
    # One sync per subscription and reason: a burst of notifications is one delta round.
    try:
        await asyncio.wait_for(_queue_all(desk, dict.fromkeys(accepted)), timeout=QUEUE_BUDGET)
    except TimeoutError:
        # Not queued in time: ask Graph to deliver again rather than lose the change.
        return WebhookAnswer(503, headers={"Retry-After": "5"})
    return WebhookAnswer(202)


async def _queue_all(desk: ChannelDesk, jobs: dict[tuple[Channel, str], None]) -> None:
    for channel, reason in jobs:
        if reason == "reauthorizationRequired":
            await desk.renew_soon(channel)
        elif reason == "subscriptionRemoved":
            await desk.forget(channel)
        await desk.sync(channel, reason)


class GraphWebhooks:
    """Graph's signed-webhook capability: the validation handshake, then clientState-checked notifications."""

    max_body = MAX_BODY

    async def handle(self, request: WebhookRequest, desk: ChannelDesk) -> WebhookAnswer:
        return await handle_notification(request, desk)


def _graph_calendar(provider: CalendarProvider) -> GraphCalendar:
    if not isinstance(provider, GraphCalendar):
        raise Refused(f"{PROVIDER}: cannot subscribe to a {type(provider).__name__}", provider=PROVIDER)
    return provider


class GraphPush:
    """Graph's push-channel capability: a renewal extends the subscription; one gone is made again."""

    renew_margin = RENEW_MARGIN

    def api_url(self, host: HostSettings) -> str:
        return graph_settings(host).graph_url

    async def open(self, provider: CalendarProvider, url: str, current: Channel | None) -> ChannelOpened:
        calendar = _graph_calendar(provider)
        manager = SubscriptionManager(calendar.client)
        if current is not None:
            record = SubscriptionRecord(current.remote_id, current.resource_id, current.secret, current.expires_at)
            try:
                renewed = await manager.renew(record)
            except NotFound:
                log.info("graph subscription gone; subscribing again")
            else:
                return ChannelOpened(replace(current, expires_at=renewed.expires_at), renewed=True, in_place=True)
        created = await manager.subscribe(calendar.path, url)
        channel = Channel(created.remote_id, created.resource, created.client_state, created.expires_at,
                          calendar.path)
        return ChannelOpened(channel, renewed=False)

    async def stop(self, provider: CalendarProvider, channel: Channel) -> None:
        await SubscriptionManager(_graph_calendar(provider).client).unsubscribe(channel.remote_id)
