"""Google push: events.watch channels and the webhook that receives their notifications.

Each channel gets a random secret token. A notification is accepted only when its channel id is
one we opened for that connection, its token matches (constant-time) and its resource id is the
one Google gave us; anything else gets a 4xx and triggers nothing. An accepted "exists" or
"not_exists" notification queues an incremental sync; the first "sync" message only confirms the
channel. Channels are renewed (new channel first, then the old one stopped) before they expire,
and stopped on disconnect.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adapters.google.provider import GoogleCalendar
from adapters.google.settings import google_settings
from sync.contract import BadPayload, CalendarProvider, Refused
from sync.contract.integration import (
    Channel,
    ChannelDesk,
    ChannelOpened,
    HostSettings,
    WebhookAnswer,
    WebhookRequest,
)

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "RENEW_MARGIN",
    "GooglePush",
    "GoogleWebhooks",
    "WatchChannel",
    "handle_notification",
    "needs_renewal",
    "open_channel",
    "renew_channel",
    "stop_channel",
    "webhook_address",
]

log = logging.getLogger("clinicbot.google.push")

#: Google caps a calendar channel at about a week; ask for that and renew a day early.
DEFAULT_TTL_SECONDS = 7 * 24 * 3600
RENEW_MARGIN = timedelta(hours=24)
RESOURCE_STATES = frozenset({"sync", "exists", "not_exists"})


@dataclass(frozen=True, slots=True)
class WatchChannel:
    """One open watch channel, as the core stores it (WebhookSubscription; token encrypted)."""

    channel_id: str
    resource_id: str
    token: str
    calendar_remote_id: str
    expires_at: datetime


def webhook_address(base_url: str, connection_id: int | str) -> str:
    """The address Google POSTs to: the /webhooks/google/{connection_id} route of this server."""
    return f"{base_url.rstrip('/')}/webhooks/google/{connection_id}"


async def open_channel(
    provider: GoogleCalendar, address: str, *, ttl_seconds: int = DEFAULT_TTL_SECONDS
) -> WatchChannel:
    """Open an events.watch channel with a fresh channel id and secret token."""
    channel_id, token = str(uuid.uuid4()), secrets.token_urlsafe(32)
    body = await provider.watch(channel_id, address, token, ttl_seconds)
    try:
        expires_at = datetime.fromtimestamp(int(body["expiration"]) / 1000, UTC)
    except (KeyError, TypeError, ValueError):
        raise BadPayload("google: watch channel without a readable expiration", provider="google") from None
    log.info("google channel opened", extra={"channel_id": channel_id})
    return WatchChannel(channel_id, str(body["resourceId"]), token, provider.calendar_id, expires_at)


async def stop_channel(provider: GoogleCalendar, channel: WatchChannel) -> None:
    """channels.stop (on disconnect or after a renewal)."""
    await provider.stop_watch(channel.channel_id, channel.resource_id)
    log.info("google channel stopped", extra={"channel_id": channel.channel_id})


def needs_renewal(channel: WatchChannel, now: datetime, margin: timedelta = RENEW_MARGIN) -> bool:
    """True when the channel expires within `margin`."""
    return channel.expires_at - margin <= now


async def renew_channel(
    provider: GoogleCalendar, channel: WatchChannel, address: str, *, ttl_seconds: int = DEFAULT_TTL_SECONDS
) -> WatchChannel:
    """Open the replacement first, then stop the old channel, so no change goes unannounced."""
    fresh = await open_channel(provider, address, ttl_seconds=ttl_seconds)
    await stop_channel(provider, channel)
    return fresh


#: ASCII digits only: str.isdigit also accepts "²" and other scripts' digits.
_MESSAGE_NUMBER = re.compile(r"[0-9]{1,20}")


def _reject(status: int, why: str, connection_id: int) -> WebhookAnswer:
    log.warning("google notification rejected", extra={"why": why, "connection_id": connection_id})
    return WebhookAnswer(status, json.dumps({"error": why}), "application/json")


async def handle_notification(request: WebhookRequest, desk: ChannelDesk) -> WebhookAnswer:
    """Check a Google push notification and queue an incremental sync for its calendar.

    The channel must be one the desk knows for this connection, unexpired, with the same token
    and resource id (compared in constant time); the sync is only queued (Google wants the answer fast).
    """
    headers = request.headers
    channel_id = headers.get("x-goog-channel-id", "")
    token = headers.get("x-goog-channel-token", "")
    resource_id = headers.get("x-goog-resource-id", "")
    state = headers.get("x-goog-resource-state", "")
    number = headers.get("x-goog-message-number", "")
    if not channel_id or len(channel_id) > 200 or state not in RESOURCE_STATES or not _MESSAGE_NUMBER.fullmatch(number):
        return _reject(400, "not a Google Calendar notification", desk.connection_id)
    channel = await desk.channel(channel_id)
    if channel is None or channel.expires_at <= desk.now():
        return _reject(404, "unknown channel", desk.connection_id)
    token_ok = hmac.compare_digest(token.encode(), channel.secret.encode())
    resource_ok = hmac.compare_digest(resource_id.encode(), channel.resource_id.encode())
    if not (token_ok and resource_ok):
        return _reject(403, "channel token or resource mismatch", desk.connection_id)
    if state != "sync":
        await desk.sync(channel, "push")
    return WebhookAnswer(200)


def _calendar(provider: CalendarProvider) -> GoogleCalendar:
    if not isinstance(provider, GoogleCalendar):
        raise Refused(f"google: cannot watch a {type(provider).__name__}", provider="google")
    return provider


def _watch(channel: Channel) -> WatchChannel:
    return WatchChannel(channel.remote_id, channel.resource_id, channel.secret, channel.calendar_remote_id,
                        channel.expires_at)


class GoogleWebhooks:
    """Google's signed-webhook capability: channel id, token and resource id in the headers; no body."""

    max_body = 64 * 1024

    async def handle(self, request: WebhookRequest, desk: ChannelDesk) -> WebhookAnswer:
        return await handle_notification(request, desk)


class GooglePush:
    """Google's push-channel capability: a renewal opens the new channel; the old one is stopped after it is stored."""

    renew_margin = RENEW_MARGIN

    def api_url(self, host: HostSettings) -> str:
        return google_settings(host).google_api_url

    async def open(self, provider: CalendarProvider, url: str, current: Channel | None) -> ChannelOpened:
        fresh = await open_channel(_calendar(provider), url)
        channel = Channel(fresh.channel_id, fresh.resource_id, fresh.token, fresh.expires_at, fresh.calendar_remote_id)
        return ChannelOpened(channel, renewed=current is not None, retire=current)

    async def stop(self, provider: CalendarProvider, channel: Channel) -> None:
        await stop_channel(_calendar(provider), _watch(channel))
